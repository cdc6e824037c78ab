"""Configuration checks that run before anything heavy is built.

``validate_config(cfg)`` reads the composed Hydra config and raises :class:`ConfigError`
naming every bad key, its value and what is allowed, e.g.::

    model.gen='unett' is not one of: resnet, unet, ... (did you mean 'unet'?)
    data.image_size=200 does not fit model.gen=unet with model.unet_depth=8: ...

It only reads the config (networks are built on PyTorch's ``meta`` device to check that the
chosen image size flows through them: no memory, no weights), so it costs well under a second.
Groups or keys a config does not have are skipped, so the same function serves train.py and
evaluate.py.

A :class:`ConfigError` is a :class:`cyclegan.common.errors.UserError`: the entry points report it as one
line and exit with code 2 (:func:`cyclegan.common.errors.exit_on_user_error`).
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from cyclegan.config.keys import non_boolean_keys, unresolvable_keys
from cyclegan.config.model_checks import check_model, check_sizes
from cyclegan.config.problems import ConfigError, Problems, choice, get_value, integer, is_int, number
from cyclegan.data.layouts import LAYOUTS
from cyclegan.models.compile import compile_options, cpu_has_amx

__all__ = [
    "ConfigError",
    "validate_config",
    "MIN_SIZE_POLICIES",
    "BAD_IMAGE_POLICIES",
    "NAN_POLICIES",
]

MIN_SIZE_POLICIES = ("upscale", "reject")
BAD_IMAGE_POLICIES = ("skip", "raise")
NAN_POLICIES = ("stop", "skip")


def _seed(problems: Problems, name: str, value: Any) -> None:
    from lightning_fabric.utilities.seed import max_seed_value, min_seed_value

    if value is None or (is_int(value) and min_seed_value <= value <= max_seed_value):
        return
    problems.add(f"{name}={value!r} must be an integer in [{min_seed_value}, {max_seed_value}] or null")


# ----------------------------------------------------------------------------- groups
def _check_missing(cfg: DictConfig, problems: Problems) -> None:
    for key in sorted(OmegaConf.missing_keys(cfg)):
        if key.startswith("hydra."):
            continue
        problems.add(f"{key} is required (it is ??? in the config): set it on the command line, e.g. {key}=...")


def _check_data(data: DictConfig, problems: Problems) -> None:
    def get(key: str) -> Any:
        return get_value(data, key, problems, "data")

    source = str(get("source")).lower() if "source" in data and get("source") is not None else None
    if source is not None and choice(problems, "data.source", source, tuple(LAYOUTS)):
        dirs_given = get("dir_a") is not None and get("dir_b") is not None
        layout = LAYOUTS[source]  # what each source needs is declared by its layout (data/layouts.py)
        if layout.needs_dirs and not dirs_given:
            problems.add(f"data={source} needs data.dir_a and data.dir_b (one folder of images per domain), e.g. "
                         "data.dir_a=/data/cats data.dir_b=/data/dogs")
        elif layout.needs_root and get("root") is None and not dirs_given:
            problems.add(f"data.source={source} needs data.root (the dataset folder) or data.dir_a and data.dir_b")
    size_ok = "image_size" not in data or integer(problems, "data.image_size", get("image_size"), 1)
    if "load_size" in data and integer(problems, "data.load_size", get("load_size"), 1) and size_ok:
        if "image_size" in data and get("load_size") < get("image_size"):
            problems.add(
                f"data.load_size={get('load_size')} must be >= data.image_size={get('image_size')} (training "
                f"images are resized to load_size, then randomly cropped to image_size): e.g. "
                f"data.load_size={round(get('image_size') * 286 / 256)}"
            )
    for key, minimum, nullable in (("batch_size", 1, False), ("eval_batch_size", 1, True), ("num_workers", 0, False),
                                   ("epoch_length", 1, True), ("val_size", 0, True), ("max_train_images", 1, True),
                                   ("eval_size", 1, True)):
        if key in data:
            integer(problems, f"data.{key}", get(key), minimum, nullable=nullable)
    for key in ("rotate", "color_jitter"):
        if key in data:
            number(problems, f"data.{key}", get(key) or 0, low=0)
    if "seed" in data:
        _seed(problems, "data.seed", get("seed"))
    if "min_size_policy" in data:
        choice(problems, "data.min_size_policy", get("min_size_policy"), MIN_SIZE_POLICIES)
    if "bad_image_policy" in data:
        choice(problems, "data.bad_image_policy", get("bad_image_policy"), BAD_IMAGE_POLICIES)


def _check_schedule_length(trainer: DictConfig, problems: Problems) -> None:
    """A schedule that trains zero steps would end at once with status ok and no checkpoint.

    Lightning checks its own arguments when the Trainer is built (training/trainer_setup.py turns its
    refusals into one line): only what it accepts but cannot train on is checked here.
    """
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps")
    if max_epochs == 0:  # Lightning stops at max_epochs=0 whatever max_steps says
        problems.add("trainer.max_epochs=0 (model.n_epochs + model.n_epochs_decay) trains nothing: raise "
                     "model.n_epochs or model.n_epochs_decay, or set trainer.max_epochs=-1 to let trainer.max_steps "
                     "decide")
    if max_steps == 0:
        problems.add("trainer.max_steps=0 trains nothing: use a positive number, or -1 for no step limit")
    if trainer.get("limit_train_batches") == 0:
        problems.add("trainer.limit_train_batches=0 trains nothing: use null (every batch), a fraction or a count")


def _trains_on_cpu(trainer: DictConfig) -> bool:
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    if accelerator == "auto":
        return not torch.cuda.is_available()
    return accelerator == "cpu"


def _check_cpu_compile(model: DictConfig, trainer: DictConfig, problems: Problems) -> None:
    """Compiled bf16 training on an AMX CPU gave NaN losses (docs/SPEED.md) and the cause is not found:
    refuse that one combination. On AVX512-BF16 CPUs without AMX it trained finite (a 12-minute preset run)."""
    try:
        compiled = compile_options(model.get("compile", False)) is not None
    except ValueError:  # check_model reports the bad value
        return
    if compiled and "bf16" in str(trainer.get("precision", "")) and _trains_on_cpu(trainer) and cpu_has_amx():
        value = model.get("compile")
        shown = str(value).lower() if isinstance(value, bool) else value
        problems.add(f"model.compile={shown} with trainer.precision={trainer.get('precision')} is refused "
                     "on this CPU (AMX): compiled bf16 training gave NaN losses on an AMX CPU (docs/SPEED.md); "
                     "use model.compile=false (eager bf16 is stable) or trainer.precision=32-true")


def _check_callbacks(callbacks: DictConfig, problems: Problems) -> None:
    guard = callbacks.get("nan_guard")
    if guard and "policy" in guard:
        choice(problems, "callbacks.nan_guard.policy", guard.get("policy"), NAN_POLICIES)
        integer(problems, "callbacks.nan_guard.max_consecutive_skips", guard.get("max_consecutive_skips", 1), 0)
        integer(problems, "callbacks.nan_guard.check_every_n_steps", guard.get("check_every_n_steps"), 1, nullable=True)


# ----------------------------------------------------------------------------- entry point
def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` (one line, every problem) when ``cfg`` cannot train or evaluate.

    Checked: missing mandatory (``???``) values; model choices (gen, disc, norm, init_type,
    gan_mode, lr_policy) and ranges (lr > 0, betas in [0, 1), pool_size >= 0, ...); data sizes
    (load_size >= image_size, batch_size >= 1, policies); that the image size flows through the
    chosen generator and discriminator; a schedule that trains nothing; compiled bf16 training on an
    AMX CPU; ``callbacks.nan_guard.policy``.
    """
    problems = Problems()
    for message in unresolvable_keys(cfg):  # e.g. an unset ${oc.env:VAR}
        problems.add(message)
    problems.raise_if_any()  # everything below reads values
    _check_missing(cfg, problems)
    problems.raise_if_any()  # the checks below would trip over the missing values
    for message in non_boolean_keys(cfg):  # data.flip=off is the string 'off', which is true
        problems.add(message)
    if "seed" in cfg:
        _seed(problems, "seed", cfg.get("seed"))
    model = cfg.get("model") if isinstance(cfg.get("model"), DictConfig) else None
    data = cfg.get("data") if isinstance(cfg.get("data"), DictConfig) else None
    if model is not None:
        check_model(model, problems)
    if data is not None:
        _check_data(data, problems)
    if isinstance(cfg.get("trainer"), DictConfig):
        _check_schedule_length(cfg.trainer, problems)
        if model is not None and model.get("lr_policy") == "linear_time" and cfg.trainer.get("max_time") is None:
            problems.add("model.lr_policy=linear_time decays the rate over trainer.max_time, which is not set: "
                         "add trainer.max_time=00:00:09:00 (DD:HH:MM:SS) or choose another model.lr_policy")
        if model is not None:
            _check_cpu_compile(model, cfg.trainer, problems)
    if isinstance(cfg.get("callbacks"), DictConfig):
        _check_callbacks(cfg.callbacks, problems)
    if "cpu_threads" in cfg:
        integer(problems, "cpu_threads", cfg.get("cpu_threads"), 1, nullable=True)
    # Size compatibility needs valid choices and sizes: only when everything above passed.
    if not problems.items and model is not None and data is not None and "image_size" in data:
        check_sizes(model, data, problems)
    problems.raise_if_any()
