"""The 1x1 PixelGAN discriminator of pix2pix (reference-compatible)."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import conv_bias, get_norm_layer
from ..options import Norm, Width


class PixelDiscriminator(nn.Module):
    """1x1 PixelGAN (pix2pix): judges every pixel independently with 1x1 convs (same H, W out)."""

    def __init__(self, in_channels: Width = 3, ndf: Width = 64, norm: Norm = "instance") -> None:
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, 2 * ndf, 1, bias=bias), norm_layer(2 * ndf), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * ndf, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
