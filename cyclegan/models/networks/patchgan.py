"""The PatchGAN discriminator (reference-compatible), with CUT's anti-aliased variant."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from ..layers import conv_bias, get_norm_layer
from ..options import AtLeast, Norm, Width
from .antialias import BlurDownsample


class NLayerDiscriminator(nn.Module):
    """PatchGAN (Isola et al., 2017): classifies overlapping patches as real or fake.

    ``n_layers`` stride-2 4x4 convs (ndf, 2ndf, ... capped at 8ndf; no norm on the first),
    then a stride-1 4x4 conv, norm, LeakyReLU(0.2) and a stride-1 4x4 conv to one channel.
    ``n_layers=3`` gives the 70x70 receptive field used by CycleGAN (30x30 logits at 256px).
    ``antialias`` (the official CUT discriminator's default): each stride-2 conv becomes a stride-1
    conv followed, after its norm and activation, by a fixed blur with stride 2.
    """

    def __init__(self, in_channels: Width = 3, ndf: Width = 64, n_layers: Annotated[int, AtLeast(1)] = 3,
                 norm: Norm = "instance", antialias: bool = False) -> None:
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        stride = 1 if antialias else 2
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=stride, padding=1), nn.LeakyReLU(0.2)]
        if antialias:
            layers.append(BlurDownsample(ndf))
        prev = ndf
        for n in range(1, n_layers + 1):
            c = ndf * min(2**n, 8)
            last = n == n_layers
            layers += [nn.Conv2d(prev, c, 4, stride=1 if last else stride, padding=1, bias=bias), norm_layer(c),
                       nn.LeakyReLU(0.2)]
            if antialias and not last:
                layers.append(BlurDownsample(c))
            prev = c
        layers.append(nn.Conv2d(prev, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
