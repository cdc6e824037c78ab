"""Shared building blocks: normalization factory, weight initialization.

The conventions follow the official CycleGAN/pix2pix code (junyanz/pytorch-CycleGAN-and-pix2pix,
``models/networks.py``) so that checkpoints stay interchangeable with it.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from typing import Annotated, Literal

import torch
from torch import nn

from .options import NORM_TYPES, Above, check_choice

InitType = Literal["normal", "xavier", "kaiming", "orthogonal"]
INIT_TYPES: tuple[str, ...] = typing.get_args(InitType)

NormFactory = Callable[[int], nn.Module]


# --------------------------------------------------------------------------------------------
# normalization
# --------------------------------------------------------------------------------------------
def get_norm_layer(norm: str) -> NormFactory:
    """Return a factory ``num_features -> nn.Module`` for the named normalization.

    As in the reference: ``instance`` is InstanceNorm2d without affine parameters and without
    running statistics (so train and eval mode compute the same thing and the state dict has
    no norm entries); ``batch`` is BatchNorm2d with affine parameters and running statistics;
    ``none`` is an Identity, which keeps the index layout of the surrounding ``nn.Sequential``.
    """
    check_choice("norm", norm, NORM_TYPES)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    return lambda num_features: nn.Identity()


def conv_bias(norm: str) -> bool:
    """Whether convolutions feeding a norm layer carry a bias (the reference's ``use_bias``).

    Only instance norm gets a bias (batch norm has its own shift). The reference also leaves
    the bias off for ``none``; that quirk is kept so its checkpoints load.
    """
    return check_choice("norm", norm, NORM_TYPES) == "instance"


# --------------------------------------------------------------------------------------------
# weight initialization
# --------------------------------------------------------------------------------------------
def init_weights(net: nn.Module, init_type: InitType = "normal",
                 init_gain: Annotated[float, Above(0)] = 0.02) -> nn.Module:
    """Initialize ``net`` in place the way the reference does, and return it.

    Conv / ConvTranspose / Linear weights: ``normal`` N(0, gain), ``xavier`` (normal, gain),
    ``kaiming`` (normal, fan_in, a=0; the gain is ignored, as in the reference) or
    ``orthogonal`` (gain); their biases are zeroed. BatchNorm weights are drawn from
    N(1, gain) and their biases zeroed. Other modules keep PyTorch's defaults.
    """
    check_choice("init_type", init_type, INIT_TYPES)
    if isinstance(init_gain, bool) or not isinstance(init_gain, (int, float)) or not init_gain > 0:
        raise ValueError(f"invalid init_gain={init_gain!r}; expected a number > 0")

    def init_module(m: nn.Module) -> None:
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, init_gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=init_gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=init_gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight, 1.0, init_gain)
            nn.init.zeros_(m.bias)

    with torch.no_grad():
        net.apply(init_module)
    return net


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values in ``module`` (all of them, or only those requiring grad)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
