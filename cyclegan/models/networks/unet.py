"""The pix2pix U-Net generator (reference-compatible: its state dict loads the official checkpoints)."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from ..layers import conv_bias, get_norm_layer
from ..options import AtLeast, Norm, Width
from .base import ImageGenerator


class UnetSkipConnectionBlock(nn.Module):
    """One level of the recursive pix2pix U-Net: down-conv, inner submodule, up-conv, skip.

    Outermost level: no activation/norm before its down-conv, up path ends in tanh, no skip.
    Innermost level: no norm after its down-conv, no submodule. Others: LeakyReLU(0.2), conv,
    norm, submodule, ReLU, transposed conv, norm (+ dropout). Non-outermost levels return
    ``cat([x, block(x)])``. (The reference's in-place LeakyReLU also rewrites the skip tensor,
    but the parent's ReLU comes first, and ReLU(LeakyReLU(x)) == ReLU(x), so no op here is
    in-place and the results are identical.)
    """

    def __init__(self, outer_nc: int, inner_nc: int, *, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        down = nn.Conv2d(outer_nc if input_nc is None else input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(2 * inner_nc, outer_nc, 4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2), down, nn.ReLU(), up, norm_layer(outer_nc)]
        else:
            up = nn.ConvTranspose2d(2 * inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2), down, norm_layer(inner_nc), submodule, nn.ReLU(), up, norm_layer(outer_nc)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(ImageGenerator):
    """pix2pix U-Net (Isola et al., 2017) with ``depth`` stride-2 downsamplings.

    Level ``i`` (0 = outermost) has ``ngf * min(2**i, 8)`` inner channels; the levels between
    the 4th and the innermost may use dropout. ``depth=8`` is the reference ``unet_256``,
    ``depth=7`` ``unet_128`` (the reference needs depth >= 5; smaller depths are an extension).
    Inputs must be multiples of ``2**depth``.
    """

    def __init__(self, in_channels: Width = 3, out_channels: Width = 3, ngf: Width = 64, norm: Norm = "instance",
                 dropout: bool = False, depth: Annotated[int, AtLeast(2)] = 8) -> None:
        super().__init__()
        self.size_multiple = self.min_size = 2**depth

        def width(level: int) -> int:
            return ngf * min(2**level, 8)

        block = None
        for level in reversed(range(depth)):
            block = UnetSkipConnectionBlock(
                width(level - 1) if level else out_channels, width(level),
                input_nc=in_channels if level == 0 else None, submodule=block,
                outermost=level == 0, innermost=level == depth - 1, norm=norm,
                dropout=dropout and 4 <= level < depth - 1,
            )
        self.model = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x)
        return self.model(x)
