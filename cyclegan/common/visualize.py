"""Image grids and loss-curve plots, written as PNG files (no torchvision needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from cyclegan.common.pixels import to_uint8


def image_grid(rows: Sequence[torch.Tensor], max_columns: int = 8, pad: int = 2) -> np.ndarray:
    """One row per tensor of [-1, 1] images [N,3,H,W] (same H, W); returns an HxWx3 uint8 array."""
    rows = [to_uint8(r[:max_columns]).cpu() for r in rows]
    n_cols = max(r.size(0) for r in rows)
    _, _, h, w = rows[0].shape
    canvas = torch.full((3, len(rows) * (h + pad) + pad, n_cols * (w + pad) + pad), 255, dtype=torch.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[:, y : y + h, x : x + w] = img
    return canvas.permute(1, 2, 0).numpy()


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)  # scalable (Pillow >= 10.1 with FreeType)
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw, text: str, font, width: float) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…" if text else ""


def label_grid(grid: np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str], cell: int,
               pad: int = 2, font_size: int | None = None) -> np.ndarray:
    """``grid`` (from :func:`image_grid`, square cells of ``cell`` px) with a label left of each row and
    above each column (cut to the cell's width); the cells keep their size, the margins are added."""
    font = _font(font_size or max(10, cell // 16))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    ascent, descent = font.getmetrics()
    line = ascent + descent
    left = int(max((probe.textlength(t, font=font) for t in row_labels), default=0)) + 3 * pad
    top = line + 2 * pad if column_labels else 0
    h, w = grid.shape[:2]
    canvas = Image.new("RGB", (w + left, h + top), (255, 255, 255))
    canvas.paste(Image.fromarray(grid), (left, top))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(row_labels):
        y = top + pad + i * (cell + pad) + (cell - line) // 2
        draw.text((pad, y), text, fill=(0, 0, 0), font=font)
    for j, text in enumerate(column_labels):
        x = left + pad + j * (cell + pad)
        draw.text((x, pad), _fit(draw, text, font, cell), fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


# The training grids: three columns per row, both directions, tiles of at least MIN_TILE px.
CYCLE_COLUMNS = ("real", "translated", "reconstructed")
MIN_TILE = 128


def upscale(images: torch.Tensor, min_size: int = MIN_TILE) -> torch.Tensor:
    """[N,3,H,W] enlarged by the smallest whole factor that makes the shorter side at least ``min_size``,
    pixel for pixel (nearest): a 96 px training crop is shown at 192 px, its pixels as the network made them."""
    factor = max(1, math.ceil(min_size / min(images.shape[-2:])))
    return images if factor == 1 else F.interpolate(images.float(), scale_factor=factor, mode="nearest")


# The CycleGAN grid: one (label, visuals) row per direction; a model family declares its own (``visual_rows``)
CYCLE_ROWS = (("A -> B", ("real_A", "fake_B", "rec_A")), ("B -> A", ("real_B", "fake_A", "rec_B")))


def cycle_grid(visuals: Mapping[str, torch.Tensor], max_images: int = 4, min_tile: int = MIN_TILE,
               rows: Sequence[tuple[str, Sequence[str]]] = CYCLE_ROWS,
               columns: Sequence[str] = CYCLE_COLUMNS) -> np.ndarray:
    """The training grid of a step: per example one row per ``(label, names)`` of ``rows`` (the images
    ``visuals[name]``; CycleGAN's: ``A -> B`` real A, translated to B, reconstructed A, and ``B -> A``);
    columns and rows labelled, tiles of at least ``min_tile`` px."""
    tiles, labels = [], []
    n = min(max_images, visuals[rows[0][1][0]].size(0))
    for i in range(n):
        suffix = f"  #{i + 1}" if n > 1 else ""
        for label, names in rows:
            cells = torch.stack([visuals[name][i] for name in names])
            tiles.append(upscale(cells.detach().float(), min_tile))
            labels.append(f"{label}{suffix}")
    cell = tiles[0].shape[-1]
    return label_grid(image_grid(tiles), labels, columns, cell=cell, font_size=max(12, cell // 12))


def save_array(path: str | Path, array: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def save_image_grid(path: str | Path, rows: Sequence[torch.Tensor], max_columns: int = 8) -> Path:
    return save_array(path, image_grid(rows, max_columns))


def plot_loss_curves(history: Mapping[str, Sequence[tuple[int, float]]], path: str | Path, title: str = "") -> Path:
    """One panel for the generator terms, one for the discriminators; x = global step."""
    import matplotlib

    matplotlib.use("Agg")  # files only: works on headless machines and in workers
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_g, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in sorted(history.items()):
        if not points:
            continue
        steps, values = zip(*points)
        ax = ax_d if name.startswith("D_") else ax_g
        ax.plot(steps, values, label=name, linewidth=1, marker="o" if len(points) < 10 else None,
                markersize=3)  # a short run has a few points: markers keep them visible
    for ax, label in ((ax_g, "generator losses"), (ax_d, "discriminator losses")):
        ax.set_xlabel("step")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
