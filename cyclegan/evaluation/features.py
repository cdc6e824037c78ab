"""Inception features of images, with an on-disk cache of the real sets' features.

:func:`compute_features` takes a folder, image files, tensors, arrays or PIL images; files are decoded
by :func:`cyclegan.common.imaging.load_image` (the same decode as training). Features are float32 CPU
tensors [N, F].
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

import numpy as np
import torch
from torch import nn

from cyclegan.common.errors import MissingFileError
from cyclegan.evaluation.inception import images_to_uint8
from cyclegan.common.files import atomic_write
from cyclegan.common.imaging import load_image, to_rgb, walk_images

log = logging.getLogger(__name__)

__all__ = ["CACHE_VERSION", "as_items", "compute_features", "feature_extractor_id"]

CACHE_VERSION = 1

PathLike = Union[str, os.PathLike]
ImageItem = Union[PathLike, torch.Tensor, np.ndarray, "Image.Image"]  # noqa: F821


def _load_uint8(path: PathLike) -> torch.Tensor:
    """An image file as uint8 RGB [3, H, W] (:func:`cyclegan.common.imaging.load_image`: the training decode)."""
    arr = np.asarray(load_image(path), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _is_path(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike))


def as_items(images: Any) -> Iterable[Any]:
    """A folder -> its sorted image files; a 4-D tensor -> its rows; else the iterable itself."""
    if _is_path(images):
        p = Path(images)
        if p.is_dir():
            return [Path(f) for f in walk_images(p)]
        if not p.exists():
            raise MissingFileError(f"no such image folder or file: {p}")
        return [p]
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim in (3, 4):
        t = torch.as_tensor(images)
        return [t] if t.ndim == 3 else t
    return images


def _iter_uint8(items: Iterable[Any], value_range: tuple[float, float]) -> Iterator[torch.Tensor]:
    """Yield single uint8 images [3, H, W] (on their original device) from paths / tensors / arrays / PIL."""
    for item in items:
        if _is_path(item):
            yield _load_uint8(item)
            continue
        if not isinstance(item, (torch.Tensor, np.ndarray)):  # PIL image
            item = torch.from_numpy(np.asarray(to_rgb(item), dtype=np.uint8).copy()).permute(2, 0, 1)
        t = torch.as_tensor(item)
        if t.ndim == 3:
            t = t.unsqueeze(0)
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"expected images [3,H,W] or [N,3,H,W], got shape {tuple(t.shape)}")
        yield from images_to_uint8(t, value_range)


def feature_extractor_id(extractor: nn.Module) -> str:
    """A string that changes when the extractor changes: its ``extractor_id`` attribute, else a weight hash."""
    ident = getattr(extractor, "extractor_id", None)
    if isinstance(ident, str) and ident:
        return ident
    h = hashlib.sha1()
    for name, tensor in extractor.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{type(extractor).__module__}.{type(extractor).__qualname__}:{getattr(extractor, 'num_features', '?')}:{h.hexdigest()[:16]}"


@torch.no_grad()
def _extract(
    images: Iterable[torch.Tensor], extractor: nn.Module, batch_size: int, device: Union[str, torch.device]
) -> torch.Tensor:
    was_training = extractor.training
    extractor.eval()
    out: list[torch.Tensor] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        if batch:
            feats = extractor(torch.stack(batch).to(device))
            out.append(feats.detach().float().reshape(len(batch), -1).cpu())
            batch.clear()

    try:
        for img in images:
            if batch and (img.shape != batch[0].shape or len(batch) >= batch_size):
                flush()
            batch.append(img)
        flush()
    finally:
        extractor.train(was_training)
    if not out:
        return torch.zeros(0, int(getattr(extractor, "num_features", 0)))
    return torch.cat(out)


def _file_entry(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def _load_cache(path: Path, extractor_id: str) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
        if data.get("version") != CACHE_VERSION or data.get("extractor_id") != extractor_id:
            return None
        return data
    except Exception as exc:  # corrupt / partial file: recompute
        log.warning("ignoring unreadable feature cache %s (%s)", path, exc)
        return None


def _save_cache(path: Path, data: dict) -> None:
    with atomic_write(path) as tmp:
        torch.save(data, str(tmp))


def compute_features(
    images_or_paths: Union[PathLike, Iterable[ImageItem], torch.Tensor],
    extractor: nn.Module,
    batch_size: int = 32,
    device: Union[str, torch.device] = "cpu",
    cache_dir: Optional[PathLike] = None,
    cache_key: Optional[str] = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Features [N, F] (float32, CPU) of images, in input order.

    ``images_or_paths``: a folder (its image files, recursive, sorted), or an iterable of image file
    paths, uint8/float tensors [3,H,W] or [N,3,H,W] (batches), numpy arrays or PIL images; or a tensor
    [N,3,H,W]. Float images must lie in ``value_range`` ([0, 1] by default; (-1, 1) for generator outputs).
    Consecutive images of the same size are batched (``batch_size``) and run on ``device``.

    Caching (``cache_dir`` set): when every item is a file path, the key is the sorted resolved file list
    with each file's size and mtime, plus ``feature_extractor_id(extractor)``: a second call with the same
    files does not run the extractor, and touching, adding or removing a file recomputes. For tensors,
    pass an explicit ``cache_key`` (combined with the extractor id); without one nothing is cached.
    """
    items = as_items(images_or_paths)
    if cache_dir is None:
        return _extract(_iter_uint8(items, value_range), extractor, batch_size, device)

    ext_id = feature_extractor_id(extractor)
    if cache_key is not None:
        digest = hashlib.sha256(json.dumps(["key", CACHE_VERSION, str(cache_key), ext_id]).encode()).hexdigest()
        cache_file = Path(cache_dir) / f"features-{digest[:24]}.pt"
        cached = _load_cache(cache_file, ext_id)
        if cached is not None:
            log.info("feature cache hit: %s", cache_file)
            return cached["features"]
        feats = _extract(_iter_uint8(items, value_range), extractor, batch_size, device)
        _save_cache(cache_file, {"version": CACHE_VERSION, "extractor_id": ext_id, "files": [], "features": feats})
        return feats

    items = list(items)
    if not all(_is_path(it) for it in items):
        warnings.warn("compute_features: cache_dir is set but the inputs are not all file paths and no cache_key "
                      "was given; computing without the cache", stacklevel=2)
        return _extract(_iter_uint8(items, value_range), extractor, batch_size, device)

    paths = [Path(p).resolve() for p in items]
    unique = sorted(set(paths))
    entries = [_file_entry(p) for p in unique]
    digest = hashlib.sha256(json.dumps(["files", CACHE_VERSION, ext_id, entries]).encode()).hexdigest()
    cache_file = Path(cache_dir) / f"features-{digest[:24]}.pt"
    cached = _load_cache(cache_file, ext_id)
    if cached is not None and list(cached["files"]) == [e[0] for e in entries]:
        log.info("feature cache hit: %s (%d files)", cache_file, len(unique))
        feats = cached["features"]
    else:
        feats = _extract(_iter_uint8(unique, value_range), extractor, batch_size, device)
        _save_cache(cache_file, {"version": CACHE_VERSION, "extractor_id": ext_id,
                                 "files": [e[0] for e in entries], "features": feats})
    if paths == unique:
        return feats
    row = {p: i for i, p in enumerate(unique)}
    return feats[torch.tensor([row[p] for p in paths], dtype=torch.long)]
