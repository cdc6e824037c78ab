"""The forward pass of inference: any image size (reflect padding), tiles for huge images, precision.

Images of any size are reflect-padded to the generator's ``size_multiple`` and cropped back;
``tile=N`` translates very large images in overlapping N x N tiles blended with a linear ramp
(bounded memory; with instance norm the tiles are normalized separately, so results differ
slightly from a whole-image pass).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.inference.checkpoint import size_multiple_of
from cyclegan.common.pixels import to_uint8

__all__ = ["translate_tensor", "forward_padded", "forward_tiled", "to_uint8_nhwc"]


def _reflect_pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """F.pad(mode="reflect") that also works when the pad exceeds the image (repeated reflection)."""
    left, right, top, bottom = pad
    while left or right or top or bottom:
        h, w = x.shape[-2:]
        if h < 2 or w < 2:  # reflection needs 2 pixels
            return F.pad(x, (left, right, top, bottom), mode="replicate")
        step = (min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1))
        x = F.pad(x, step, mode="reflect")
        left, right, top, bottom = (a - b for a, b in zip((left, right, top, bottom), step))
    return x


def _padded_size(n: int, m: int, lo: int) -> int:
    return max(-(-n // m) * m, -(-lo // m) * m)


def forward_padded(model: nn.Module, x: torch.Tensor, m: int, bf16: bool, channels_last: bool) -> torch.Tensor:
    h, w = x.shape[-2:]
    lo = int(getattr(model, "min_size", 1) or 1)
    ph, pw = _padded_size(h, m, lo) - h, _padded_size(w, m, lo) - w
    top, left = ph // 2, pw // 2
    if ph or pw:
        x = _reflect_pad(x, (left, pw - left, top, ph - top))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
        y = model(x)
    y = y.float()
    if ph or pw:
        y = y[..., top:top + h, left:left + w]
    return y


def _edge_weights(n: int, ramp_lo: bool, ramp_hi: bool, overlap: int, device) -> torch.Tensor:
    """1-D blending weights of a tile: 1 inside, a linear ramp over ``overlap`` px at edges that lie
    inside the image, the outermost ``overlap // 4`` px of which get weight 0 (they see the tile
    border, not the image), so seams neither show nor leak border artifacts."""
    w = torch.ones(n, device=device)
    if overlap <= 0:
        return w
    margin = overlap // 4
    d = torch.arange(n, device=device, dtype=torch.float32)
    ramp = lambda dist: ((dist + 1 - margin) / (overlap - margin + 1)).clamp(0.0, 1.0)  # noqa: E731
    if ramp_lo:
        w = torch.minimum(w, ramp(d))
    if ramp_hi:
        w = torch.minimum(w, ramp(n - 1 - d))
    return w


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def forward_tiled(model: nn.Module, x: torch.Tensor, tile: int, overlap: int | None, m: int, bf16: bool,
                   channels_last: bool, batch_size: int) -> torch.Tensor:
    lo = int(getattr(model, "min_size", 1) or 1)
    tile = _padded_size(int(tile), m, lo)
    h0, w0 = x.shape[-2:]
    if h0 <= tile and w0 <= tile:
        return forward_padded(model, x, m, bf16, channels_last)
    # pad the whole image once, exactly as the untiled path does, then tile the padded image:
    # every tile is then a multiple of m and the result matches the untiled one away from seams
    ph, pw = _padded_size(h0, m, lo) - h0, _padded_size(w0, m, lo) - w0
    top, left = ph // 2, pw // 2
    if ph or pw:
        x = _reflect_pad(x, (left, pw - left, top, ph - top))
    n, c, h, w = x.shape
    if overlap is None:
        overlap = tile // 4
    overlap = max(0, min(int(overlap), tile // 2))
    th, tw = min(tile, h), min(tile, w)
    boxes = [(t, l) for t in _tile_starts(h, tile, overlap) for l in _tile_starts(w, tile, overlap)]
    out = None
    norm = torch.zeros((1, 1, h, w), device=x.device)
    weights = {}
    for t, l in boxes:
        wy = _edge_weights(th, t > 0, t + th < h, overlap, x.device)
        wx = _edge_weights(tw, l > 0, l + tw < w, overlap, x.device)
        weights[t, l] = wy[:, None] * wx[None, :]
        norm[0, 0, t:t + th, l:l + tw] += weights[t, l]
    for b in range(n):
        for s in range(0, len(boxes), batch_size):
            chunk = boxes[s:s + batch_size]
            tiles = torch.cat([x[b:b + 1, :, t:t + th, l:l + tw] for t, l in chunk])
            y = forward_padded(model, tiles, m, bf16, channels_last)
            if out is None:
                out = torch.zeros((n, y.shape[1], h, w), device=x.device)
            for (t, l), yt in zip(chunk, y):
                out[b, :, t:t + th, l:l + tw] += yt * weights[t, l]
    out /= norm
    return out[..., top:top + h0, left:left + w0] if (ph or pw) else out


@torch.inference_mode()
def translate_tensor(generator: nn.Module, x: torch.Tensor, *, tile: int | None = None, overlap: int | None = None,
                     bf16: bool = False, batch_size: int = 16, channels_last: bool = False) -> torch.Tensor:
    """Translate an N x 3 x H x W float batch in [-1, 1] (any H, W) -> float batch, same size.

    Runs on ``x``'s device (the generator must be there). ``tile``: tile size for large images
    (rounded up to a multiple of ``size_multiple``), ``overlap`` defaults to tile // 4.
    """
    m = size_multiple_of(generator)
    cl = channels_last and x.device.type == "cuda"
    if tile:
        return forward_tiled(generator, x, tile, overlap, m, bf16, cl, batch_size)
    return forward_padded(generator, x, m, bf16, cl)


def to_uint8_nhwc(y: torch.Tensor) -> torch.Tensor:
    return to_uint8(y).permute(0, 2, 3, 1).contiguous()
