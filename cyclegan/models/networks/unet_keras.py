"""The U-Net generator of the Kaggle/Keras CycleGAN tutorial."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import get_norm_layer
from ..options import Norm, Width
from .base import ImageGenerator


class KerasUnetGenerator(ImageGenerator):
    """U-Net generator of the Kaggle/Keras CycleGAN tutorial (A. Jang, "Monet CycleGAN").

    Down: 8 x (Conv k4 s2 'same', no bias, norm, LeakyReLU) with ngf*[1,2,4,8,8,8,8,8]
    filters (no norm on the first). Up: 7 x (ConvTranspose k4 s2, no bias, norm, dropout 0.5 on
    the first three, ReLU) with ngf*[8,8,8,8,4,2,1] filters, each concatenated with the mirrored
    down output; then ConvTranspose k4 s2 to ``out_channels`` and tanh. Differences from the
    notebook: LeakyReLU keeps Keras' default slope 0.3, norm comes from ``norm`` (instance norm
    is non-affine), and the innermost (1x1 at 256px) down layer has no norm -- instance-norming
    a 1x1 map zeroes it (Keras) or fails (PyTorch). The dropout is part of the architecture.
    Inputs must be multiples of 256.
    """

    size_multiple = min_size = 256
    negative_slope = 0.3  # keras.layers.LeakyReLU default

    def __init__(self, in_channels: Width = 3, out_channels: Width = 3, ngf: Width = 64,
                 norm: Norm = "instance") -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        down_widths = [ngf * k for k in (1, 2, 4, 8, 8, 8, 8, 8)]
        up_widths = [ngf * k for k in (8, 8, 8, 8, 4, 2, 1)]
        self.down = nn.ModuleList()
        prev = in_channels
        for i, c in enumerate(down_widths):
            use_norm = 0 < i < len(down_widths) - 1
            self.down.append(nn.Sequential(nn.Conv2d(prev, c, 4, stride=2, padding=1, bias=False),
                                           norm_layer(c) if use_norm else nn.Identity(),
                                           nn.LeakyReLU(self.negative_slope)))
            prev = c
        self.up = nn.ModuleList()
        for i, c in enumerate(up_widths):
            self.up.append(nn.Sequential(nn.ConvTranspose2d(prev, c, 4, stride=2, padding=1, bias=False),
                                         norm_layer(c), nn.Dropout(0.5) if i < 3 else nn.Identity(), nn.ReLU()))
            prev = c + down_widths[-2 - i]
        self.last = nn.Sequential(nn.ConvTranspose2d(prev, out_channels, 4, stride=2, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x)
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        for up, skip in zip(self.up, reversed(skips[:-1])):
            x = torch.cat([up(x), skip], 1)
        return self.last(x)
