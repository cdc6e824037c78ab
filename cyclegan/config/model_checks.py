"""Checks of the ``model`` group: the networks and their options, the module's own choices and ranges,
and whether the configured image size flows through the chosen networks.

Nothing here lists a key by hand: network names and options come from the registry
(``models/registry.py``, ``models/spec.py``), the LightningModule's choices and ranges from its
constructor's signature (``Literal`` / ``Annotated[..., AtLeast(0)]``, read by ``models/options.py``).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cyclegan.config.hydra_run import hydra_job
from cyclegan.config.keys import boolean_parameters
from cyclegan.config.problems import Problems, choice, get_value, integer, is_int, number
from cyclegan.common.directions import as_direction
from cyclegan.common.errors import one_line
from cyclegan.gan.diffaugment import parse_policy
from cyclegan.models.options import Option, options_of
from cyclegan.models.registry import (
    DISCRIMINATORS,
    GENERATORS,
    build_discriminator,
    build_generator,
    declared_options,
    owners,
)
from cyclegan.models.spec import discriminator_args, generator_args, network_keys

__all__ = ["check_model", "check_sizes", "check_option"]


def check_option(problems: Problems, name: str, value: Any, option: Option) -> None:
    """A value against what a constructor's signature declares for it (models/options.py)."""
    if value is None and option.nullable:
        return
    if option.kind is bool:
        if not isinstance(value, bool):
            problems.add(f"{name}={value!r} is not a boolean: use true or false{' (or null)' if option.nullable else ''}")
    elif option.choices is not None:
        choice(problems, name, value, option.choices)
    elif option.kind is int:
        integer(problems, name, value, -(2**63) if option.minimum is None else int(option.minimum),
                nullable=option.nullable)
    elif option.kind is float:
        low = option.above if option.above is not None else option.minimum
        high = option.below if option.below is not None else option.maximum
        number(problems, name, value, low=-math.inf if low is None else low, low_open=option.above is not None,
               high=high, high_open=option.below is not None, nullable=option.nullable)


def _module_options(target: str) -> dict[str, Option]:
    """The options of the model's ``_target_`` (the LightningModule), as its signature declares them."""
    try:
        from hydra.utils import get_object

        return options_of(get_object(target))
    except Exception:  # noqa: BLE001 - an unimportable target fails at instantiation, with its own message
        return {}


def _check_network_keys(model: DictConfig, problems: Problems, get: Any) -> None:
    """gen / disc among the registered networks; every key that sets a network option (read from the
    networks' signatures); a switch (bool or choice) turned on for a network that does not have it."""
    gen_ok = "gen" not in model or choice(problems, "model.gen", get("gen"), tuple(GENERATORS))
    disc_ok = "disc" not in model or choice(problems, "model.disc", get("disc"), tuple(DISCRIMINATORS))
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
        check_option(problems, f"model.{key}", get(key), option)
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


def check_model(model: DictConfig, problems: Problems) -> None:
    def get(key: str) -> Any:
        return get_value(model, key, problems, "model")

    _check_network_keys(model, problems, get)
    # choices and ranges the module's constructor declares (Literal / Annotated[..., AtLeast(0)], ...)
    networks = network_keys()
    for key, option in _module_options(str(model.get("_target_", ""))).items():
        if key in model and key not in networks and option.kind is not bool and option.constrained:
            check_option(problems, f"model.{key}", get(key), option)
    if "diffaugment" in model:
        try:
            parse_policy(get("diffaugment"))
        except ValueError as exc:
            problems.add(str(exc))
    _check_cut_keys(model, problems, get)
    _check_family_keys(model, problems)


def _check_cut_keys(model: DictConfig, problems: Problems, get) -> None:
    """The CUT keys whose rule is more than a range (conf/model/cut.yaml; its ranges are in CUT's signature)."""
    if "direction" in model and as_direction(get("direction")) is None:
        problems.add(f"model.direction={get('direction')!r}: use AB (domain A -> B) or BA (B -> A)")
    if "nce_layers" in model:
        layers = get("nce_layers")
        layers = list(layers) if OmegaConf.is_list(layers) or isinstance(layers, (list, tuple)) else [layers]
        if not layers or not all(is_int(i) and i >= 0 for i in layers) or sorted(set(layers)) != layers:
            problems.add(f"model.nce_layers={layers} must be increasing generator layer indices >= 0, e.g. [0,4,8,12,16]")


def _check_family_keys(model: DictConfig, problems: Problems) -> None:
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


def _check_nce_layers(model: DictConfig, G: Any, gen: str, problems: Problems) -> None:
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


def _largest_depth(size: int) -> int:
    """The largest U-Net depth d with ``size`` a multiple of 2**d."""
    depth = 0
    while size % (2 ** (depth + 1)) == 0 and 2 ** (depth + 1) <= size:
        depth += 1
    return depth


def _fitting_sizes(size: int, multiple: int, smallest: int) -> str:
    """The sizes nearest ``size`` that a generator accepts: "28 or 32" (one when they coincide)."""
    lower, upper = max(smallest, size // multiple * multiple), max(smallest, (size // multiple + 1) * multiple)
    return f"{lower}" + (f" or {upper}" if upper != lower else "")


def check_sizes(model: DictConfig, data: DictConfig, problems: Problems) -> None:
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
            fix = f"use data.image_size={_fitting_sizes(size, m, lo)}"
            what = f"model.gen={gen}"
            if "depth" in GENERATORS[gen].options and "depth" not in GENERATORS[gen].fixed:
                what += f" with model.unet_depth={depth}"
                fix += f", or model.unet_depth={_largest_depth(size)}" if _largest_depth(size) >= 2 else ""
            problems.add(
                f"data.image_size={size} does not fit {what}: image sizes must be multiples of {m} and at least "
                f"{lo}; {fix} (data.load_size too: it must stay >= image_size)"
            )
            return
        eval_size = data.get("eval_size")
        if isinstance(eval_size, int) and eval_size > 0 and (eval_size % m or eval_size < lo):
            problems.add(f"data.eval_size={eval_size} does not fit model.gen={gen}: validation and test images "
                         f"are translated at that size, which must be a multiple of {m} and at least {lo}; use "
                         f"data.eval_size={_fitting_sizes(eval_size, m, lo)}")
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


def _runs(D: Any, batch: int, size: int) -> bool:
    import torch

    try:
        D(torch.empty(batch, 3, size, size, device="meta"))
        return True
    except (RuntimeError, ValueError):
        return False
