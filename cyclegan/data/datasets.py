"""Datasets: image decoding (PIL) and the unpaired / single-domain datasets.

Items:

- :class:`UnpairedDataset` (training): ``{"A", "B", "A_path", "B_path"}``; A by index
  (``A[i % |A|]``), B random (or by index with ``serial_batches``); ``len`` =
  ``epoch_length`` or ``max(|A|, |B|)``.
- :class:`PairedByIndexDataset` (val/test): same keys, ``A[i % |A|]`` and ``B[i % |B|]``,
  ``len = max(|A|, |B|)``, no randomness.
- :class:`DomainDataset`: ``{"image", "path"}`` for one domain.

Tensors are ``float32`` ``3xHxW`` in ``[-1, 1]``. Every image read goes through
``self.load(images, index)`` which raises :class:`ImageLoadError` naming the file; override
or wrap it to skip bad files instead.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset, get_worker_info

from .sources import ImageList

__all__ = ["ImageLoadError", "load_image", "to_rgb", "UnpairedDataset", "PairedByIndexDataset", "DomainDataset"]


class ImageLoadError(RuntimeError):
    """An image could not be read or decoded. ``.path`` names it."""

    def __init__(self, path: str, cause: BaseException | str):
        self.path = str(path)
        self.cause = cause
        reason = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else str(cause)
        super().__init__(f"cannot read image {self.path!r}: {reason}")


_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB.

    Transparent images are composited on white; 16/32-bit integer images (``I;16``, ``I``)
    are scaled from the 16-bit range; float images (``F``) are taken as ``[0, 1]`` when their
    maximum is <= 1, else as ``[0, 255]``; CMYK, YCbCr, L, 1, P ... use PIL's conversion.
    """
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if mode == "F":
            if arr.size and np.nanmax(arr) <= 1.0:
                arr = arr * 255.0
        elif mode.startswith("I;16") or (arr.size and arr.max() > 255):
            arr = arr / 257.0  # 65535 -> 255
        arr = np.nan_to_num(arr)
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB", "1") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def load_image(source, name: str | None = None, draft_size: int | None = None) -> Image.Image:
    """Decode ``source`` (path or binary file object) into an RGB PIL image.

    EXIF orientation is applied. For JPEGs, ``draft_size`` lets the decoder downscale by a
    power of two while keeping both sides >= ``draft_size`` (fast reads of huge photos).
    Any failure raises :class:`ImageLoadError` naming ``name`` (default: ``source``).
    """
    name = str(name if name is not None else source)
    try:
        with Image.open(source) as im:
            if draft_size and im.format == "JPEG":
                im.draft("RGB", (int(draft_size), int(draft_size)))
            im = ImageOps.exif_transpose(im)  # a loaded copy (transposed when EXIF says so)
            rgb = to_rgb(im)
            rgb.load()
            return rgb
    except ImageLoadError:
        raise
    except (OSError, ValueError, SyntaxError, TypeError, struct.error, Image.DecompressionBombError) as e:
        raise ImageLoadError(name, e) from e


def _worker_seed(seed: int | None) -> int:
    """A 64-bit seed distinct per (torch seed, worker, rank, ``seed``)."""
    info = get_worker_info()
    worker = info.id if info is not None else 0
    rank = 0
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank = torch.distributed.get_rank()
    else:
        rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)) or 0)
    entropy = [torch.initial_seed() & 0xFFFFFFFFFFFFFFFF, worker, rank, 0 if seed is None else int(seed) & 0xFFFFFFFF]
    return int(np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


class _ImageDatasetBase(Dataset):
    def __init__(self, transform, draft_size: int | None = None):
        self.transform = transform
        self.draft_size = draft_size

    def load(self, images: ImageList, index: int) -> Image.Image:
        """Read image ``index`` of ``images``; raises :class:`ImageLoadError` naming the file."""
        path = images.paths[index]
        try:
            src = images.open(index)
        except ImageLoadError:
            raise
        except Exception as e:  # missing file, corrupt TFRecord, ...
            raise ImageLoadError(path, e) from e
        return load_image(src, name=path, draft_size=self.draft_size)

    def to_tensor(self, im: Image.Image) -> torch.Tensor:
        arr = np.asarray(im)
        if self.transform is None:
            t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float()
            return t / 127.5 - 1.0
        return self.transform(image=arr)["image"]

    def item(self, images: ImageList, index: int) -> tuple[torch.Tensor, str]:
        return self.to_tensor(self.load(images, index)), images.paths[index]


class UnpairedDataset(_ImageDatasetBase):
    """Training: ``A[i % |A|]`` and a random B (``B[i % |B|]`` with ``serial_batches``).

    Randomness (B choice and albumentations) comes from a generator seeded per process
    from ``torch.initial_seed()`` (distinct in each DataLoader worker and reseeded by
    Lightning), the worker id, the distributed rank and ``seed``; so workers and ranks draw
    different sequences and a fixed global seed reproduces a run.
    """

    def __init__(
        self,
        images_a: ImageList,
        images_b: ImageList,
        transform,
        epoch_length: int | None = None,
        serial_batches: bool = False,
        seed: int | None = None,
        draft_size: int | None = None,
    ):
        super().__init__(transform, draft_size)
        if len(images_a) == 0 or len(images_b) == 0:
            raise ValueError(f"both domains need images (|A|={len(images_a)}, |B|={len(images_b)})")
        self.images_a = images_a
        self.images_b = images_b
        self.epoch_length = int(epoch_length) if epoch_length else None
        self.serial_batches = bool(serial_batches)
        self.seed = seed
        self._rng_key = None
        self._generator: torch.Generator | None = None

    def __len__(self) -> int:
        return self.epoch_length or max(len(self.images_a), len(self.images_b))

    def generator(self) -> torch.Generator:
        key = (os.getpid(), torch.initial_seed())
        if self._rng_key != key or self._generator is None:
            seed = _worker_seed(self.seed)
            self._generator = torch.Generator().manual_seed(seed)
            if hasattr(self.transform, "set_random_seed"):  # albumentations >= 2: own RNG
                self.transform.set_random_seed(seed % 2**32)
            self._rng_key = key
        return self._generator

    def __getitem__(self, index: int) -> dict:
        if index < 0 or index >= len(self):
            raise IndexError(index)
        gen = self.generator()
        ia = index % len(self.images_a)
        if self.serial_batches:
            ib = index % len(self.images_b)
        else:
            ib = int(torch.randint(len(self.images_b), (1,), generator=gen))
        a, a_path = self.item(self.images_a, ia)
        b, b_path = self.item(self.images_b, ib)
        return {"A": a, "B": b, "A_path": a_path, "B_path": b_path}


class PairedByIndexDataset(_ImageDatasetBase):
    """Validation/test: ``A[i % |A|]``, ``B[i % |B|]``, ``len = max(|A|, |B|)``; deterministic."""

    def __init__(self, images_a: ImageList, images_b: ImageList, transform, draft_size: int | None = None):
        super().__init__(transform, draft_size)
        if (len(images_a) == 0) != (len(images_b) == 0):
            raise ValueError(f"one domain is empty (|A|={len(images_a)}, |B|={len(images_b)})")
        self.images_a = images_a
        self.images_b = images_b

    def __len__(self) -> int:
        return max(len(self.images_a), len(self.images_b))

    def __getitem__(self, index: int) -> dict:
        if index < 0 or index >= len(self):
            raise IndexError(index)
        a, a_path = self.item(self.images_a, index % len(self.images_a))
        b, b_path = self.item(self.images_b, index % len(self.images_b))
        return {"A": a, "B": b, "A_path": a_path, "B_path": b_path}


class DomainDataset(_ImageDatasetBase):
    """One domain: ``{"image": tensor, "path": str}`` (for evaluation and translation)."""

    def __init__(self, images: ImageList, transform, draft_size: int | None = None):
        super().__init__(transform, draft_size)
        self.images = images

    @property
    def paths(self) -> list[str]:
        return list(self.images.paths)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        if index < 0 or index >= len(self):
            raise IndexError(index)
        image, path = self.item(self.images, index)
        return {"image": image, "path": path}
