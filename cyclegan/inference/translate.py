"""Translate images with trained CycleGAN generators (batch inference, Kaggle submission zip).

Library API::

    from cyclegan.inference.checkpoint import load_generator
    from cyclegan.inference.translate import translate_folder, make_kaggle_zip, load_chain

    G = load_generator("monet2photo.ckpt", direction="BA")          # photo -> Monet
    translate_folder(G, "photos/", "out/")                           # any sizes, same names
    make_kaggle_zip(G, "photo_jpg/", "images.zip")                   # 7,000-10,000 256x256 JPEGs
    chain = load_chain(["monet2photo.ckpt:AB", "vangogh2photo.ckpt:BA"])  # Monet -> photo -> Van Gogh

Command line: ``python -m cyclegan.translate --help``.

Images of any size are reflect-padded to the generator's ``size_multiple`` and cropped back;
``tile=N`` translates very large images in overlapping N x N tiles blended with a linear ramp
(bounded memory; with instance norm the tiles are normalized separately, so results differ
slightly from a whole-image pass). Decoding runs in DataLoader workers, inference in batches of
same-size images on the GPU when there is one (one batch in flight while the previous one is
copied back), encoding in worker processes (threads for small jobs).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import contextlib
import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cyclegan.errors import MissingFileError, UserError, first_line
from cyclegan.inference.checkpoint import CheckpointError, lcm_multiple, load_generator
from cyclegan.gan.speed import auto_compile, compile_for_inference, eager_fallback, is_compiled

__all__ = [
    "IMAGE_EXTENSIONS",
    "TranslateError",
    "KaggleZipError",
    "Chain",
    "parse_spec",
    "load_chain",
    "list_images",
    "to_rgb",
    "translate_tensor",
    "translate_image",
    "translate_folder",
    "make_kaggle_zip",
    "main",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_PIL_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}
_EXIF_ORIENTATION = 0x0112
# cudnn autotuning: measured on an H100 for the 7,038-photo Kaggle run (resnet_9blocks), it costs
# ~1.4 s on the first batch and saves ~0.2 s over the whole run, so it is left off by default
# (None: keep the global torch.backends.cudnn.benchmark setting).
_CUDNN_BENCHMARK: bool | None = None


class TranslateError(UserError, ValueError):
    """A user-facing problem with the inputs/outputs of a translation (one-line message)."""


class KaggleZipError(TranslateError):
    """The Kaggle submission would be invalid; no zip is written."""


# --------------------------------------------------------------------------------------
# generators and chains
# --------------------------------------------------------------------------------------
class Chain(nn.Module):
    """Apply generators one after the other (e.g. Monet -> photo -> Van Gogh).

    ``size_multiple`` is the lcm of the members': the input is padded once for all of them.
    """

    def __init__(self, generators: Iterable[nn.Module]):
        super().__init__()
        self.generators = nn.ModuleList(generators)
        if len(self.generators) == 0:
            raise TranslateError("a chain needs at least one generator")
        self.size_multiple = lcm_multiple(self.generators)
        self.min_size = max(int(getattr(g, "min_size", 1) or 1) for g in self.generators)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for g in self.generators:
            x = g(x)
        return x


def parse_spec(spec: str, default_direction: str = "AB") -> tuple[Path, str]:
    """``"path.ckpt:AB"`` -> (Path("path.ckpt"), "AB"); no suffix -> ``default_direction``."""
    head, sep, tail = str(spec).rpartition(":")
    if sep and tail.upper() in ("AB", "BA") and head:
        return Path(head), tail.upper()
    return Path(spec), default_direction.upper()


def load_chain(specs: Sequence[str] | str, map_location: Any = "cpu", default_direction: str = "AB",
               **gen_kwargs: Any) -> Chain:
    """A :class:`Chain` from specs like ``["monet2photo.ckpt:AB", "vangogh2photo.ckpt:BA"]``."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [str(specs)]
    gens = []
    for spec in specs:
        path, direction = parse_spec(spec, default_direction)
        gens.append(load_generator(path, direction=direction, map_location=map_location, **gen_kwargs))
    return Chain(gens)


def _size_multiple(model: nn.Module) -> int:
    m = getattr(model, "size_multiple", None)
    if m is None and hasattr(model, "generators"):
        return lcm_multiple(model.generators)
    return int(m or 1)


# --------------------------------------------------------------------------------------
# files and decoding
# --------------------------------------------------------------------------------------
def list_images(input_path: str | os.PathLike, exclude: str | os.PathLike | None = None) -> tuple[Path, list[Path]]:
    """(root, sorted relative paths) of the images in a file or (recursively) a folder."""
    p = Path(input_path)
    if not p.exists():
        raise MissingFileError(f"no such file or directory: {p}")
    if p.is_file():
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise TranslateError(f"{p}: not an image ({', '.join(IMAGE_EXTENSIONS)})")
        return p.parent, [Path(p.name)]
    ex = Path(exclude).resolve() if exclude is not None else None
    if ex is not None and ex == p.resolve():  # writing next to the inputs: nothing to skip
        ex = None
    files = []
    for dirpath, dirnames, filenames in os.walk(p, followlinks=True):
        d = Path(dirpath)
        if ex is not None and (d.resolve() == ex or ex in d.resolve().parents):
            dirnames[:] = []
            continue
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                files.append((d / name).relative_to(p))
    files.sort(key=lambda r: r.as_posix())
    if not files:
        raise TranslateError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {p}")
    return p, files


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image (L, LA, RGBA, P, I;16, CMYK, ...) as 8-bit RGB, EXIF orientation applied."""
    with contextlib.suppress(Exception):
        img = ImageOps.exif_transpose(img)
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    return img.convert("RGB")


def _read_rgb(path: Path, size: int | None = None) -> np.ndarray:
    with Image.open(path) as im:
        if size is not None:
            im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when much larger
        img = to_rgb(im)
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
        return np.array(img, dtype=np.uint8)  # H x W x 3, writable copy


def _header_size(path: Path) -> tuple[int, int] | None:
    """(H, W) after EXIF orientation, from the header only; None if unreadable."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                if im.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                    w, h = h, w
            except Exception:  # noqa: BLE001
                pass
            return h, w
    except Exception:  # noqa: BLE001 - reported properly when decoded
        return None


class _ImageDataset(Dataset):
    """Decodes images to uint8 HWC tensors; errors are returned (reported by the main process)."""

    def __init__(self, files: Sequence[Path], size: int | None = None):
        self.files = list(files)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        try:
            return i, torch.from_numpy(_read_rgb(self.files[i], self.size)), None
        except Exception as exc:  # noqa: BLE001
            first = first_line(exc)
            return i, None, f"cannot read image {self.files[i]}: {first}"


def _collate(items):
    """Group a batch by shape: ([(indices, uint8 N x H x W x 3), ...], [errors])."""
    groups: dict[tuple, list] = {}
    errors = []
    for i, x, err in items:
        if err is not None:
            errors.append(err)
        else:
            groups.setdefault(tuple(x.shape), []).append((i, x))
    out = []
    for members in groups.values():
        idx = [i for i, _ in members]
        out.append((idx, torch.stack([x for _, x in members]) if len(members) > 1 else members[0][1][None]))
    return out, errors


# --------------------------------------------------------------------------------------
# the forward pass: padding, tiling, precision
# --------------------------------------------------------------------------------------
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


def _forward_padded(model: nn.Module, x: torch.Tensor, m: int, bf16: bool, channels_last: bool) -> torch.Tensor:
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


def _forward_tiled(model: nn.Module, x: torch.Tensor, tile: int, overlap: int | None, m: int, bf16: bool,
                   channels_last: bool, batch_size: int) -> torch.Tensor:
    lo = int(getattr(model, "min_size", 1) or 1)
    tile = _padded_size(int(tile), m, lo)
    h0, w0 = x.shape[-2:]
    if h0 <= tile and w0 <= tile:
        return _forward_padded(model, x, m, bf16, channels_last)
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
            y = _forward_padded(model, tiles, m, bf16, channels_last)
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
    m = _size_multiple(generator)
    cl = channels_last and x.device.type == "cuda"
    if tile:
        return _forward_tiled(generator, x, tile, overlap, m, bf16, cl, batch_size)
    return _forward_padded(generator, x, m, bf16, cl)


def translate_image(generator: nn.Module, image: Image.Image | str | os.PathLike, *, tile: int | None = None,
                    bf16: bool = False) -> Image.Image:
    """Translate one PIL image (or image file) -> RGB PIL image of the same size."""
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    arr = np.array(to_rgb(image), dtype=np.uint8)
    device = _module_device(generator)
    x = torch.from_numpy(arr).to(device).permute(2, 0, 1)[None].float().div_(127.5).sub_(1)
    y = translate_tensor(generator, x, tile=tile, bf16=bf16)
    return Image.fromarray(_to_uint8_nhwc(y)[0].cpu().numpy(), "RGB")


def _to_uint8_nhwc(y: torch.Tensor) -> torch.Tensor:
    return y.add(1).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _module_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TranslateError("CUDA device requested but torch.cuda.is_available() is False")
    return device


@contextlib.contextmanager
def _inference_setup(model: nn.Module, device: torch.device, channels_last: bool = False):
    """Move to device (optionally channels_last), eval mode; restore the training flag after.

    channels_last is opt-in: with CycleGAN's InstanceNorm + reflection padding it is ~25%
    SLOWER than NCHW on an H100 (instance_norm and reflection_pad copy it back to NCHW).
    """
    was_training = model.training
    model.eval()
    model.to(device)
    prev_bench = torch.backends.cudnn.benchmark
    if device.type == "cuda":
        if channels_last:
            model.to(memory_format=torch.channels_last)
        if _CUDNN_BENCHMARK is not None:
            torch.backends.cudnn.benchmark = _CUDNN_BENCHMARK
    try:
        yield model
    finally:
        torch.backends.cudnn.benchmark = prev_bench
        model.train(was_training)


def _default_workers(n_batches: int, cap: int = 8) -> int:
    if n_batches <= 1:
        return 0
    return max(0, min(cap, (os.cpu_count() or 1)))


def _make_loader(dataset: Dataset, batch_sampler, num_workers: int, pin: bool) -> DataLoader:
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs["prefetch_factor"] = 4
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers, collate_fn=_collate,
                      pin_memory=pin, **kwargs)


def _infer_loop(model: nn.Module, loader: Iterable, device: torch.device, *, bf16: bool, tile: int | None,
                batch_size: int, channels_last: bool = False,
                fixed_batch: bool = False) -> Iterator[tuple[list[int], np.ndarray]]:
    """Yield (indices, uint8 N x H x W x 3) per group, GPU work of batch i+1 overlapping host work on i.

    ``fixed_batch``: for a compiled model, or on CUDA with cudnn autotuning on, pad a short (last)
    batch to ``batch_size`` so that nothing is compiled or autotuned again for a new shape (that
    costs more than a few extra images).
    """
    m = _size_multiple(model)
    cuda = device.type == "cuda"
    cl = cuda and channels_last
    # a new batch shape means a new cudnn autotuning run or a new compilation
    fixed_batch = fixed_batch and not tile and (is_compiled(model) or (cuda and torch.backends.cudnn.benchmark))
    pending = None
    with torch.inference_mode(), eager_fallback():
        for groups, errors in loader:
            if errors:
                raise TranslateError(errors[0])
            for idx, xb in groups:
                x = xb.to(device, non_blocking=True).permute(0, 3, 1, 2)  # NHWC storage = channels_last
                n = x.shape[0]
                if fixed_batch and n < batch_size:
                    x = torch.cat([x, x[-1:].expand(batch_size - n, -1, -1, -1)])
                x = x.float().div_(127.5).sub_(1.0)
                if not cl:
                    x = x.contiguous()
                if tile:
                    y = _forward_tiled(model, x, tile, None, m, bf16, cl, batch_size)
                else:
                    y = _forward_padded(model, x, m, bf16, cl)
                y8 = _to_uint8_nhwc(y[:n])
                if not cuda:
                    yield idx, y8.numpy()
                    continue
                buf = torch.empty(y8.shape, dtype=torch.uint8, pin_memory=True)
                buf.copy_(y8, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                if pending is not None:
                    pending[2].synchronize()
                    yield pending[0], pending[1].numpy()
                pending = (idx, buf, event)
        if pending is not None:
            pending[2].synchronize()
            yield pending[0], pending[1].numpy()


# --------------------------------------------------------------------------------------
# encoding pool
# --------------------------------------------------------------------------------------
# Pillow's JPEG/PNG encoders hold the GIL: a thread pool encodes ~1,000 256px JPEGs/s however many
# threads it has (measured on a 16-core H100 host), which alone would take 7 s for the Kaggle
# set. Large jobs therefore encode in forked processes, one task per batch (inputs pickled
# as one array); small jobs (and non-Linux hosts) use threads.
_PROCESS_POOL_MIN_IMAGES = 512
_PROCESS_POOL_MIN_CPUS = 4


def _noop() -> None:
    return None


@contextlib.contextmanager
def _encoder_pool(n_images: int, processes: bool | None = None):
    cpus = os.cpu_count() or 1
    if processes is None:
        processes = n_images >= _PROCESS_POOL_MIN_IMAGES and cpus >= _PROCESS_POOL_MIN_CPUS and sys.platform.startswith("linux")
    if processes:
        import multiprocessing as mp

        pool: cf.Executor = cf.ProcessPoolExecutor(max_workers=max(2, min(12, cpus // 2)),
                                                   mp_context=mp.get_context("fork"))
        pool.submit(_noop).result()  # fork now: before CUDA is initialized and threads start
    else:
        pool = cf.ThreadPoolExecutor(max_workers=max(2, min(8, cpus)))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)


def _save(arr: np.ndarray, path: Path, fmt: str, quality: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr, "RGB")
    tmp = path.with_name(f".{path.name}.part")
    kwargs: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    img.save(tmp, format=fmt, **kwargs)
    os.replace(tmp, path)
    return path


def _save_batch(arr: np.ndarray, paths: Sequence[Path], quality: int) -> list[Path]:
    return [_save(a, p, _PIL_FORMAT[p.suffix.lower()], quality) for a, p in zip(arr, paths)]


def _drain(futures: collections.deque, consume, limit: int) -> None:
    """Consume finished futures in submission order; block on the oldest while more than ``limit``."""
    while futures and (futures[0][1].done() or len(futures) > limit):
        key, fut = futures.popleft()
        consume(key, fut.result())


# --------------------------------------------------------------------------------------
# folders
# --------------------------------------------------------------------------------------
def _norm_ext(ext: str | None) -> str | None:
    if ext is None:
        return None
    e = "." + str(ext).lower().lstrip(".")
    if e not in _PIL_FORMAT:
        raise TranslateError(f"unsupported output extension {ext!r}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    return e


def _size_batches(files: Sequence[Path], batch_size: int, tile: int | None, max_pixels: int) -> list[list[int]]:
    """Indices grouped by image size (header scan), in order of first appearance."""
    with cf.ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as ex:
        sizes = list(ex.map(_header_size, files, chunksize=64))
    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(sizes):
        groups.setdefault(s if s is not None else ("?", i), []).append(i)
    batches = []
    for key, idx in groups.items():
        if key[0] == "?":
            per = 1
        else:
            h, w = key
            big = tile is not None and (h > tile or w > tile)
            per = 1 if big else max(1, min(batch_size, max_pixels // max(1, h * w)))
        batches.extend(idx[s:s + per] for s in range(0, len(idx), per))
    return batches


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
    dev = _resolve_device(device)
    if batch_size < 1:
        raise TranslateError("batch_size must be >= 1")
    if tile is not None and tile < 1:
        raise TranslateError("tile must be a positive number of pixels")
    force = _norm_ext(ext)
    out = Path(output_dir)
    in_path = Path(input_path)
    root, rel = list_images(in_path, exclude=out if in_path.is_dir() else None)
    if in_path.is_file() and out.suffix.lower() in _PIL_FORMAT:
        targets = [out]
    else:
        targets = [out / (r.with_suffix(force) if force else r) for r in rel]
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
    batches = _size_batches(sources, batch_size, tile, max_pixels=batch_size * 512 * 512)
    workers = _default_workers(len(batches)) if num_workers is None else int(num_workers)
    loader = _make_loader(_ImageDataset(sources), batches, workers, pin=dev.type == "cuda")
    written: list[Path | None] = [None] * len(sources)

    def consume(idx, paths):
        for i, p in zip(idx, paths):
            written[i] = p

    from tqdm.auto import tqdm

    with _encoder_pool(len(sources)) as pool, _inference_setup(model, dev, channels_last), \
            tqdm(total=len(sources), unit="img", desc="translate", disable=not progress) as bar:
        compile_for_inference([model], auto_compile(compile, dev, len(sources)), dynamic=None)
        futures: collections.deque = collections.deque()
        for idx, arr in _infer_loop(model, loader, dev, bf16=bf16, tile=tile, batch_size=batch_size,
                                    channels_last=channels_last):
            futures.append((idx, pool.submit(_save_batch, arr, [targets[i] for i in idx], quality)))
            _drain(futures, consume, limit=32)
            bar.update(len(idx))
        _drain(futures, consume, limit=0)
    return [p for p in written if p is not None]


# --------------------------------------------------------------------------------------
# Kaggle "I'm Something of a Painter Myself" submission
# --------------------------------------------------------------------------------------
def _encode_jpeg(arr: np.ndarray, size: int, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=quality)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as chk:  # header-only validation of what goes in the zip
        if chk.format != "JPEG" or chk.size != (size, size) or chk.mode != "RGB":
            raise KaggleZipError(f"encoded image is {chk.format} {chk.mode} {chk.size}, expected {size}x{size} "
                                 "RGB JPEG (no zip written)")
    return data


def _encode_jpeg_batch(arr: np.ndarray, size: int, quality: int) -> list[bytes]:
    return [_encode_jpeg(a, size, quality) for a in arr]


def make_kaggle_zip(generator_or_chain: nn.Module, photo_dir: str | os.PathLike, zip_path: str | os.PathLike, *,
                    min_count: int = 7000, max_count: int = 10000, size: int = 256, batch_size: int = 64,
                    device: str | torch.device | None = None, bf16: bool = False, num_workers: int | None = None,
                    quality: int = 95, progress: bool = True, channels_last: bool = False,
                    compile: Any = False) -> Path:
    """Write a Kaggle submission zip: one ``<input stem>.jpg`` (size x size RGB JPEG) per photo.

    The count rule (``min_count <= n <= max_count``) is checked before any work, every encoded
    JPEG is checked (format, mode, size) before it goes in; the zip is written to a temporary
    file next to ``zip_path`` and renamed into place only when complete and valid, so a failed
    run leaves no zip behind. Photos that are not size x size are resized (bicubic) first.
    Pipeline: DataLoader workers decode (pinned memory), the GPU translates whole batches,
    worker processes encode JPEGs, the main thread appends them to the zip (ZIP_STORED) in
    input order. ``compile``: torch.compile the model in place first (one batch shape: the last
    batch is padded), as :func:`translate_folder`.
    """
    model = generator_or_chain
    zip_path = Path(zip_path)
    if zip_path.suffix.lower() != ".zip":
        raise KaggleZipError(f"{zip_path}: the Kaggle submission must be a .zip file")
    if batch_size < 1:
        raise TranslateError("batch_size must be >= 1")
    root, rel = list_images(photo_dir, exclude=None)
    n = len(rel)
    if not (min_count <= n <= max_count):
        raise KaggleZipError(
            f"{photo_dir} has {n} images; a Kaggle submission needs between {min_count} and {max_count} "
            "(no zip written)"
        )
    names = [r.stem + ".jpg" for r in rel]
    dupes = [k for k, c in collections.Counter(names).items() if c > 1]
    if dupes:
        raise KaggleZipError(f"several inputs map to the same zip entry {dupes[0]!r} (no zip written)")
    dev = _resolve_device(device)
    sources = [root / r for r in rel]
    batches = [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    workers = _default_workers(len(batches), cap=16) if num_workers is None else int(num_workers)
    loader = _make_loader(_ImageDataset(sources, size=size), batches, workers, pin=dev.type == "cuda")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{zip_path.stem}.", suffix=".zip.part", dir=zip_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    count = 0
    from tqdm.auto import tqdm

    try:
        with _encoder_pool(n) as pool, \
                zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf, \
                tqdm(total=n, unit="img", desc="kaggle zip", disable=not progress) as bar:
            batches_it = iter(loader)  # workers fork and start decoding while CUDA initializes

            def consume(idx, blobs):
                nonlocal count
                for i, data in zip(idx, blobs):
                    zf.writestr(zipfile.ZipInfo(names[i], date_time=(2020, 1, 1, 0, 0, 0)), data)
                    count += 1

            futures: collections.deque = collections.deque()
            with _inference_setup(model, dev, channels_last):
                compile_for_inference([model], auto_compile(compile, dev, n))
                for idx, arr in _infer_loop(model, batches_it, dev, bf16=bf16, tile=None, batch_size=batch_size,
                                            channels_last=channels_last, fixed_batch=True):
                    if arr.shape[1:] != (size, size, 3):
                        raise KaggleZipError(f"generator output is {arr.shape[1]}x{arr.shape[2]}x{arr.shape[3]}, "
                                             f"expected {size}x{size}x3 (no zip written)")
                    futures.append((idx, pool.submit(_encode_jpeg_batch, arr, size, quality)))
                    _drain(futures, consume, limit=32)
                    bar.update(len(idx))
            _drain(futures, consume, limit=0)
        if count != n:
            raise KaggleZipError(f"wrote {count} images, expected {n} (no zip written)")
        os.replace(tmp, zip_path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return zip_path


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------
_EPILOG = """\
examples:
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
state_dict or ts, and bare generator state dicts. Files are read with torch.load(weights_only=True):
pickles that would need arbitrary code execution are refused.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cyclegan.translate",
        description="Translate images with trained CycleGAN generators, build a Kaggle submission zip, "
                    "or export a generator.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ckpt", action="append", required=True, metavar="SPEC",
                   help="checkpoint[:AB|:BA]; repeat to chain generators (applied in order)")
    p.add_argument("--direction", default="AB", type=str.upper, choices=["AB", "BA"],
                   help="direction for --ckpt specs without :AB/:BA (default: AB = domain A -> B)")
    p.add_argument("--gen", default=None, metavar="NAME",
                   help="architecture of bare state dicts, e.g. resnet_9blocks, unet_256 (default resnet_9blocks)")
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
    p.add_argument("--quality", type=int, default=95, metavar="Q", help="JPEG/WebP quality (default 95)")
    p.add_argument("--num-workers", type=int, default=None, metavar="N", help="decoding worker processes (default: auto)")
    p.add_argument("--kaggle-zip", metavar="ZIP", default=None,
                   help="write a Kaggle submission zip of 256x256 JPEGs from the --input photos")
    p.add_argument("--min-count", type=int, default=7000, metavar="N", help="--kaggle-zip: fewest images allowed (default 7000)")
    p.add_argument("--max-count", type=int, default=10000, metavar="N", help="--kaggle-zip: most images allowed (default 10000)")
    p.add_argument("--size", type=int, default=256, metavar="PX", help="--kaggle-zip: image size (default 256)")
    p.add_argument("--export", choices=["state_dict", "ts", "onnx"], default=None,
                   help="export the generator (or chain, ts/onnx only) to --output instead of translating")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _fail(parser: argparse.ArgumentParser, msg: str) -> int:
    print(f"{parser.prog}: error: {msg}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
    gen_kwargs = {"gen": args.gen} if args.gen else {}
    try:
        chain = load_chain(args.ckpt, default_direction=args.direction, **gen_kwargs)
        model: nn.Module = chain.generators[0] if len(chain.generators) == 1 else chain
        progress = not args.quiet
        compile_spec = "auto" if args.compile is None else args.compile  # neither flag: auto
        if args.export is not None:
            from cyclegan.inference.export import export_generator

            path = export_generator(model, args.output, args.export)
            print(f"exported {args.export} -> {path}")
        elif args.kaggle_zip is not None:
            path = make_kaggle_zip(model, args.input, args.kaggle_zip, min_count=args.min_count,
                                   max_count=args.max_count, size=args.size, batch_size=args.batch_size or 64,
                                   device=args.device, bf16=args.bf16, num_workers=args.num_workers,
                                   quality=args.quality, progress=progress, channels_last=args.channels_last,
                                   compile=compile_spec)
            print(f"wrote {path}")
        else:
            paths = translate_folder(model, args.input, args.output, batch_size=args.batch_size or 16,
                                     device=args.device, bf16=args.bf16, num_workers=args.num_workers,
                                     tile=args.tile, ext=args.ext, quality=args.quality, progress=progress,
                                     channels_last=args.channels_last, compile=compile_spec)
            print(f"wrote {len(paths)} image(s) to {args.output}")
    except (FileNotFoundError, UserError) as exc:
        return _fail(parser, first_line(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
