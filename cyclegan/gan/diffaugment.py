"""Differentiable augmentation for the discriminators (Zhao et al. 2020, "Differentiable
Augmentation for Data-Efficient GAN Training").

With few target images (monet2photo has 220 training paintings) a discriminator memorises them and
its feedback to the generator degrades. DiffAugment applies the same kind of random transformation
to real *and* fake images before every discriminator call (in the generator step as well as in the
discriminator step), built from differentiable tensor operations, so the generator still gets
gradients through the augmented fakes and D never sees an un-augmented image it could memorise.

``model.diffaugment`` is a comma-separated policy of the transforms below, applied in the order
given; each draws its own random parameters per image (real and fake batches get independent
draws, as in the paper: "the same kind", not the same pixels). Images are in [-1, 1].

- ``color``: brightness shift in [-0.5, 0.5), saturation factor in [0, 2), contrast factor in [0.5, 1.5)
- ``translation``: shift by up to 1/8 of the size in x and y, the uncovered border filled with 0 (mid-grey)
- ``cutout``: zero one square of half the size at a random position
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _rand(x: torch.Tensor) -> torch.Tensor:
    """One uniform [0, 1) number per image, broadcastable over C, H, W (fp32, on x's device)."""
    return torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=torch.float32)


def color(x: torch.Tensor) -> torch.Tensor:
    x = x + (_rand(x) - 0.5).to(x.dtype)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x) * 2).to(x.dtype) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x) + 0.5).to(x.dtype) + mean


def translation(x: torch.Tensor, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    # output pixel (i, j) takes input pixel (i - dy, j - dx); outside the image -> 0 (padding of 1)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) - dy + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) - dx + 1).clamp(0, w + 1)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    # advanced indexing over (batch, H, W) with the channels kept: gather as N x H x W x C, back to NCHW
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols]
    return out.permute(0, 3, 1, 2).contiguous(memory_format=_format_of(x))


def cutout(x: torch.Tensor, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # the square's centre anywhere such that at least part of it is inside (as the paper's code)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    dy, dx = ys - cy + ch // 2, xs - cx + cw // 2  # position inside the square when in [0, size)
    inside = (dy >= 0) & (dy < ch) & (dx >= 0) & (dx < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def _format_of(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "color": color, "translation": translation, "cutout": cutout,
}


def parse_policy(policy: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"color,translation,cutout"`` (or a list) -> the transform names; None / "" / "none" -> ()."""
    if policy is None or policy is False:
        return ()
    names = policy.split(",") if isinstance(policy, str) else [str(p) for p in policy]
    names = [n.strip().lower() for n in names if n.strip()]
    if names in (["none"], ["false"], ["off"]):
        return ()
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise ValueError(f"model.diffaugment: unknown transform {', '.join(map(repr, unknown))}; "
                         f"use a comma-separated subset of {', '.join(TRANSFORMS)} (or null to disable)")
    return tuple(names)


class DiffAugment(torch.nn.Module):
    """The policy as a module (no parameters, no state-dict entries): ``D(augment(x))``."""

    def __init__(self, policy: str | Sequence[str] | None):
        super().__init__()
        self.policy = parse_policy(policy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.policy:
            x = TRANSFORMS[name](x)
        return x

    def extra_repr(self) -> str:
        return ",".join(self.policy)
