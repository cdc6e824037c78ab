"""Side-by-side grid of several models on the same inputs: ``python -m cyclegan.compare``.

Row 1 holds ``--count`` input images (evenly spaced over the sorted folder, resized to ``--size``),
then one row per ``--ckpt``: that model's translations of the same images. Each row is labelled on the
left (``input``, then the checkpoint: its run folder and file name and the direction, or ``--label``)
and each column on top (the input's file name); ``--no-labels`` writes the bare grid. Made for results pages
(e.g. the fast and the naive 10-minute run on the same test photos) and for eyeballing a sweep::

    python -m cyclegan.compare --ckpt fast.ckpt:BA --ckpt naive.ckpt:BA --input testB/ --output grid.jpg

A ``--ckpt`` value takes what ``python -m cyclegan.translate --ckpt`` takes (``path[:AB|:BA]``); join
several with commas for a chain (``monet2photo.ckpt:AB,vangogh2photo.ckpt:BA``). JPEG output keeps
the file small for a repository (``--quality``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from cyclegan.common.devices import resolve_device
from cyclegan.common.directions import direction_argument
from cyclegan.common.errors import UserError, first_line
from cyclegan.common.files import atomic_write, blocking_file
from cyclegan.common.imaging import PIL_FORMATS
from cyclegan.inference.batching import TranslateError, list_images, read_rgb
from cyclegan.inference.chain import load_chain, parse_spec
from cyclegan.inference.pretrained import is_pretrained
from cyclegan.inference.tiling import translate_tensor
from cyclegan.inference.write_errors import reporting_write_errors
from cyclegan.common.pixels import from_uint8
from cyclegan.common.subsets import evenly_spaced
from cyclegan.common.visualize import image_grid, label_grid

__all__ = ["comparison_grid", "checkpoint_label", "pick_evenly", "main"]

PAD = 2  # image_grid's padding between cells


def checkpoint_label(spec: str, default_direction: str = "AB") -> str:
    """A short row label for a --ckpt value: ``run1/last:BA`` for ``outputs/train/run1/checkpoints/last.ckpt:BA``
    (the run folder says more than ``last``), ``fast:BA`` for ``fast.ckpt:BA``; chains joined with ``→``."""
    parts = []
    for item in spec.split(","):
        p, direction = parse_spec(item, default_direction)
        if is_pretrained(p):  # one generator: its name says the direction
            parts.append(str(p))
            continue
        name = f"{p.parent.parent.name}/{p.stem}" if p.parent.name == "checkpoints" and p.parent.parent.name else p.stem
        parts.append(f"{name}:{direction}")
    return " → ".join(parts)


def pick_evenly(files: Sequence[Path], count: int) -> list[Path]:
    """``count`` files spread evenly over ``files`` (all of them when there are fewer)."""
    return evenly_spaced(files, count)


def comparison_grid(models: Sequence[torch.nn.Module], files: Sequence[Path], size: int = 256,
                    device: str | torch.device = "cpu", bf16: bool = False) -> np.ndarray:
    """H x W x 3 uint8 grid: the inputs, then each model's translations of them (one row each)."""
    if not files:
        raise TranslateError("no input images to compare")
    device = torch.device(device)
    x = torch.from_numpy(np.stack([read_rgb(f, size) for f in files])).permute(0, 3, 1, 2)
    x = from_uint8(x).to(device)
    rows = [x]
    for model in models:
        was_training = model.training
        model.eval().to(device)
        try:
            rows.append(translate_tensor(model, x, bf16=bf16).clamp(-1, 1))
        finally:
            model.train(was_training)
    return image_grid(rows, max_columns=len(files), pad=PAD)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cyclegan.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", action="append", required=True, metavar="SPEC",
                   help="a model: path[:AB|:BA], or a comma-separated chain; repeat for one row per model")
    p.add_argument("--input", required=True, metavar="PATH", help="image folder (searched recursively) or file")
    p.add_argument("--output", required=True, metavar="FILE", help="grid image (.jpg keeps it small; .png)")
    p.add_argument("--count", type=int, default=8, metavar="N", help="input images, evenly spaced (default 8)")
    p.add_argument("--size", type=int, default=256, metavar="PX", help="inputs are resized to PX x PX (default 256)")
    p.add_argument("--direction", default="AB", type=direction_argument, metavar="{AB,BA}",
                   help="direction of specs without :AB/:BA (default AB; A2B/B2A also read)")
    p.add_argument("--allow-torchscript", action="store_true",
                   help="load TorchScript --ckpt files (their code runs: trusted files only); never implied by a name")
    p.add_argument("--device", default=None, metavar="DEV", help="cuda, cpu (default: cuda when available)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--quality", type=int, default=85, metavar="Q", help="JPEG quality, 1-100 (default 85)")
    p.add_argument("--label", action="append", default=None, metavar="TEXT",
                   help="row label of the matching --ckpt (repeat in the same order; default: run/file:direction)")
    p.add_argument("--no-labels", action="store_true", help="no row and column labels around the grid")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count < 1 or args.size < 1:
        print(f"{parser.prog}: error: --count and --size must be positive", file=sys.stderr)
        return 2
    if not 1 <= args.quality <= 100:
        print(f"{parser.prog}: error: --quality {args.quality}: JPEG quality is 1 to 100 (default 85)", file=sys.stderr)
        return 2
    if args.label is not None and len(args.label) != len(args.ckpt):
        print(f"{parser.prog}: error: {len(args.label)} --label for {len(args.ckpt)} --ckpt: give one per --ckpt",
              file=sys.stderr)
        return 2
    out = Path(args.output)
    try:
        device = resolve_device(args.device, key="--device")
        if out.suffix.lower() not in PIL_FORMATS:
            raise TranslateError(f"--output {out}: the grid is an image, name it .jpg or .png")
        blocker = blocking_file(out.parent)
        if out.is_dir() or blocker is not None:
            raise TranslateError(f"--output {out}: {blocker or out} is a {'file' if blocker else 'folder'}; "
                                 "choose another path for the grid")
        models = [load_chain(spec.split(","), default_direction=args.direction,
                             allow_torchscript=args.allow_torchscript) for spec in args.ckpt]
        models = [m.generators[0] if len(m.generators) == 1 else m for m in models]
        root, rel = list_images(args.input)
        files = [root / r for r in pick_evenly(rel, args.count)]
        grid = comparison_grid(models, files, size=args.size, device=device, bf16=args.bf16)
        if not args.no_labels:
            rows = ["input"] + (args.label or [checkpoint_label(spec, args.direction) for spec in args.ckpt])
            grid = label_grid(grid, rows, [f.name for f in files], cell=args.size, pad=PAD)
        options = {"quality": args.quality} if out.suffix.lower() in (".jpg", ".jpeg") else {}
        with reporting_write_errors(out), atomic_write(out) as tmp:  # never half a grid
            Image.fromarray(grid).save(tmp, format=PIL_FORMATS[out.suffix.lower()], **options)
    except (OSError, UserError) as exc:  # OSError: missing or unreadable files (named)
        print(f"{parser.prog}: error: {first_line(exc)}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(files)} inputs x {len(models)} model(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
