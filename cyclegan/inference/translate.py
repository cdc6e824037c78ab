"""Translate images with trained CycleGAN generators (batch inference, Kaggle submission zip).

Library API::

    from cyclegan.inference.chain import load_chain
    from cyclegan.inference.checkpoint import load_generator
    from cyclegan.inference.kaggle import KAGGLE_SIZE, kaggle_zip_summary, make_kaggle_zip
    from cyclegan.inference.translate import translate_folder

    G = load_generator("monet2photo.ckpt", direction="BA")          # photo -> Monet
    translate_folder(G, "photos/", "out/")                           # any sizes, same names
    make_kaggle_zip(G, "photo_jpg/", "images.zip")                   # 7,000-10,000 256x256 JPEGs
    chain = load_chain(["monet2photo.ckpt:AB", "vangogh2photo.ckpt:BA"])  # Monet -> photo -> Van Gogh

Command line: ``python -m cyclegan.translate --help``.

This module translates folders and single images and is the command line; the parts live beside it:
:mod:`~cyclegan.inference.tiling` (any size, tiles, precision), :mod:`~cyclegan.inference.batching`
(decoding workers, the GPU loop, the encoder pool), :mod:`~cyclegan.inference.chain` (chains of
generators), :mod:`~cyclegan.inference.kaggle` (the submission zip).
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import sys
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn
from tqdm.auto import tqdm

from cyclegan.common.devices import resolve_device
from cyclegan.common.directions import direction_argument
from cyclegan.common.errors import UserError, first_line
from cyclegan.common.files import atomic_write, blocking_file
from cyclegan.common.imaging import IMAGE_EXTENSIONS, PIL_FORMATS, load_image, to_rgb
from cyclegan.inference.batching import (
    ImageDataset,
    TranslateError,
    default_workers,
    drain,
    encoder_pool,
    infer_loop,
    inference_setup,
    list_images,
    make_loader,
    module_device,
    size_batches,
)
from cyclegan.inference.chain import load_chain
from cyclegan.inference.export import export_generator
from cyclegan.inference.kaggle import (
    KAGGLE_MAX_IMAGES, KAGGLE_MIN_IMAGES, KAGGLE_SIZE, kaggle_zip_summary, make_kaggle_zip,
)
from cyclegan.inference.pretrained import pretrained_listing
from cyclegan.inference.tiling import to_uint8_nhwc, translate_tensor
from cyclegan.inference.write_errors import reporting_write_errors
from cyclegan.models.compile import auto_compile, compile_for_inference
from cyclegan.common.pixels import from_uint8

__all__ = ["translate_image", "translate_folder", "build_parser", "main"]

log = logging.getLogger(__name__)


def translate_image(generator: nn.Module, image: Image.Image | str | os.PathLike, *, tile: int | None = None,
                    bf16: bool = False) -> Image.Image:
    """Translate one PIL image (or image file) -> RGB PIL image of the same size."""
    img = to_rgb(ImageOps.exif_transpose(image)) if isinstance(image, Image.Image) else load_image(image)
    arr = np.array(img, dtype=np.uint8)
    device = module_device(generator)
    x = from_uint8(torch.from_numpy(arr).to(device).permute(2, 0, 1)[None])
    y = translate_tensor(generator, x, tile=tile, bf16=bf16)
    return Image.fromarray(to_uint8_nhwc(y)[0].cpu().numpy(), "RGB")


# --------------------------------------------------------------------------------------
# folders
# --------------------------------------------------------------------------------------
def _save(arr: np.ndarray, path: Path, fmt: str, quality: int) -> Path:
    kwargs: dict[str, Any] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    with reporting_write_errors(path), atomic_write(path) as tmp:
        Image.fromarray(arr, "RGB").save(tmp, format=fmt, **kwargs)
    return path


def _save_batch(arr: np.ndarray, paths: Sequence[Path], quality: int) -> list[Path]:
    return [_save(a, p, PIL_FORMATS[p.suffix.lower()], quality) for a, p in zip(arr, paths)]


def _norm_ext(ext: str | None) -> str | None:
    if ext is None:
        return None
    e = "." + str(ext).lower().lstrip(".")
    if e not in PIL_FORMATS:
        raise TranslateError(f"unsupported output extension {ext!r}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    return e


def translate_folder(generator_or_chain: nn.Module, input_path: str | os.PathLike, output_dir: str | os.PathLike, *,
                     batch_size: int = 16, device: str | torch.device | None = None, bf16: bool = False,
                     num_workers: int | None = None, tile: int | None = None, ext: str | None = None,
                     quality: int = 95, progress: bool = True, channels_last: bool = False,
                     compile: Any = False) -> list[Path]:
    """Translate an image file or a folder (recursively) into ``output_dir``, keeping relative names.

    Images keep their size (any size/aspect; reflect-padded to the generator's size_multiple
    and cropped back); grayscale/RGBA/palette inputs become RGB. Outputs keep the input's
    extension unless ``ext`` ("jpg", "png", ...) is given. If ``input_path`` is a file and
    ``output_dir`` ends in an image extension, it is the output file itself.
    ``device``: default cuda when available. The model is moved there (and put in eval mode
    for the call). ``tile``: translate images larger than tile x tile in overlapping tiles.
    Same-size images are batched (``batch_size``, fewer for big images); decoding runs in
    ``num_workers`` DataLoader workers (default: auto). ``compile``: torch.compile the model in place
    first (as ``model.compile``, or ``"auto"``: on a CPU for 256 images or more; shapes generalise
    after the second image size; a machine that cannot compile runs eagerly). Returns the written
    paths, in input order.
    """
    model = generator_or_chain
    dev = resolve_device(device, key="--device")
    if batch_size < 1:
        raise TranslateError("batch_size must be >= 1")
    if tile is not None and tile < 1:
        raise TranslateError("tile must be a positive number of pixels")
    force = _norm_ext(ext)
    out = Path(output_dir)
    in_path = Path(input_path)
    root, rel = list_images(in_path, exclude=out if in_path.is_dir() else None)
    if in_path.is_file() and out.suffix.lower() in PIL_FORMATS and not out.is_dir():
        targets = [out]
        _check_output_folder(out.parent, f"{out}: the folder for it")
    else:
        targets = [out / (r.with_suffix(force) if force else r) for r in rel]
        _check_output_folder(out, f"output {out}")
    sources = [root / r for r in rel]
    resolved_src = {s.resolve() for s in sources}
    seen: set[Path] = set()
    for t in targets:
        rt = t.resolve()
        if rt in resolved_src:
            raise TranslateError(f"refusing to overwrite the input image {t}; choose another output folder")
        if rt in seen:
            raise TranslateError(f"two inputs would both be written to {t} (use the input extension, not --ext)")
        seen.add(rt)
    batches = size_batches(sources, batch_size, tile, max_pixels=batch_size * 512 * 512)
    workers = default_workers(len(batches)) if num_workers is None else int(num_workers)
    loader = make_loader(ImageDataset(sources), batches, workers, pin=dev.type == "cuda")
    written: list[Path | None] = [None] * len(sources)
    skipped: list[str] = []

    def consume(idx, paths):
        for i, p in zip(idx, paths):
            written[i] = p

    with encoder_pool(len(sources)) as pool, inference_setup(model, dev, channels_last), \
            tqdm(total=len(sources), unit="img", desc="translate", disable=not progress) as bar:
        compile_for_inference([model], auto_compile(compile, dev, len(sources)), dynamic=None)
        futures: collections.deque = collections.deque()
        for idx, arr in infer_loop(model, loader, dev, bf16=bf16, tile=tile, batch_size=batch_size,
                                   channels_last=channels_last, skipped=skipped):
            futures.append((idx, pool.submit(_save_batch, arr, [targets[i] for i in idx], quality)))
            drain(futures, consume, limit=32)
            bar.update(len(idx))
        drain(futures, consume, limit=0)
    done = [p for p in written if p is not None]
    if skipped:
        if not done:
            raise TranslateError(f"none of the {len(sources)} image(s) under {input_path} could be read ({skipped[0]})")
        log.warning("skipped %d of %d image(s) that could not be read (see the warnings above); %d written",
                    len(skipped), len(sources), len(done))
    return done


def _check_output_folder(folder: Path, what: str) -> None:
    """Refuse, before any work, an output folder that a file stands in the way of."""
    blocker = blocking_file(folder)
    if blocker is not None:
        where = "is a file" if blocker == folder.absolute() else f"cannot be created: {blocker} is a file"
        raise TranslateError(f"{what} {where}; choose a folder (or a path where one can be created)")


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------
_EPILOG = """\
examples:
  # photos -> Monet paintings with the painter bundled with the package (--list-pretrained: all of them)
  python -m cyclegan.translate --ckpt pretrained:photo2monet_cpu --input photos/ --output paintings/

  # photos -> Monet paintings with the BA generator of a monet2photo run (any image sizes)
  python -m cyclegan.translate --ckpt monet2photo.ckpt --direction BA --input photos/ --output out/

  # bigger batches, bf16 on the GPU, 512px tiles for huge images, write PNGs
  python -m cyclegan.translate --ckpt m2p.ckpt:BA --input photos/ --output out/ \\
      --batch-size 32 --bf16 --tile 512 --ext png

  # chain: Monet -> photo -> Van Gogh
  python -m cyclegan.translate --ckpt monet2photo.ckpt:AB --ckpt vangogh2photo.ckpt:BA \\
      --input monet/ --output monet_as_vangogh/

  # Kaggle "I'm Something of a Painter Myself": 7,000-10,000 256x256 JPEGs in images.zip
  python -m cyclegan.translate --ckpt monet2photo.ckpt:BA --input photo_jpg/ --kaggle-zip images.zip

  # export the generator alone (state_dict .pt, TorchScript .ts or ONNX .onnx)
  python -m cyclegan.translate --ckpt monet2photo.ckpt:BA --export onnx --output monet.onnx

  # the official CycleGAN release weights (architecture given with --gen)
  python -m cyclegan.translate --ckpt latest_net_G_A.pth --gen resnet_9blocks --input x.jpg --output y.jpg

--ckpt accepts Lightning .ckpt files (SPEC = path[:AB|:BA]), generators exported with --export
state_dict, half or ts, bare generator state dicts, and pretrained:NAME (bundled with the package).
Files are read with torch.load(weights_only=True): pickles that would need arbitrary code execution
are refused. TorchScript files (--export ts) are programs whose code runs when they are loaded:
they are loaded only with --allow-torchscript, whatever their name.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cyclegan.translate",
        description="Translate images with trained CycleGAN generators, build a Kaggle submission zip, "
                    "or export a generator.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ckpt", action="append", metavar="SPEC",
                   help="checkpoint[:AB|:BA] or pretrained:NAME; repeat to chain generators (applied in order)")
    p.add_argument("--list-pretrained", action="store_true",
                   help="list the generators bundled with the package (pretrained:NAME) and exit")
    p.add_argument("--direction", default=None, type=direction_argument, metavar="{AB,BA}",
                   help="direction for --ckpt specs without :AB/:BA (default: AB = domain A -> B, or the one "
                        "direction a CUT checkpoint has; A2B/B2A also read)")
    p.add_argument("--allow-torchscript", action="store_true",
                   help="load TorchScript --ckpt files (their code runs: trusted files only); never implied by a name")
    p.add_argument("--gen", default=None, metavar="NAME",
                   help="architecture of bare state dicts, e.g. resnet_9blocks, unet_256 (default resnet_9blocks); "
                        "checkpoints and exported generators keep their own")
    p.add_argument("--input", metavar="PATH", help="image file or folder (searched recursively)")
    p.add_argument("--output", metavar="PATH", help="output folder (or file for one input image / --export)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="images per batch (default 16; 64 with --kaggle-zip)")
    p.add_argument("--device", default=None, metavar="DEV", help="cuda, cuda:1, cpu (default: cuda when available)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (fast on recent GPUs)")
    p.add_argument("--channels-last", action="store_true",
                   help="channels_last memory format on the GPU (slower for InstanceNorm generators)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the generator first (about a minute once, then 1.2-1.7x faster on a CPU; "
                        "runs eagerly where it cannot compile). Default: on for 256+ images on a CPU, off on a GPU")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="translate images larger than N x N in overlapping tiles (bounds memory)")
    p.add_argument("--ext", default=None, metavar="EXT", help="force the output format: jpg, png, webp, bmp (default: keep)")
    p.add_argument("--quality", type=int, default=95, metavar="Q", help="JPEG/WebP quality, 1-100 (default 95)")
    p.add_argument("--num-workers", type=int, default=None, metavar="N", help="decoding worker processes (default: auto)")
    p.add_argument("--kaggle-zip", metavar="ZIP", default=None,
                   help="write a Kaggle submission zip of 256x256 JPEGs from the --input photos")
    p.add_argument("--min-count", type=int, default=KAGGLE_MIN_IMAGES, metavar="N",
                   help="--kaggle-zip: fewest images allowed (default 7000, Kaggle's minimum; lower it for a test zip)")
    p.add_argument("--max-count", type=int, default=KAGGLE_MAX_IMAGES, metavar="N",
                   help="--kaggle-zip: most images allowed (default 10000, Kaggle's maximum)")
    p.add_argument("--size", type=int, default=None, metavar="PX",
                   help="--kaggle-zip: image size (Kaggle takes 256 only, the default)")
    p.add_argument("--export", choices=["state_dict", "half", "ts", "onnx"], default=None,
                   help="export the generator (or chain, ts/onnx only) to --output instead of translating "
                        "(half: the state_dict in float16)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _fail(parser: argparse.ArgumentParser, msg: str) -> int:
    print(f"{parser.prog}: error: {msg}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_pretrained:
        print(pretrained_listing())
        return 0
    if not args.ckpt:
        return _fail(parser, "--ckpt is required (a checkpoint, an exported generator or pretrained:NAME)")
    modes = sum(x is not None for x in (args.kaggle_zip, args.export))
    if modes > 1:
        return _fail(parser, "--kaggle-zip and --export are exclusive")
    if args.export is not None:
        if not args.output:
            return _fail(parser, "--export needs --output FILE")
    elif args.input is None:
        return _fail(parser, "--input is required (unless --export)")
    elif args.kaggle_zip is None and not args.output:
        return _fail(parser, "--output is required")
    for name in ("batch_size", "tile", "num_workers", "size"):
        v = getattr(args, name)
        if v is not None and v < (0 if name == "num_workers" else 1):
            return _fail(parser, f"--{name.replace('_', '-')} must be positive")
    if not 1 <= args.quality <= 100:
        return _fail(parser, f"--quality {args.quality}: JPEG/WebP quality is 1 to 100 (default 95)")
    if args.kaggle_zip is not None and args.size not in (None, KAGGLE_SIZE):
        return _fail(parser, f"--size {args.size}: Kaggle's submission takes {KAGGLE_SIZE}x{KAGGLE_SIZE} images only, "
                             "and would reject this zip; leave --size out")
    if args.kaggle_zip is None and args.size is not None:
        print(f"{parser.prog}: warning: --size only applies to --kaggle-zip; ignored", file=sys.stderr)
    try:
        chain = load_chain(args.ckpt, default_direction=args.direction, allow_torchscript=args.allow_torchscript,
                           state_dict_gen=args.gen)
        model: nn.Module = chain.generators[0] if len(chain.generators) == 1 else chain
        progress = not args.quiet
        compile_spec = "auto" if args.compile is None else args.compile  # neither flag: auto
        if args.export is not None:
            path = export_generator(model, args.output, args.export)
            note = " (a TorchScript program: loading it back needs --allow-torchscript)" if args.export == "ts" else ""
            print(f"exported {args.export} -> {path}{note}")
        elif args.kaggle_zip is not None:
            path = make_kaggle_zip(model, args.input, args.kaggle_zip, min_count=args.min_count,
                                   max_count=args.max_count, size=KAGGLE_SIZE, batch_size=args.batch_size or 64,
                                   device=args.device, bf16=args.bf16, num_workers=args.num_workers,
                                   quality=args.quality, progress=progress, channels_last=args.channels_last,
                                   compile=compile_spec)
            with zipfile.ZipFile(path) as zf:
                print(kaggle_zip_summary(path, len(zf.namelist()), KAGGLE_SIZE))
        else:
            paths = translate_folder(model, args.input, args.output, batch_size=args.batch_size or 16,
                                     device=args.device, bf16=args.bf16, num_workers=args.num_workers,
                                     tile=args.tile, ext=args.ext, quality=args.quality, progress=progress,
                                     channels_last=args.channels_last, compile=compile_spec)
            print(f"wrote {len(paths)} image(s) to {args.output}")
    except (OSError, UserError) as exc:  # OSError: a file that cannot be read or written (named in the message)
        return _fail(parser, first_line(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
