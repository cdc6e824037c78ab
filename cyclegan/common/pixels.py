"""The one pixel convention: networks see float images in [-1, 1], files and grids hold uint8 0..255.

Every conversion between the two goes through these two functions, so training, translation,
evaluation and the image grids round the same way (x = u / 127.5 - 1, u = round((x + 1) * 127.5)).
"""

from __future__ import annotations

import torch

__all__ = ["from_uint8", "to_uint8"]


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or float 0..255) images -> new float32 tensor in [-1, 1], same shape and device."""
    return images.to(torch.float32, copy=True).div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 0..255 (rounded, values outside clamped), same shape and device."""
    return images.detach().float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
