"""Batched inference over image files: listing and decoding (DataLoader workers), device set-up,
the GPU loop (one batch in flight while the previous one is copied back) and the encoder pool.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import logging
import multiprocessing as mp
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cyclegan.common.errors import MissingFileError, UserError, first_line
from cyclegan.common.imaging import IMAGE_EXTENSIONS, ImageLoadError, load_image, walk_images
from cyclegan.inference.checkpoint import size_multiple_of
from cyclegan.inference.tiling import forward_padded, forward_tiled, to_uint8_nhwc
from cyclegan.models.compile import eager_fallback, is_compiled
from cyclegan.common.pixels import from_uint8

__all__ = ["TranslateError", "list_images", "read_rgb", "ImageDataset", "make_loader", "default_workers",
           "module_device", "inference_setup", "size_batches", "infer_loop", "encoder_pool", "drain"]

log = logging.getLogger(__name__)

_EXIF_ORIENTATION = 0x0112
# cudnn autotuning: measured on an H100 for the 7,038-photo Kaggle run (resnet_9blocks), it costs
# ~1.4 s on the first batch and saves ~0.2 s over the whole run, so it is left off by default
# (None: keep the global torch.backends.cudnn.benchmark setting).
_CUDNN_BENCHMARK: bool | None = None


class TranslateError(UserError, ValueError):
    """A user-facing problem with the inputs/outputs of a translation (one-line message)."""


def list_images(input_path: str | os.PathLike, exclude: str | os.PathLike | None = None) -> tuple[Path, list[Path]]:
    """(root, sorted relative paths) of the images in a file or (recursively) a folder
    (:func:`cyclegan.common.imaging.walk_images`); ``exclude``: a folder inside it to skip (the output)."""
    p = Path(input_path)
    if not p.exists():
        raise MissingFileError(f"no such file or directory: {p}")
    if p.is_file():
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise TranslateError(f"{p}: not an image ({', '.join(IMAGE_EXTENSIONS)})")
        return p.parent, [Path(p.name)]
    if exclude is not None and Path(exclude).resolve() == p.resolve():  # writing next to the inputs
        exclude = None
    files = [Path(f).relative_to(p) for f in walk_images(p, exclude=exclude)]
    if not files:
        raise TranslateError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {p}")
    return p, files


def read_rgb(path: Path, size: int | None = None) -> np.ndarray:
    """An image file as uint8 H x W x 3 (:func:`cyclegan.common.imaging.load_image`), resized to size x size if given."""
    img = load_image(path, draft_size=size)
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BICUBIC)
    return np.array(img, dtype=np.uint8)  # writable copy


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


class ImageDataset(Dataset):
    """Decodes images to uint8 HWC tensors; errors are returned (reported by the main process)."""

    def __init__(self, files: Sequence[Path], size: int | None = None):
        self.files = list(files)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        try:
            return i, torch.from_numpy(read_rgb(self.files[i], self.size)), None
        except ImageLoadError as exc:
            return i, None, first_line(exc)
        except Exception as exc:  # noqa: BLE001
            return i, None, f"cannot read image {self.files[i]}: {first_line(exc)}"


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


def module_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def inference_setup(model: nn.Module, device: torch.device, channels_last: bool = False):
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


def default_workers(n_batches: int, cap: int = 8) -> int:
    if n_batches <= 1:
        return 0
    return max(0, min(cap, (os.cpu_count() or 1)))


def make_loader(dataset: Dataset, batch_sampler, num_workers: int, pin: bool) -> DataLoader:
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs["prefetch_factor"] = 4
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers, collate_fn=_collate,
                      pin_memory=pin, **kwargs)


def infer_loop(model: nn.Module, loader: Iterable, device: torch.device, *, bf16: bool, tile: int | None,
               batch_size: int, channels_last: bool = False, fixed_batch: bool = False,
               skipped: list[str] | None = None) -> Iterator[tuple[list[int], np.ndarray]]:
    """Yield (indices, uint8 N x H x W x 3) per group, GPU work of batch i+1 overlapping host work on i.

    An image that cannot be decoded is left out with a warning and its message appended to
    ``skipped`` (``skipped=None``: the first one raises :class:`TranslateError`).

    ``fixed_batch``: for a compiled model, or on CUDA with cudnn autotuning on, pad a short (last)
    batch to ``batch_size`` so that nothing is compiled or autotuned again for a new shape (that
    costs more than a few extra images).
    """
    m = size_multiple_of(model)
    cuda = device.type == "cuda"
    cl = cuda and channels_last
    # a new batch shape means a new cudnn autotuning run or a new compilation
    fixed_batch = fixed_batch and not tile and (is_compiled(model) or (cuda and torch.backends.cudnn.benchmark))
    pending = None
    with torch.inference_mode(), eager_fallback():
        for groups, errors in loader:
            for error in errors:
                if skipped is None:
                    raise TranslateError(error)
                log.warning("skipping %s", error)
                skipped.append(error)
            for idx, xb in groups:
                x = xb.to(device, non_blocking=True).permute(0, 3, 1, 2)  # NHWC storage = channels_last
                n = x.shape[0]
                if fixed_batch and n < batch_size:
                    x = torch.cat([x, x[-1:].expand(batch_size - n, -1, -1, -1)])
                x = from_uint8(x)
                if not cl:
                    x = x.contiguous()
                if tile:
                    y = forward_tiled(model, x, tile, None, m, bf16, cl, batch_size)
                else:
                    y = forward_padded(model, x, m, bf16, cl)
                y8 = to_uint8_nhwc(y[:n])
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


def size_batches(files: Sequence[Path], batch_size: int, tile: int | None, max_pixels: int) -> list[list[int]]:
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
def encoder_pool(n_images: int, processes: bool | None = None):
    cpus = os.cpu_count() or 1
    if processes is None:
        processes = n_images >= _PROCESS_POOL_MIN_IMAGES and cpus >= _PROCESS_POOL_MIN_CPUS and sys.platform.startswith("linux")
    if processes:
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


def drain(futures: collections.deque, consume, limit: int) -> None:
    """Consume finished futures in submission order; block on the oldest while more than ``limit``."""
    while futures and (futures[0][1].done() or len(futures) > limit):
        key, fut = futures.popleft()
        consume(key, fut.result())
