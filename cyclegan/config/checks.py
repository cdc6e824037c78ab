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

import difflib
import inspect
import math
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cyclegan.config.hydra_run import hydra_job
from cyclegan.config.keys import boolean_parameters, non_boolean_keys, unresolvable_keys
from cyclegan.directions import as_direction
from cyclegan.errors import UserError, one_line
from cyclegan.data.layouts import LAYOUTS
from cyclegan.gan.diffaugment import parse_policy
from cyclegan.gan.losses import GAN_MODES
from cyclegan.gan.schedulers import LR_POLICIES
from cyclegan.models.options import Option
from cyclegan.models.registry import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator, declared_options, owners
from cyclegan.models.spec import discriminator_args, generator_args, network_keys

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


class ConfigError(UserError, ValueError):
    """The composed configuration is invalid; the message names the keys and the allowed values."""


# ----------------------------------------------------------------------------- helpers
class _Problems:
    """Collects every problem so one run of the checks reports them all."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def raise_if_any(self) -> None:
        if self.items:
            head = "invalid configuration: " if len(self.items) > 1 else ""
            raise ConfigError(head + "; ".join(self.items))


def _get(node: DictConfig, key: str, problems: _Problems, prefix: str) -> Any:
    """``node[key]`` (None when absent); an interpolation that cannot be resolved is a problem."""
    try:
        return node.get(key)
    except OmegaConfBaseException as exc:
        problems.add(f"{prefix}.{key} cannot be resolved: {one_line(exc)}")
        return None


def _choice(problems: _Problems, name: str, value: Any, allowed: Sequence[str]) -> bool:
    if value in allowed:
        return True
    hint = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.6)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    problems.add(f"{name}={value!r} is not one of: {', '.join(allowed)}{did_you_mean}")
    return False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int(problems: _Problems, name: str, value: Any, minimum: int, nullable: bool = False) -> bool:
    if value is None and nullable:
        return True
    if _is_int(value) and value >= minimum:
        return True
    extra = " or null" if nullable else ""
    problems.add(f"{name}={value!r} must be an integer >= {minimum}{extra}")
    return False


def _number(problems: _Problems, name: str, value: Any, *, low: float, low_open: bool = False,
            high: float | None = None, high_open: bool = True, nullable: bool = False) -> bool:
    if value is None and nullable:
        return True
    ok = _is_number(value) and (value > low if low_open else value >= low)
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return True
    rng = f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        rng = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    problems.add(f"{name}={value!r} must be a number {rng}{' or null' if nullable else ''}")
    return False


def _seed(problems: _Problems, name: str, value: Any) -> None:
    from lightning_fabric.utilities.seed import max_seed_value, min_seed_value

    if value is None or (_is_int(value) and min_seed_value <= value <= max_seed_value):
        return
    problems.add(f"{name}={value!r} must be an integer in [{min_seed_value}, {max_seed_value}] or null")


# ----------------------------------------------------------------------------- groups
def _check_missing(cfg: DictConfig, problems: _Problems) -> None:
    for key in sorted(OmegaConf.missing_keys(cfg)):
        if key.startswith("hydra."):
            continue
        problems.add(f"{key} is required (it is ??? in the config): set it on the command line, e.g. {key}=...")


def _check_option(problems: _Problems, name: str, value: Any, option: Option) -> None:
    """A network option's value against what its constructor's signature declares (models/options.py)."""
    if value is None and option.nullable:
        return
    if option.kind is bool:
        if not isinstance(value, bool):
            problems.add(f"{name}={value!r} is not a boolean: use true or false{' (or null)' if option.nullable else ''}")
    elif option.choices is not None:
        _choice(problems, name, value, option.choices)
    elif option.kind is int:
        _int(problems, name, value, -(2**63) if option.minimum is None else int(option.minimum),
             nullable=option.nullable)
    elif option.kind is float:
        low = option.above if option.above is not None else option.minimum
        _number(problems, name, value, low=-math.inf if low is None else low, low_open=option.above is not None,
                nullable=option.nullable)


def _check_network_keys(model: DictConfig, problems: _Problems, get: Any) -> None:
    """gen / disc among the registered networks; every key that sets a network option (read from the
    networks' signatures); a switch (bool or choice) turned on for a network that does not have it."""
    gen_ok = "gen" not in model or _choice(problems, "model.gen", get("gen"), tuple(GENERATORS))
    disc_ok = "disc" not in model or _choice(problems, "model.disc", get("disc"), tuple(DISCRIMINATORS))
    # bools the module's own signature declares are checked by non_boolean_keys already
    signature_bools = boolean_parameters(str(model.get("_target_"))) if "_target_" in model else {}
    gen_name, gen_kwargs = generator_args(model) if gen_ok else (None, {})
    disc_name, disc_kwargs = discriminator_args(model) if disc_ok else (None, {})
    chosen = [(GENERATORS, "generator", "gen", gen_name, gen_kwargs),
              (DISCRIMINATORS, "discriminator", "disc", disc_name, disc_kwargs)]
    keys = network_keys()
    for key, option in keys.items():
        if key not in model or (option.kind is bool and key in signature_bools):
            continue
        _check_option(problems, f"model.{key}", get(key), option)
    for table, what, key, name, kwargs in chosen:
        if name not in table:
            continue
        declared, known = table[name].options, declared_options(table)
        idle = {option: value for option, value in kwargs.items() if option not in declared
                and known[option].is_switch and value != known[option].default}
        for option, value in idle.items():
            other = owners(table, option)
            problems.add(f"model.{option}={value} is an option of the {', '.join(other)} {what}, not of "
                         f"model.{key}={name}: remove it or use model.{key}={other[0]}")


def _check_model(model: DictConfig, problems: _Problems) -> None:
    def get(key: str) -> Any:
        return _get(model, key, problems, "model")

    _check_network_keys(model, problems, get)
    for key, allowed in (("gan_mode", GAN_MODES), ("lr_policy", LR_POLICIES)):
        if key in model:
            _choice(problems, f"model.{key}", get(key), allowed)
    for key, minimum in (("pool_size", 0), ("n_epochs", 0), ("n_epochs_decay", 0), ("lr_step_epochs", 1)):
        if key in model:
            _int(problems, f"model.{key}", get(key), minimum)
    if "lr" in model:
        _number(problems, "model.lr", get("lr"), low=0, low_open=True)
    if "lr_D" in model:
        _number(problems, "model.lr_D", get("lr_D"), low=0, low_open=True, nullable=True)
    for key in ("beta1", "beta2"):
        if key in model:
            _number(problems, f"model.{key}", get(key), low=0, high=1)
    for key in ("lambda_cycle", "lambda_identity", "lambda_gp", "d_loss_weight"):
        if key in model:
            _number(problems, f"model.{key}", get(key), low=0)
    for key in ("lambda_A", "lambda_B"):
        if key in model:
            _number(problems, f"model.{key}", get(key), low=0, nullable=True)
    if "lr_gamma" in model:
        _number(problems, "model.lr_gamma", get("lr_gamma"), low=0, low_open=True)
    if "lr_decay_start" in model:
        _number(problems, "model.lr_decay_start", get("lr_decay_start"), low=0, high=1)
    if "diffaugment" in model:
        try:
            parse_policy(get("diffaugment"))
        except ValueError as exc:
            problems.add(str(exc))
    _check_cut_keys(model, problems, get)
    _check_family_keys(model, problems)


def _check_cut_keys(model: DictConfig, problems: _Problems, get) -> None:
    """The keys of the CUT family (conf/model/cut.yaml), where present."""
    if "direction" in model and as_direction(get("direction")) is None:
        problems.add(f"model.direction={get('direction')!r}: use AB (domain A -> B) or BA (B -> A)")
    for key, minimum in (("num_patches", 1), ("netF_nc", 1)):
        if key in model:
            _int(problems, f"model.{key}", get(key), minimum)
    for key in ("lambda_GAN", "lambda_NCE"):
        if key in model:
            _number(problems, f"model.{key}", get(key), low=0)
    if "nce_T" in model:
        _number(problems, "model.nce_T", get("nce_T"), low=0, low_open=True)
    if "nce_layers" in model:
        layers = get("nce_layers")
        layers = list(layers) if OmegaConf.is_list(layers) or isinstance(layers, (list, tuple)) else [layers]
        if not layers or not all(_is_int(i) and i >= 0 for i in layers) or sorted(set(layers)) != layers:
            problems.add(f"model.nce_layers={layers} must be increasing generator layer indices >= 0, e.g. [0,4,8,12,16]")


def _check_family_keys(model: DictConfig, problems: _Problems) -> None:
    """Every model key is an argument of the model family's class (``model._target_``) or, for a family that
    takes network options by name, a registered network's option: a preset written for another family (the
    default data=demo fine-tunes the CycleGAN painter) must not reach a class that cannot take its keys."""
    from hydra.utils import get_class

    try:
        family = get_class(str(model.get("_target_")))
    except Exception:  # noqa: BLE001 - an unknown target: instantiate names it
        return
    params = inspect.signature(family.__init__).parameters
    allowed = set(params) - {"self"}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed |= set(network_keys())
    foreign = [key for key in model if key != "_target_" and key not in allowed]
    if foreign:
        preset = OmegaConf.select(hydra_job(), "runtime.choices.experiment") if hydra_job() is not None else None
        source = f" (experiment={preset} sets {'it' if len(foreign) == 1 else 'them'})" if preset else ""
        problems.add(f"{', '.join(f'model.{k}' for k in foreign)} {'is not a key' if len(foreign) == 1 else 'are not keys'}"
                     f" of {family.__name__} ({model.get('_target_')}){source}: a preset for another model family? "
                     f"choose data=sample or another dataset, or an experiment for this family, or remove the key")


def _check_data(data: DictConfig, problems: _Problems) -> None:
    def get(key: str) -> Any:
        return _get(data, key, problems, "data")

    source = str(get("source")).lower() if "source" in data and get("source") is not None else None
    if source is not None and _choice(problems, "data.source", source, tuple(LAYOUTS)):
        dirs_given = get("dir_a") is not None and get("dir_b") is not None
        layout = LAYOUTS[source]  # what each source needs is declared by its layout (data/layouts.py)
        if layout.needs_dirs and not dirs_given:
            problems.add(f"data={source} needs data.dir_a and data.dir_b (one folder of images per domain), e.g. "
                         "data.dir_a=/data/cats data.dir_b=/data/dogs")
        elif layout.needs_root and get("root") is None and not dirs_given:
            problems.add(f"data.source={source} needs data.root (the dataset folder) or data.dir_a and data.dir_b")
    size_ok = "image_size" not in data or _int(problems, "data.image_size", get("image_size"), 1)
    if "load_size" in data and _int(problems, "data.load_size", get("load_size"), 1) and size_ok:
        if "image_size" in data and get("load_size") < get("image_size"):
            problems.add(
                f"data.load_size={get('load_size')} must be >= data.image_size={get('image_size')} (training "
                f"images are resized to load_size, then randomly cropped to image_size): e.g. "
                f"data.load_size={round(get('image_size') * 286 / 256)}"
            )
    for key, minimum, nullable in (("batch_size", 1, False), ("eval_batch_size", 1, True), ("num_workers", 0, False),
                                   ("epoch_length", 1, True), ("val_size", 0, True), ("max_train_images", 1, True)):
        if key in data:
            _int(problems, f"data.{key}", get(key), minimum, nullable=nullable)
    for key in ("rotate", "color_jitter"):
        if key in data:
            _number(problems, f"data.{key}", get(key) or 0, low=0)
    if "seed" in data:
        _seed(problems, "data.seed", get("seed"))
    if "min_size_policy" in data:
        _choice(problems, "data.min_size_policy", get("min_size_policy"), MIN_SIZE_POLICIES)
    if "bad_image_policy" in data:
        _choice(problems, "data.bad_image_policy", get("bad_image_policy"), BAD_IMAGE_POLICIES)


def _largest_depth(size: int) -> int:
    """The largest U-Net depth d with ``size`` a multiple of 2**d."""
    depth = 0
    while size % (2 ** (depth + 1)) == 0 and 2 ** (depth + 1) <= size:
        depth += 1
    return depth


def _check_sizes(model: DictConfig, data: DictConfig, problems: _Problems) -> None:
    """Run the chosen networks on a meta tensor of the configured size (shapes only, no memory)."""
    import torch

    size, batch = data.get("image_size"), data.get("batch_size") or 1
    gen, gen_kwargs = generator_args(model)
    disc, disc_kwargs = discriminator_args(model)
    norm, depth, d_layers = model.get("norm", "instance"), model.get("unet_depth", 8), model.get("d_layers", 3)
    with torch.device("meta"):
        try:  # width does not change shapes: ngf=ndf=1 keeps this instant even for big models
            G = build_generator(gen, **{**gen_kwargs, "ngf": 1})
            D = build_discriminator(disc, **{**disc_kwargs, "ndf": 1})
        except ValueError as exc:  # e.g. an alias that fixes a depth the config contradicts
            problems.add(f"model.gen={gen}, model.disc={disc}: {one_line(exc)}")
            return
        _check_nce_layers(model, G, gen, problems)
        m, lo = G.size_multiple, G.min_size
        if size % m or size < lo:
            lower, upper = max(lo, size // m * m), max(lo, (size // m + 1) * m)
            fix = f"use data.image_size={lower}" + (f" or {upper}" if upper != lower else "")
            what = f"model.gen={gen}"
            if "depth" in GENERATORS[gen].options and "depth" not in GENERATORS[gen].fixed:
                what += f" with model.unet_depth={depth}"
                fix += f", or model.unet_depth={_largest_depth(size)}" if _largest_depth(size) >= 2 else ""
            problems.add(
                f"data.image_size={size} does not fit {what}: image sizes must be multiples of {m} and at least "
                f"{lo}; {fix} (data.load_size too: it must stay >= image_size)"
            )
            return
        try:
            D(torch.empty(batch, 3, size, size))
        except (RuntimeError, ValueError) as exc:
            smallest = next((s for s in range(m, 4097, m) if _runs(D, batch, s)), None)
            need = f"data.image_size >= {smallest}" if smallest else "a larger data.image_size"
            problems.add(
                f"model.disc={disc} with model.d_layers={d_layers} and model.norm={norm} cannot judge "
                f"{size}px images at data.batch_size={batch} ({one_line(exc)}): use {need}, fewer model.d_layers, "
                "or model.disc=pixel"
            )


def _check_nce_layers(model: DictConfig, G: Any, gen: str, problems: _Problems) -> None:
    """CUT's ``nce_layers`` are layers of the generator's layer sequence (``G.encode``)."""
    from torch import nn

    layers = model.get("nce_layers")
    if not layers:
        return
    sequence = getattr(G, "model", None)
    if not isinstance(sequence, nn.Sequential):
        problems.add(f"model.gen={gen} has no layer sequence to take PatchNCE features from: use model.gen=resnet")
    elif max(layers) >= len(sequence):
        problems.add(f"model.nce_layers={list(layers)}: model.gen={gen} with these options has layers "
                     f"0..{len(sequence) - 1}")


def _runs(D: Any, batch: int, size: int) -> bool:
    import torch

    try:
        D(torch.empty(batch, 3, size, size, device="meta"))
        return True
    except (RuntimeError, ValueError):
        return False


def _check_schedule_length(trainer: DictConfig, problems: _Problems) -> None:
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


def _check_callbacks(callbacks: DictConfig, problems: _Problems) -> None:
    guard = callbacks.get("nan_guard")
    if guard and "policy" in guard:
        _choice(problems, "callbacks.nan_guard.policy", guard.get("policy"), NAN_POLICIES)
        _int(problems, "callbacks.nan_guard.max_consecutive_skips", guard.get("max_consecutive_skips", 1), 0)
        _int(problems, "callbacks.nan_guard.check_every_n_steps", guard.get("check_every_n_steps"), 1, nullable=True)


# ----------------------------------------------------------------------------- entry point
def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` (one line, every problem) when ``cfg`` cannot train or evaluate.

    Checked: missing mandatory (``???``) values; model choices (gen, disc, norm, init_type,
    gan_mode, lr_policy) and ranges (lr > 0, betas in [0, 1), pool_size >= 0, ...); data sizes
    (load_size >= image_size, batch_size >= 1, policies); that the image size flows through the
    chosen generator and discriminator; a schedule that trains nothing;
    ``callbacks.nan_guard.policy``.
    """
    problems = _Problems()
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
        _check_model(model, problems)
    if data is not None:
        _check_data(data, problems)
    if isinstance(cfg.get("trainer"), DictConfig):
        _check_schedule_length(cfg.trainer, problems)
        if model is not None and model.get("lr_policy") == "linear_time" and cfg.trainer.get("max_time") is None:
            problems.add("model.lr_policy=linear_time decays the rate over trainer.max_time, which is not set: "
                         "add trainer.max_time=00:00:09:00 (DD:HH:MM:SS) or choose another model.lr_policy")
    if isinstance(cfg.get("callbacks"), DictConfig):
        _check_callbacks(cfg.callbacks, problems)
    if "cpu_threads" in cfg:
        _int(problems, "cpu_threads", cfg.get("cpu_threads"), 1, nullable=True)
    # Size compatibility needs valid choices and sizes: only when everything above passed.
    if not problems.items and model is not None and data is not None and "image_size" in data:
        _check_sizes(model, data, problems)
    problems.raise_if_any()
