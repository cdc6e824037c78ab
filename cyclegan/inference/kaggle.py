"""The Kaggle "I'm Something of a Painter Myself" submission: a zip of 7,000-10,000 256x256 JPEGs."""

from __future__ import annotations

import collections
import io
import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from cyclegan.common.devices import resolve_device
from cyclegan.common.files import atomic_write, blocking_file
from cyclegan.inference import batching
from cyclegan.inference.batching import TranslateError
from cyclegan.inference.write_errors import reporting_write_errors
from cyclegan.models.compile import auto_compile, compile_for_inference

__all__ = ["KAGGLE_MIN_IMAGES", "KAGGLE_MAX_IMAGES", "KAGGLE_SIZE", "KaggleZipError", "kaggle_zip_summary",
           "make_kaggle_zip"]

log = logging.getLogger(__name__)

# What "I'm Something of a Painter Myself" accepts: 7,000 to 10,000 images of 256x256 in images.zip.
KAGGLE_MIN_IMAGES, KAGGLE_MAX_IMAGES = 7000, 10000
KAGGLE_SIZE = 256  # the competition's image size


class KaggleZipError(TranslateError):
    """The Kaggle submission would be invalid; no zip is written."""


def kaggle_zip_summary(zip_path: str | os.PathLike, count: int, size: int = KAGGLE_SIZE) -> str:
    """The last line of a --kaggle-zip run: how many images went where, and whether Kaggle would take it."""
    line = f"wrote {count} images ({size}x{size} JPEG) to {Path(zip_path).resolve()}"
    if not KAGGLE_MIN_IMAGES <= count <= KAGGLE_MAX_IMAGES or size != KAGGLE_SIZE:
        line += (f": a test zip, NOT a valid Kaggle submission (it needs {KAGGLE_MIN_IMAGES:,}-{KAGGLE_MAX_IMAGES:,} "
                 "images of 256x256)")
    return line


_UNSAFE_IN_ENTRY = re.compile(r"[\\/\x00-\x1f\x7f]|\.\.")


def _zip_entry_name(path: Path) -> str:
    """``<stem>.jpg`` as a safe zip entry: one plain name, no separator of either kind, no ``..``.

    Backslashes, control characters and ``..`` become ``_``; a name that is not valid UTF-8
    (zip entries are UTF-8) is refused, naming the file, since no rename of it would be faithful.
    """
    stem = path.stem
    try:
        stem.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path.name).decode("ascii", "backslashreplace")
        raise KaggleZipError(f"the file name '{shown}' in {path.parent} is not valid UTF-8, which a zip entry must "
                             "be; rename the file (no zip written)") from None
    name = _UNSAFE_IN_ENTRY.sub("_", stem) + ".jpg"
    return "_" + name if name.startswith(".") else name


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
                    min_count: int = KAGGLE_MIN_IMAGES, max_count: int = KAGGLE_MAX_IMAGES, size: int = 256, batch_size: int = 64,
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
    root, rel = batching.list_images(photo_dir, exclude=None)
    n = len(rel)
    if not (min_count <= n <= max_count):
        # the lower bound is the one people meet with a handful of photos: say how to make a test zip
        hint = (f"; for a test zip of fewer images lower --min-count (e.g. --min-count {max(n, 1)}; Kaggle "
                f"refuses fewer than {KAGGLE_MIN_IMAGES:,})" if n < min_count else "")
        raise KaggleZipError(
            f"{photo_dir} has {n} images; a Kaggle submission needs between {min_count} and {max_count} "
            f"(no zip written){hint}"
        )
    if size != KAGGLE_SIZE:
        log.warning("size=%d: Kaggle's submission wants %dx%d images, so this zip is not a valid submission",
                    size, KAGGLE_SIZE, KAGGLE_SIZE)
    names = [_zip_entry_name(root / r) for r in rel]
    dupes = [k for k, c in collections.Counter(names).items() if c > 1]
    if dupes:
        raise KaggleZipError(f"several inputs map to the same zip entry {dupes[0]!r} (no zip written)")
    blocker = blocking_file(zip_path.parent)
    if zip_path.is_dir() or blocker is not None:
        raise KaggleZipError(f"cannot write {zip_path}: {blocker or zip_path} is a "
                             f"{'file' if blocker else 'folder'}; choose another path for the zip")
    dev = resolve_device(device, key="--device")
    sources = [root / r for r in rel]
    batches = [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    workers = batching.default_workers(len(batches), cap=16) if num_workers is None else int(num_workers)
    loader = batching.make_loader(batching.ImageDataset(sources, size=size), batches, workers, pin=dev.type == "cuda")
    count = 0
    skipped: list[str] = []
    with reporting_write_errors(zip_path), atomic_write(zip_path) as tmp:
        with batching.encoder_pool(n) as pool, \
                zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf, \
                tqdm(total=n, unit="img", desc="kaggle zip", disable=not progress) as bar:
            batches_it = iter(loader)  # workers fork and start decoding while CUDA initializes

            def consume(idx, blobs):
                nonlocal count
                for i, data in zip(idx, blobs):
                    zf.writestr(zipfile.ZipInfo(names[i], date_time=(2020, 1, 1, 0, 0, 0)), data)
                    count += 1

            futures: collections.deque = collections.deque()
            with batching.inference_setup(model, dev, channels_last):
                compile_for_inference([model], auto_compile(compile, dev, n))
                for idx, arr in batching.infer_loop(model, batches_it, dev, bf16=bf16, tile=None, batch_size=batch_size,
                                            channels_last=channels_last, fixed_batch=True, skipped=skipped):
                    if arr.shape[1:] != (size, size, 3):
                        raise KaggleZipError(f"generator output is {arr.shape[1]}x{arr.shape[2]}x{arr.shape[3]}, "
                                             f"expected {size}x{size}x3 (no zip written)")
                    futures.append((idx, pool.submit(_encode_jpeg_batch, arr, size, quality)))
                    batching.drain(futures, consume, limit=32)
                    bar.update(len(idx))
            batching.drain(futures, consume, limit=0)
        if count != n - len(skipped):
            raise KaggleZipError(f"wrote {count} images, expected {n - len(skipped)} (no zip written)")
        if skipped and count < min_count:
            raise KaggleZipError(f"only {count} of {n} photos could be read ({len(skipped)} skipped, see the "
                                 f"warnings); a Kaggle submission needs at least {min_count} (no zip written)")
        if skipped:
            log.warning("skipped %d of %d photos that could not be read; the zip holds %d", len(skipped), n, count)
    return zip_path
