"""Anti-aliased resampling of the CUT code (Zhang, "Making Convolutional Networks Shift-Invariant
Again", 2019): blur with a fixed binomial filter before subsampling, and after zero-insertion upsampling.

The filters are buffers, not parameters, and they are *persistent*: the official CUT networks save them
(``model.7.filt`` etc.), so keeping them in the state dict lets those checkpoints load strictly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def binomial_filter(size: int) -> torch.Tensor:
    """The ``size`` x ``size`` outer product of the binomial row (1 2 1 for 3, 1 3 3 1 for 4), summing to 1."""
    row = torch.tensor([float(math.comb(size - 1, k)) for k in range(size)])
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Reflect-pad by 1, then a depthwise 3x3 binomial blur with stride 2 (halves height and width)."""

    def __init__(self, channels: int, filter_size: int = 3) -> None:
        super().__init__()
        before, after = (filter_size - 1) // 2, filter_size // 2
        self.pad = nn.ReflectionPad2d((before, after, before, after))
        self.register_buffer("filt", binomial_filter(filter_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Doubles height and width: replicate-pad by 1, a depthwise stride-2 transposed conv with the 4x4
    binomial filter (scaled by 4 so a flat image keeps its level), then crop the padding's border."""

    def __init__(self, channels: int, filter_size: int = 4) -> None:
        super().__init__()
        self.filter_size = filter_size
        self.pad = nn.ReplicationPad2d(1)
        self.register_buffer("filt", (binomial_filter(filter_size) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = 1 + (self.filter_size - 1) // 2
        y = F.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=padding, groups=x.shape[1])[:, :, 1:, 1:]
        return y if self.filter_size % 2 else y[:, :, :-1, :-1]
