"""The ResNet generator (reference-compatible), with the CPU painter's and CUT's options.

``ResnetGenerator`` reproduces the official CycleGAN code's module layout exactly (attribute names and
``nn.Sequential`` indices), so its state dict loads reference checkpoints unchanged; with
``antialias=True`` it reproduces the official CUT generator's layout instead.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import nn

from ..layers import conv_bias, get_norm_layer
from ..options import AtLeast, Norm, Width
from .antialias import BlurDownsample, BlurUpsample
from .base import ImageGenerator

# |x| is clamped to this before atanh in residual_output generators (atanh(1 - 1e-3) = 3.8)
RESIDUAL_CLAMP = 1 - 1e-3


class ResnetBlock(nn.Module):
    """Residual block ``x + conv_block(x)``: two 3x3 convs with reflection padding and norm.

    The optional dropout sits between the convs, which shifts the second conv's index from 5
    to 6, exactly as in the reference.
    """

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(dim), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResizeConv(nn.Module):
    """2x nearest-neighbour upsampling then a 3x3 convolution (Odena et al. 2016, "Deconvolution and
    Checkerboard Artifacts"): every output pixel gets the same number of kernel taps, so unlike a stride-2
    transposed convolution it cannot paint a checkerboard."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(self.up(x)))


class ResnetGenerator(ImageGenerator):
    """Johnson et al.'s transformation network, as used by CycleGAN (Zhu et al., 2017) and CUT (Park et al., 2020).

    c7s1-ngf, two stride-2 3x3 downsamplings (ngf*2, ngf*4), ``n_blocks`` residual blocks at
    ngf*4, two stride-2 transposed-conv upsamplings, c7s1-out with tanh. Reflection padding
    around the 7x7 convs and inside the blocks. The paper uses 9 blocks at 256x256 and 6 at
    128x128. Inputs must be multiples of 4 (two downsamplings) and at least 8 pixels.

    Options beyond the reference (the defaults build the reference's network):

    - ``upsample="resize"``: nearest upsampling + conv instead of transposed convs (no checkerboard);
    - ``residual_output``: output = tanh(atanh(x) + r) with the last conv zeroed, so the generator starts
      as the identity;
    - ``antialias`` (the official CUT generator's default): each downsampling is a stride-1 conv, norm,
      ReLU and a fixed blur with stride 2; each upsampling a fixed blurred 2x upsampling then a stride-1
      conv (``antialias_up``, which follows ``antialias`` unless set, is CUT's ``not no_antialias_up``).
    """

    size_multiple = 4
    min_size = 8

    def __init__(self, in_channels: Width = 3, out_channels: Width = 3, ngf: Width = 64, norm: Norm = "instance",
                 dropout: bool = False, n_blocks: Annotated[int, AtLeast(0)] = 9,
                 upsample: Literal["deconv", "resize"] = "deconv", residual_output: bool = False,
                 antialias: bool = False, antialias_up: bool | None = None) -> None:
        super().__init__()
        blur_up = antialias if antialias_up is None else antialias_up
        if residual_output and in_channels != out_channels:
            raise ValueError(f"residual_output needs in_channels == out_channels (got {in_channels} and {out_channels})")
        if blur_up and upsample != "deconv":
            raise ValueError(f"upsample={upsample!r} and antialiased upsampling exclude each other: "
                             "set antialias_up=false or upsample=deconv")
        self.residual_output = bool(residual_output)
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   norm_layer(ngf), nn.ReLU()]
        for i in range(2):
            c = ngf * 2**i
            if antialias:
                layers += [nn.Conv2d(c, 2 * c, 3, padding=1, bias=bias), norm_layer(2 * c), nn.ReLU(),
                           BlurDownsample(2 * c)]
            else:
                layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), norm_layer(2 * c), nn.ReLU()]
        layers += [ResnetBlock(ngf * 4, norm, dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            if blur_up:
                layers += [BlurUpsample(c), nn.Conv2d(c, c // 2, 3, padding=1, bias=bias)]
            elif upsample == "deconv":
                layers.append(nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias))
            else:
                layers.append(ResizeConv(c, c // 2, bias))
            layers += [norm_layer(c // 2), nn.ReLU()]
        # residual_output: the last conv predicts a change in tanh's argument (no tanh inside the Sequential,
        # so the state-dict keys stay the reference's: Tanh has no parameters)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7),
                   nn.Identity() if residual_output else nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def after_init(self) -> None:
        if self.residual_output:
            self.zero_init_output()

    def zero_init_output(self) -> None:
        """Zero the last conv: with ``residual_output`` the generator then starts as the identity."""
        last = self.model[-2]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x)
        if not self.residual_output:
            return self.model(x)
        # tanh(atanh(x) + r): exactly x while r = 0, always inside (-1, 1), smooth everywhere (a clamp of
        # x + r would stop the gradient of saturated pixels). The clamp keeps atanh finite at +-1.
        base = torch.atanh(x.float().clamp(-RESIDUAL_CLAMP, RESIDUAL_CLAMP))
        return torch.tanh(base + self.model(x).float()).to(x.dtype)
