"""The one place that turns a model config into network constructor arguments.

The same keys arrive from ``conf/model/cyclegan.yaml`` (``model.*``), from the LightningModule's
``hyper_parameters`` stored in a checkpoint, and from older checkpoints that used the reference's
names (``netG``, ``input_nc``). A new network hyper-parameter is one line in a table below, plus
the network class's argument and the config key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .discriminators import build_discriminator
from .generators import build_generator

__all__ = ["generator_args", "discriminator_args", "CycleGANNetworks", "NETWORKS"]

NETWORKS = ("G_AB", "G_BA", "D_A", "D_B")

# model config key -> build_generator / build_discriminator keyword
_GENERATOR_KEYS = {
    "ngf": "ngf", "n_blocks": "n_blocks", "unet_depth": "depth", "norm": "norm", "dropout": "dropout",
    "in_channels": "in_channels", "out_channels": "out_channels",
    "input_nc": "in_channels", "output_nc": "out_channels",  # the reference's names
    "upsample": "upsample", "residual_output": "residual_output",  # ResNet options (the CPU painter)
}
_DISCRIMINATOR_KEYS = {"ndf": "ndf", "d_layers": "n_layers", "norm": "norm"}
_INIT_KEYS = {"init_type": "init_type", "init_gain": "init_gain"}  # only when building fresh weights
_GENERATOR_NAME_KEYS = ("gen", "generator", "netG")


def _kwargs(model: Mapping[str, Any], table: Mapping[str, str], init: bool) -> dict[str, Any]:
    table = {**table, **_INIT_KEYS} if init else table
    return {kw: model[key] for key, kw in table.items() if model.get(key) is not None}


def generator_args(model: Mapping[str, Any], *, init: bool = False,
                   default: str | None = "resnet") -> tuple[str | None, dict[str, Any]]:
    """``(name, build_generator kwargs)`` of a model config; keys it lacks keep the builder's defaults.

    ``init``: include the weight-init keys (for a new network; loaded weights replace them anyway).
    """
    name = next((model[k] for k in _GENERATOR_NAME_KEYS if model.get(k) is not None), default)
    return name, _kwargs(model, _GENERATOR_KEYS, init)


def discriminator_args(model: Mapping[str, Any], *, init: bool = False) -> tuple[str, dict[str, Any]]:
    """``(name, build_discriminator kwargs)`` of a model config (see :func:`generator_args`)."""
    return model.get("disc") or "patch", _kwargs(model, _DISCRIMINATOR_KEYS, init)


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
