"""The one place that turns a model config into network constructor arguments.

The same keys arrive from ``conf/model/*.yaml`` (``model.*``), from the LightningModule's
``hyper_parameters`` stored in a checkpoint, and from older checkpoints that used the reference's
names (``netG``, ``input_nc``). A model key whose name is an option of a registered generator
(discriminator) goes to the generator (discriminator) builder: a network's new option needs no line
here. Only the keys named differently from the option they set are listed below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .layers import init_weights
from .options import Option, options_of
from .registry import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator, declared_options

__all__ = ["generator_args", "discriminator_args", "network_keys", "CycleGANNetworks", "NETWORKS"]

NETWORKS = ("G_AB", "G_BA", "D_A", "D_B")

# model config key -> the network option it sets, where the names differ
_GENERATOR_RENAMES = {"unet_depth": "depth"}
_REFERENCE_NAMES = {"input_nc": "in_channels", "output_nc": "out_channels"}  # older checkpoints' hyper_parameters
_DISCRIMINATOR_RENAMES = {"d_layers": "n_layers"}
# The discriminators judge images of one domain each; the family decides their channels, not model.in_channels.
_DISCRIMINATOR_EXCLUDED = ("in_channels",)
_INIT_KEYS = ("init_type", "init_gain")  # only when building fresh weights
_GENERATOR_NAME_KEYS = ("gen", "generator", "netG")


def _kwargs(model: Mapping[str, Any], table: Mapping, renames: Mapping[str, str], init: bool,
            excluded: tuple[str, ...] = ()) -> dict[str, Any]:
    declared = declared_options(table)
    out = {}
    for key in model:  # the keys only: a value is read (resolved) only when it is a network's
        option = renames.get(key, _REFERENCE_NAMES.get(key, key))
        if option in declared and option not in excluded and model.get(key) is not None:
            out[option] = model.get(key)
    if init:
        out.update({key: model.get(key) for key in _INIT_KEYS if model.get(key) is not None})
    return out


def generator_args(model: Mapping[str, Any], *, init: bool = False,
                   default: str | None = "resnet") -> tuple[str | None, dict[str, Any]]:
    """``(name, build_generator kwargs)`` of a model config; keys it lacks keep the builder's defaults.

    ``init``: include the weight-init keys (for a new network; loaded weights replace them anyway).
    """
    name = next((model[k] for k in _GENERATOR_NAME_KEYS if model.get(k) is not None), default)
    return name, _kwargs(model, GENERATORS, _GENERATOR_RENAMES, init)


def discriminator_args(model: Mapping[str, Any], *, init: bool = False) -> tuple[str, dict[str, Any]]:
    """``(name, build_discriminator kwargs)`` of a model config (see :func:`generator_args`)."""
    return model.get("disc") or "patch", _kwargs(model, DISCRIMINATORS, _DISCRIMINATOR_RENAMES, init,
                                                 _DISCRIMINATOR_EXCLUDED)


def network_keys() -> dict[str, Option]:
    """Every model config key that sets a network option, with the option's description (choices, range).

    The registry's networks as they are now (a network registered at run time counts), plus the
    weight-init keys (read from :func:`~cyclegan.models.layers.init_weights`'s signature).
    """
    keys: dict[str, Option] = {}
    for table, renames in ((GENERATORS, _GENERATOR_RENAMES), (DISCRIMINATORS, _DISCRIMINATOR_RENAMES)):
        by_option = {option: key for key, option in renames.items()}
        for name, option in declared_options(table).items():
            keys.setdefault(by_option.get(name, name), option)
    init = options_of(init_weights)
    keys.update({key: init[key] for key in _INIT_KEYS})
    return keys


class CycleGANNetworks(nn.Module):
    """The four networks of a CycleGAN model config, under the LightningModule's names.

    ``G_AB``, ``G_BA``, ``D_A``, ``D_B``: a training checkpoint's ``state_dict`` loads into it
    strictly, without Lightning (evaluation, inference). ``hparams``: the config it was built from.
    """

    def __init__(self, model: Mapping[str, Any], init: bool = True):
        super().__init__()
        self.hparams = dict(model)
        gen, gen_kwargs = generator_args(model, init=init)
        disc, disc_kwargs = discriminator_args(model, init=init)
        self.G_AB = build_generator(gen, **gen_kwargs)
        self.G_BA = build_generator(gen, **gen_kwargs)
        self.D_A = build_discriminator(disc, **disc_kwargs)
        self.D_B = build_discriminator(disc, **disc_kwargs)
