"""Configuration checks that run before anything heavy is built.

``validate_config(cfg)`` reads the composed Hydra config and raises :class:`ConfigError`
naming every bad key, its value and what is allowed, e.g.::

    model.gen='unett' is not one of: resnet, unet, ... (did you mean 'unet'?)
    data.image_size=200 does not fit model.gen=unet with model.unet_depth=8: ...

It only reads the config (networks are built on PyTorch's ``meta`` device to check that the
chosen image size flows through them: no memory, no weights), so it costs well under a second.
Groups or keys a config does not have are skipped, so the same function serves train.py and
evaluate.py.

A :class:`ConfigError` is a :class:`cyclegan.errors.UserError`: the entry points report it as one
line and exit with code 2 (:func:`cyclegan.errors.exit_on_user_error`).
"""

from __future__ import annotations

import re
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cyclegan.config.keys import non_boolean_keys, unresolvable_keys
from cyclegan.config.model_checks import check_model, check_sizes
from cyclegan.config.problems import ConfigError, Problems, choice, get_value, integer, is_int, is_number, number
from cyclegan.data.layouts import LAYOUTS

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
        if source == "folders" and not dirs_given:
            problems.add("data=folders needs data.dir_a and data.dir_b (one folder of images per domain), e.g. "
                         "data.dir_a=/data/cats data.dir_b=/data/dogs")
        elif source not in ("folders", "sample") and get("root") is None and not dirs_given:
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
                                   ("epoch_length", 1, True), ("val_size", 0, True), ("max_train_images", 1, True)):
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


def _check_trainer(trainer: DictConfig, problems: Problems) -> None:
    import torch

    accelerator = str(trainer.get("accelerator", "auto")).lower()
    devices = trainer.get("devices", "auto")
    strategy = str(trainer.get("strategy", "auto")).lower()
    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if accelerator in ("gpu", "cuda") and n_gpus == 0:
        problems.add(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible on this machine: use trainer=cpu or "
            "trainer.accelerator=auto"
        )
        return
    _check_run_length(trainer, problems)
    if not _valid_devices(devices):
        problems.add(f"trainer.devices={devices!r} is not a device count or list: use auto, a number >= 1, -1 (all), "
                     "a list of device indices like [0,1], or a string like '0,1'")
        return
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        requested = len(devices)
    elif is_int(devices):
        requested = devices if devices > 0 else n_gpus  # -1 = all
    elif isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        requested = int(devices)
    else:  # "auto"
        requested = None
    uses_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and n_gpus > 0)
    if uses_gpu and requested is not None and requested > n_gpus:
        problems.add(f"trainer.devices={devices} but this machine has {n_gpus} GPU(s): use trainer.devices={n_gpus}"
                     " or fewer")
    if accelerator == "auto" and n_gpus == 0 and requested is not None and requested > 1:
        problems.add(f"trainer.devices={devices} but this machine has no GPU: use trainer.devices=1 (for several "
                     "CPU processes set trainer.accelerator=cpu explicitly)")
    if "ddp" in strategy and not uses_gpu and accelerator != "cpu":
        problems.add(f"trainer.strategy={strategy} needs several devices, and this machine has no GPU: "
                     "drop the strategy (trainer=cpu)")
    _check_schedule_length(trainer, problems)


def _check_schedule_length(trainer: DictConfig, problems: Problems) -> None:
    """A schedule that trains zero steps would end at once with status ok and no checkpoint."""
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps")
    if max_epochs == 0:  # Lightning stops at max_epochs=0 whatever max_steps says
        problems.add("trainer.max_epochs=0 (model.n_epochs + model.n_epochs_decay) trains nothing: raise "
                     "model.n_epochs or model.n_epochs_decay, or set trainer.max_epochs=-1 to let trainer.max_steps "
                     "decide")
    if max_steps == 0:
        problems.add("trainer.max_steps=0 trains nothing: use a positive number, or -1 for no step limit")
    if trainer.get("limit_train_batches") == 0:
        problems.add("trainer.limit_train_batches=0 trains nothing: use null (every batch), a fraction or a count")


def _valid_devices(devices: Any) -> bool:
    """Lightning's forms: "auto", N >= 1, -1 (all), [indices], "N" or "i,j" (indices)."""
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices) > 0 and all(is_int(d) and d >= 0 for d in devices) and len(set(devices)) == len(devices)
    if is_int(devices):
        return devices >= 1 or devices == -1
    if isinstance(devices, str):
        text = devices.strip()
        if text == "auto" or text == "-1":
            return True
        parts = [part.strip() for part in text.split(",") if part.strip()]
        return bool(parts) and all(part.isdigit() for part in parts) and (len(parts) > 1 or int(parts[0]) >= 1
                                                                          or text.endswith(","))
    return False


# Trainer(max_time="DD:HH:MM:SS") as Lightning's Timer parses it; a mapping goes to datetime.timedelta.
_MAX_TIME = re.compile(r"(\d+):(\d\d):(\d\d):(\d\d)")
_TIMEDELTA_KEYS = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds")


def _precisions() -> list:
    from lightning_fabric.connector import _PRECISION_INPUT

    def flatten(tp):
        args = typing.get_args(tp)
        return [v for a in args for v in flatten(a)] if typing.get_origin(tp) is typing.Union else list(args)

    return flatten(_PRECISION_INPUT)


def _check_run_length(trainer: DictConfig, problems: Problems) -> None:
    """max_steps, max_epochs, max_time and precision: values Lightning accepts, checked before it sees them."""
    if "max_steps" in trainer:
        integer(problems, "trainer.max_steps", trainer.get("max_steps"), -1)
    if "max_epochs" in trainer:
        integer(problems, "trainer.max_epochs", trainer.get("max_epochs"), -1, nullable=True)
    if "precision" in trainer:
        allowed = _precisions()
        value = trainer.get("precision")
        if value not in allowed or isinstance(value, bool):
            choice(problems, "trainer.precision", value, [str(v) for v in allowed if isinstance(v, str)])
    max_time = trainer.get("max_time")
    if max_time is None:
        return
    if isinstance(max_time, DictConfig):
        bad = [k for k in max_time if k not in _TIMEDELTA_KEYS or not is_number(max_time.get(k))]
        ok = not bad and bool(len(max_time))
    else:
        ok = isinstance(max_time, str) and _MAX_TIME.fullmatch(max_time.strip()) is not None
    if not ok:
        shown = OmegaConf.to_container(max_time) if isinstance(max_time, DictConfig) else repr(max_time)
        problems.add(f"trainer.max_time={shown} is not a duration: use DD:HH:MM:SS (e.g. "
                     f"trainer.max_time=00:00:10:00 for 10 minutes), a mapping of {', '.join(_TIMEDELTA_KEYS)} "
                     "(e.g. '{minutes: 10}'), or null")


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
    chosen generator and discriminator; trainer devices against the GPUs present;
    ``callbacks.nan_guard.policy``.
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
        _check_trainer(cfg.trainer, problems)
        if model is not None and model.get("lr_policy") == "linear_time" and cfg.trainer.get("max_time") is None:
            problems.add("model.lr_policy=linear_time decays the rate over trainer.max_time, which is not set: "
                         "add trainer.max_time=00:00:09:00 (DD:HH:MM:SS) or choose another model.lr_policy")
    if isinstance(cfg.get("callbacks"), DictConfig):
        _check_callbacks(cfg.callbacks, problems)
    if "cpu_threads" in cfg:
        integer(problems, "cpu_threads", cfg.get("cpu_threads"), 1, nullable=True)
    # Size compatibility needs valid choices and sizes: only when everything above passed.
    if not problems.items and model is not None and data is not None and "image_size" in data:
        check_sizes(model, data, problems)
    problems.raise_if_any()
