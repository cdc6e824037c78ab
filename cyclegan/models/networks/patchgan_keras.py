"""The PatchGAN discriminator of the Kaggle/Keras CycleGAN tutorial."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import get_norm_layer
from ..options import Norm, Width


class KerasDiscriminator(nn.Module):
    """PatchGAN of the Kaggle/Keras CycleGAN tutorial (A. Jang, "Monet CycleGAN").

    Conv k4 s2 'same' (no bias) with ndf (no norm), 2ndf, 4ndf filters + norm + LeakyReLU;
    zero-pad 1, Conv 8ndf k4 s1 (no bias), norm, LeakyReLU; zero-pad 1, Conv 1 k4 s1.
    30x30 logits at 256px, like the 70x70 PatchGAN. LeakyReLU uses Keras' default slope 0.3.
    """

    negative_slope = 0.3  # keras.layers.LeakyReLU default

    def __init__(self, in_channels: Width = 3, ndf: Width = 64, norm: Norm = "instance") -> None:
        super().__init__()
        norm_layer, slope = get_norm_layer(norm), self.negative_slope
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1, bias=False), nn.LeakyReLU(slope),
            nn.Conv2d(ndf, 2 * ndf, 4, stride=2, padding=1, bias=False), norm_layer(2 * ndf), nn.LeakyReLU(slope),
            nn.Conv2d(2 * ndf, 4 * ndf, 4, stride=2, padding=1, bias=False), norm_layer(4 * ndf), nn.LeakyReLU(slope),
            nn.ZeroPad2d(1), nn.Conv2d(4 * ndf, 8 * ndf, 4, bias=False), norm_layer(8 * ndf), nn.LeakyReLU(slope),
            nn.ZeroPad2d(1), nn.Conv2d(8 * ndf, 1, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
