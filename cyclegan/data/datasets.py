"""Datasets: the unpaired / single-domain datasets (images decoded by :func:`cyclegan.common.imaging.load_image`).

Items:

- :class:`UnpairedDataset` (training): ``{"A", "B", "A_path", "B_path"}``; A by index
  (``A[i % |A|]``), B random (or by index with ``serial_batches``); ``len`` =
  ``epoch_length`` or ``max(|A|, |B|)``.
- :class:`PairedByIndexDataset` (val/test): same keys, ``A[i % |A|]`` and ``B[i % |B|]``,
  ``len = max(|A|, |B|)``, no randomness.
- :class:`DomainDataset`: ``{"image", "path"}`` for one domain.

Tensors are ``float32`` ``3xHxW`` in ``[-1, 1]``. Every image read goes through
``self.load(images, index)`` which raises :class:`ImageLoadError` naming the file; ``item()``
skips such files with a warning and uses the next image (``set_policies``: also how images
smaller than the crop are handled).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, get_worker_info

from cyclegan.common.imaging import ImageLoadError, load_image
from cyclegan.common.pixels import from_uint8

from .sources import ImageList

log = logging.getLogger(__name__)

__all__ = ["UnreadableDomainError", "UnpairedDataset", "PairedByIndexDataset", "DomainDataset"]


class UnreadableDomainError(ImageLoadError):
    """No file of a domain can be decoded (found in the main process, before any worker starts)."""

    def __init__(self, message: str):
        super().__init__(message)


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
    _LIST_ATTRIBUTES = ("images_a", "images_b", "images")

    def __init__(self, transform, draft_size: int | None = None):
        self.transform = transform
        self.draft_size = draft_size
        # attribute name of an ImageList -> its decoded uint8 HxWx3 arrays (see cache_decoded)
        self._decoded: dict[str, list[np.ndarray]] = {}

    def cache_decoded(self, threads: int | None = None) -> int:
        """Decode every image once and keep the RGB arrays in memory (``data.cache_images=true``).

        Later reads skip file I/O and JPEG decoding; random augmentation still runs per item.
        Call it before DataLoader workers start: forked workers then share the arrays
        (copy-on-write) instead of each holding a copy. Returns the cache size in bytes.
        """
        threads = threads or min(8, os.cpu_count() or 1)
        for name in self._LIST_ATTRIBUTES:
            images = getattr(self, name, None)
            if images is None or name in self._decoded:
                continue
            with ThreadPoolExecutor(threads) as pool:  # PIL releases the GIL while decoding
                self._decoded[name] = list(pool.map(lambda i: self._decode_array(images, i), range(len(images))))
        return sum(a.nbytes for arrays in self._decoded.values() for a in arrays if isinstance(a, np.ndarray))

    def _decode_array(self, images: ImageList, index: int) -> np.ndarray | ImageLoadError:
        # A bad file is kept as its error and raised when read, so item() skips it like an uncached one.
        try:
            return np.asarray(self.decode(images, index))
        except ImageLoadError as e:
            return e

    def load(self, images: ImageList, index: int) -> Image.Image | np.ndarray:
        """Image ``index`` of ``images`` (an RGB array when cached); raises :class:`ImageLoadError` naming the file."""
        for name, arrays in self._decoded.items():
            if getattr(self, name) is images:
                if isinstance(arrays[index], ImageLoadError):
                    raise arrays[index]
                return arrays[index]
        return self.decode(images, index)

    def decode(self, images: ImageList, index: int) -> Image.Image:
        """Read and decode image ``index`` of ``images`` from its source."""
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
            return from_uint8(torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))))
        return self.transform(image=arr)["image"]

    # ------------------------------------------------------------------ unreadable and small images
    # Defaults; UnpairedDataModule sets them from data.min_size_policy / data.bad_image_policy.
    min_size: int | None = None        # images with a side below this are upscaled or rejected
    min_size_policy: str = "upscale"   # upscale (warn once per file) | reject (skip like a bad file)
    bad_image_policy: str = "skip"     # skip (warn, use the next image) | raise (ImageLoadError)
    max_substitutes: int = 50          # consecutive bad images tolerated before giving up

    def set_policies(self, min_size: int | None = None, min_size_policy: str = "upscale",
                     bad_image_policy: str = "skip"):
        """Set how unreadable and too-small images are handled.

        Call it in the main process before DataLoader workers start: the record of bad files
        lives in shared memory, so a file found bad in one worker is skipped (and warned about)
        once for all workers and epochs, and :meth:`skipped_images` sees it.
        """
        self.min_size = int(min_size) if min_size else None
        self.min_size_policy = min_size_policy
        self.bad_image_policy = bad_image_policy
        self._bad_masks = {name: torch.zeros(len(getattr(self, name)), dtype=torch.bool).share_memory_()
                           for name in self._LIST_ATTRIBUTES if getattr(self, name, None) is not None}
        return self

    def _bad_mask(self, images: ImageList) -> torch.Tensor:
        masks = self.__dict__.setdefault("_bad_masks", {})
        for name in self._LIST_ATTRIBUTES:
            if getattr(self, name, None) is images:
                if name not in masks:  # set_policies() not called: a record local to this process
                    masks[name] = torch.zeros(len(images), dtype=torch.bool)
                return masks[name]
        return torch.zeros(len(images), dtype=torch.bool)

    def skipped_images(self) -> list[str]:
        """Files skipped so far (unreadable or rejected as too small), in any worker."""
        paths: set[str] = set()
        for name, mask in self.__dict__.get("_bad_masks", {}).items():
            images = getattr(self, name)
            paths.update(images.paths[i] for i in mask.nonzero().flatten().tolist())
        return sorted(paths)

    def _too_small(self, im, path: str) -> str | None:
        """None when ``im`` is large enough (or gets upscaled), else why it is rejected."""
        if not self.min_size:
            return None
        h, w = (im.shape[0], im.shape[1]) if isinstance(im, np.ndarray) else (im.height, im.width)
        if min(h, w) >= self.min_size:
            return None
        if self.min_size_policy == "reject":
            return f"{w}x{h} is smaller than data.image_size={self.min_size} (data.min_size_policy=reject)"
        warned = self.__dict__.setdefault("_warned_small", set())
        if path not in warned:
            warned.add(path)
            log.warning("image %s is %dx%d, smaller than data.image_size=%d: upscaled (data.min_size_policy=reject "
                        "skips such images instead)", path, w, h, self.min_size)
        return None

    def check_readable(self, examples: int = 3) -> None:
        """Make sure every image list has a file that decodes; call it in the main process.

        Files are tried in order until one decodes (usually the first), those that fail are
        recorded and warned about as when :meth:`item` skips them. A list where nothing decodes
        raises :class:`UnreadableDomainError`: one line naming the folder and ``examples`` files,
        instead of a failure inside a DataLoader worker later (``bad_image_policy=raise``: the
        first bad file raises :class:`ImageLoadError`, as reading it would).
        """
        for name in self._LIST_ATTRIBUTES:
            images = getattr(self, name, None)
            if images is None or len(images) == 0:
                continue
            bad = self._bad_mask(images)
            failures: list[tuple[int, str]] = []
            found = False
            for i in range(len(images)):
                if bad[i]:
                    continue
                _, reason = self._try_load(images, i)
                if reason is None:
                    found = True
                    break
                failures.append((i, reason))
            if not found:  # one line for the domain instead of a warning per file
                names = ", ".join(os.path.basename(images.paths[i]) for i, _ in failures[:examples])
                more = f" and {len(failures) - examples} more" if len(failures) > examples else ""
                raise UnreadableDomainError(
                    f"no image in {_where(images)} can be used: all {len(images)} file(s) fail to decode or are "
                    f"rejected ({names}{more}; the first: {failures[0][1]}). Check that the folder holds images "
                    "(JPEG, PNG, WebP, BMP) and that data.dir_a / data.dir_b / paths.data_dir name the right folders")
            for i, reason in failures:
                self._skip(bad, i, reason)

    def _try_load(self, images: ImageList, i: int):
        """(image, None) when image ``i`` can be used, else (None, why not); ``bad_image_policy=raise`` raises."""
        path = images.paths[i]
        try:
            im = self.load(images, i)
        except ImageLoadError as e:
            if self.bad_image_policy == "raise":
                raise
            return None, str(e)
        reason = self._too_small(im, path)
        if reason is None:
            return im, None
        if self.bad_image_policy == "raise":
            raise ImageLoadError(path, reason)
        return None, f"{path}: {reason}"

    @staticmethod
    def _skip(bad: torch.Tensor, i: int, reason: str) -> None:
        bad[i] = True  # shared memory: no worker reads it again
        log.warning("skipping %s; the next usable image is used in its place (%d skipped in this domain so far)",
                    reason, int(bad.sum()))

    def item(self, images: ImageList, index: int) -> tuple[torch.Tensor, str]:
        """Image ``index`` as a tensor, and its path.

        An unreadable (or rejected) file is skipped with one warning and the next usable image
        of the same list is returned in its place, so a bad file never stops a DataLoader
        worker mid-epoch (``bad_image_policy="raise"`` raises :class:`ImageLoadError` instead).
        """
        bad = self._bad_mask(images)
        n = len(images)
        for k in range(min(n, self.max_substitutes + 1)):
            i = (index + k) % n
            if bad[i]:
                continue
            im, reason = self._try_load(images, i)
            if reason is None:
                return self.to_tensor(im), images.paths[i]
            self._skip(bad, i, reason)
        raise ImageLoadError(images.paths[index], f"it and the {min(n, self.max_substitutes + 1) - 1} images after it "
                             "are unreadable or too small (see the warnings above): check the data folder")


def _where(images: ImageList) -> str:
    """The folder of an image list, for messages (TFRecord entries: the folder of their files)."""
    folder = getattr(images, "folder", None)
    if folder:
        return str(folder)
    files = [p.split("#")[0] for p in images.paths]
    return os.path.dirname(os.path.commonpath(files)) if len(set(files)) == 1 else os.path.commonpath(files)


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
