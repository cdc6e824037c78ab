"""The network registry: every generator and discriminator by name, one line each.

A network is a class whose keyword arguments are its options (``models/options.py`` reads their
defaults, choices and ranges from the signature). Adding one is the class plus its line here::

    GENERATORS["toy"] = Network(ToyGenerator)

after which ``model.gen=toy`` trains, checkpoints, resumes, exports and translates: the builders, the
config checks (``config/checks.py``), the model-config mapping (``models/spec.py``), the resume
comparison (``training/preflight.py``) and the export spec all read the options from here. A new
option is a keyword argument of the class (plus, to set it from the command line without ``+``, a key
in ``conf/model/*.yaml``). An alias pins options (``resnet_9blocks`` is ``resnet`` with ``n_blocks=9``).

Every built network remembers its spec, ``(name, options that differ from the class defaults)``, so an
exported file or a checkpoint rebuilds it with ``build_generator(name, **options)``. A default, once
released, therefore never changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .layers import init_weights
from .networks import (
    KerasDiscriminator,
    KerasUnetGenerator,
    NLayerDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    UnetGenerator,
)
from .options import Option, check_choice, options_of

__all__ = ["Network", "GENERATORS", "DISCRIMINATORS", "build_generator", "build_discriminator", "network_spec",
           "declared_options", "owners"]

SPEC_ATTRIBUTE = "_cyclegan_spec"  # (name, options): how the network was built


@dataclass(frozen=True)
class Network:
    """A registered network: its class, and the options an alias pins."""

    cls: type[nn.Module]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Option]:
        return options_of(self.cls)


# model.gen -> generator (the order is the one error messages list them in)
GENERATORS: dict[str, Network] = {
    "resnet": Network(ResnetGenerator),
    "unet": Network(UnetGenerator),
    "resnet_9blocks": Network(ResnetGenerator, {"n_blocks": 9}),
    "resnet_6blocks": Network(ResnetGenerator, {"n_blocks": 6}),
    "unet_256": Network(UnetGenerator, {"depth": 8}),
    "unet_128": Network(UnetGenerator, {"depth": 7}),
    "unet_keras": Network(KerasUnetGenerator),
}

# model.disc -> discriminator
DISCRIMINATORS: dict[str, Network] = {
    "patch": Network(NLayerDiscriminator),
    "basic": Network(NLayerDiscriminator, {"n_layers": 3}),  # the reference's name for the 70x70 PatchGAN
    "pixel": Network(PixelDiscriminator),
    "keras": Network(KerasDiscriminator),
}


def _canonical(table: Mapping[str, Network], network: Network) -> str:
    """The name that builds ``network``'s class with every option free (``resnet`` for ``resnet_6blocks``)."""
    return next((n for n, e in table.items() if e.cls is network.cls and not e.fixed),
                next(n for n, e in table.items() if e is network))


def owners(table: Mapping[str, Network], option: str) -> list[str]:
    """The (canonical) names of the registered networks that take ``option``."""
    names = [_canonical(table, e) for e in table.values() if option in e.options]
    return list(dict.fromkeys(names))


def declared_options(table: Mapping[str, Network]) -> dict[str, Option]:
    """Every option any network of ``table`` declares (the first declaration of a name describes it)."""
    out: dict[str, Option] = {}
    for network in table.values():
        for name, option in network.options.items():
            out.setdefault(name, option)
    return out


def _undeclared(table: Mapping[str, Network], what: str, name: str, key: str, value: Any) -> None:
    """An option ``name`` lacks: ignored when it is a size at any value (presets set n_blocks or unet_depth
    whatever the network) or a switch left at its default; an error when it is a switch turned on, since it
    would silently change nothing; an error naming the options when no network takes it."""
    option = declared_options(table).get(key)
    if option is None:
        known = ", ".join(sorted(set(table[name].options)))
        raise ValueError(f"{what} {name!r} has no option {key!r}; its options: {known}")
    if value is None or not option.is_switch or value == option.default:
        return
    raise ValueError(f"{key}={value!r} is an option of the {', '.join(owners(table, key))} {what}, not of {name!r}; "
                     f"leave it at {option.default!r}")


def _build(table: Mapping[str, Network], what: str, name: str, options: Mapping[str, Any], init_type: str,
           init_gain: float) -> nn.Module:
    check_choice(what, name, table)
    network = table[name]
    declared = network.options
    kwargs = {}
    for key, value in options.items():
        if key in declared:
            kwargs[key] = declared[key].check(value)
        else:
            _undeclared(table, what, name, key, value)
    for key, fixed in network.fixed.items():
        given = kwargs.get(key, fixed)
        if given not in (fixed, declared[key].default):
            free = _canonical(table, network)
            raise ValueError(f"{what} {name!r} fixes {key}={fixed}, but {key}={given} was given; "
                             f"use {free!r} to choose {key} freely")
        kwargs[key] = fixed
    net = network.cls(**kwargs)
    init_weights(net, init_type, init_gain)
    after_init = getattr(net, "after_init", None)
    if callable(after_init):
        after_init()
    # How it was built: exports and checkpoints store it, so the network rebuilds itself from a file.
    setattr(net, SPEC_ATTRIBUTE, (name, {k: v for k, v in kwargs.items() if v != declared[k].default}))
    return net


def build_generator(name: str, *, init_type: str = "normal", init_gain: float = 0.02, **options: Any) -> nn.Module:
    """Build and initialise generator ``name`` (a key of :data:`GENERATORS`) with its ``options``.

    Options the network does not take are ignored when they could not matter (a size, a switch at its
    default) and refused otherwise; an alias refuses a value other than the one it pins.
    """
    return _build(GENERATORS, "generator", name, options, init_type, init_gain)


def build_discriminator(name: str, *, init_type: str = "normal", init_gain: float = 0.02,
                        **options: Any) -> nn.Module:
    """Build and initialise discriminator ``name`` (a key of :data:`DISCRIMINATORS`); see :func:`build_generator`."""
    return _build(DISCRIMINATORS, "discriminator", name, options, init_type, init_gain)


def network_spec(net: nn.Module) -> dict[str, Any] | None:
    """``{"name": ..., "options": {...}}`` of a network built by this registry (None for any other module):
    ``build_generator(spec["name"], **spec["options"])`` rebuilds it."""
    spec = getattr(net, SPEC_ATTRIBUTE, None)
    return None if spec is None else {"name": spec[0], "options": dict(spec[1])}
