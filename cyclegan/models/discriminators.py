"""Discriminators: PatchGAN and PixelGAN (reference-compatible) and the Keras-tutorial PatchGAN.

All return a map of raw logits (no sigmoid); the GAN loss decides how to use them.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import INIT_TYPES, NORM_TYPES, check_choice, check_int, conv_bias, get_norm_layer, init_weights

DISCRIMINATOR_NAMES = ("patch", "basic", "pixel", "keras")


class NLayerDiscriminator(nn.Module):
    """PatchGAN (Isola et al., 2017): classifies overlapping patches as real or fake.

    ``n_layers`` stride-2 4x4 convs (ndf, 2ndf, ... capped at 8ndf; no norm on the first),
    then a stride-1 4x4 conv, norm, LeakyReLU(0.2) and a stride-1 4x4 conv to one channel.
    ``n_layers=3`` gives the 70x70 receptive field used by CycleGAN (30x30 logits at 256px).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        prev = ndf
        for n in range(1, n_layers + 1):
            c = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(prev, c, 4, stride=stride, padding=1, bias=bias), norm_layer(c), nn.LeakyReLU(0.2)]
            prev = c
        layers.append(nn.Conv2d(prev, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PixelGAN (pix2pix): judges every pixel independently with 1x1 convs (same H, W out)."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, norm: str = "instance") -> None:
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, 2 * ndf, 1, bias=bias), norm_layer(2 * ndf), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * ndf, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class KerasDiscriminator(nn.Module):
    """PatchGAN of the Kaggle/Keras CycleGAN tutorial (A. Jang, "Monet CycleGAN").

    Conv k4 s2 'same' (no bias) with ndf (no norm), 2ndf, 4ndf filters + norm + LeakyReLU;
    zero-pad 1, Conv 8ndf k4 s1 (no bias), norm, LeakyReLU; zero-pad 1, Conv 1 k4 s1.
    30x30 logits at 256px, like the 70x70 PatchGAN. LeakyReLU uses Keras' default slope 0.3.
    """

    negative_slope = 0.3  # keras.layers.LeakyReLU default

    def __init__(self, in_channels: int = 3, ndf: int = 64, norm: str = "instance") -> None:
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


def build_discriminator(name: str, *, in_channels: int = 3, ndf: int = 64, n_layers: int = 3,
                        norm: str = "instance", init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Build and initialize a discriminator by name (see ``DISCRIMINATOR_NAMES``).

    ``patch`` uses ``n_layers``; ``basic`` is the reference name for the 70x70 PatchGAN and
    fixes ``n_layers=3``; ``n_layers`` is ignored by ``pixel`` and ``keras``.
    """
    check_choice("discriminator", name, DISCRIMINATOR_NAMES)
    check_int("in_channels", in_channels, 1)
    check_int("ndf", ndf, 1)
    check_int("n_layers", n_layers, 1)
    check_choice("norm", norm, NORM_TYPES)
    check_choice("init_type", init_type, INIT_TYPES)
    if name == "basic" and n_layers != 3:
        raise ValueError(f"discriminator 'basic' fixes n_layers=3, but n_layers={n_layers} was given; "
                         "use 'patch' to choose n_layers freely")
    if name in ("patch", "basic"):
        net: nn.Module = NLayerDiscriminator(in_channels, ndf, n_layers, norm)
    elif name == "pixel":
        net = PixelDiscriminator(in_channels, ndf, norm)
    else:
        net = KerasDiscriminator(in_channels, ndf, norm)
    return init_weights(net, init_type, init_gain)
