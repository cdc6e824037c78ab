"""What the page's two buttons do, without Gradio: paint one upload, paint a batch into a zip.

The painting is ``cyclegan.translate``'s own code: :func:`~cyclegan.inference.translate.translate_image`
for one image (full size, any aspect, tiled over ``tile`` px) and
:func:`~cyclegan.inference.translate.translate_folder` for a batch (same-size images batched).
Every file is written under ``workdir`` (the app's temporary folder), one new folder per request.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from cyclegan.app.painters import Painter
from cyclegan.app.uploads import DEFAULT_MAX_MEGAPIXELS, UploadError, read_upload
from cyclegan.common.imaging import IMAGE_EXTENSIONS
from cyclegan.inference.batching import module_device
from cyclegan.inference.translate import translate_folder, translate_image

__all__ = ["DEFAULT_TILE", "DEFAULT_MAX_BATCH", "Painting", "BatchPainting", "paint_upload", "paint_batch"]

# Images larger than this are painted in overlapping tiles (bounded memory; seams blended).
DEFAULT_TILE = 1024
DEFAULT_MAX_BATCH = 32
_PNG = {"compress_level": 3}  # fast to write; a painting's noise compresses little anyway


@dataclass
class Painting:
    """One painted upload: the input as painted and the full-size painting (PNG files), the time taken."""

    input_path: Path
    painting_path: Path
    size: tuple[int, int]
    seconds: float
    painter: str
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.painter}: painted {self.size[0]} x {self.size[1]} px in {self.seconds:.1f} s"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


@dataclass
class BatchPainting:
    """A painted batch: the zip, the paintings, the time taken and the uploads left out (with why)."""

    zip_path: Path | None
    paintings: list[Path]
    seconds: float
    painter: str
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        head = f"{self.painter}: painted {len(self.paintings)} image(s) in {self.seconds:.1f} s"
        if self.skipped:
            head += f"; {len(self.skipped)} left out"
        return "\n".join([head] + [f"note: {n}" for n in self.notes] + [f"left out: {s}" for s in self.skipped])


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "image"


def _request_folder(workdir: Path) -> Path:
    Path(workdir).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="request-", dir=workdir))


def paint_upload(painter: Painter, path: str | Path, workdir: Path, *, name: str | None = None,
                 max_megapixels: float = DEFAULT_MAX_MEGAPIXELS, tile: int | None = DEFAULT_TILE) -> Painting:
    """Paint one uploaded file at its full size (or the size limit); :class:`UploadError` for a bad file."""
    upload = read_upload(path, max_megapixels, name=name)
    start = time.perf_counter()
    painting = translate_image(painter.model, upload.image, tile=tile)
    seconds = time.perf_counter() - start
    folder = _request_folder(workdir)
    stem = _slug(Path(upload.name).stem)
    input_path, painting_path = folder / f"{stem}.png", folder / f"{stem}_{_slug(painter.name)}.png"
    upload.image.save(input_path, **_PNG)
    painting.save(painting_path, **_PNG)
    return Painting(input_path, painting_path, painting.size, seconds, painter.name, upload.notes)


def _unique(stem: str, taken: set[str]) -> str:
    candidate, n = stem, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}_{n}"
    taken.add(candidate.lower())
    return candidate


def paint_batch(painter: Painter, paths: Sequence[str | Path], workdir: Path, *,
                max_megapixels: float = DEFAULT_MAX_MEGAPIXELS, tile: int | None = DEFAULT_TILE,
                max_files: int = DEFAULT_MAX_BATCH) -> BatchPainting:
    """Paint several uploads (full size each) into ``paintings.zip``; unreadable ones are left out and named.

    :class:`UploadError` when there is nothing to paint (no file, too many, none readable).
    """
    paths = [Path(p) for p in paths or []]
    if not paths:
        raise UploadError("no files uploaded: add one or more photos first")
    if len(paths) > max_files:
        raise UploadError(f"{len(paths)} files uploaded: the batch tab paints up to {max_files} at a time "
                          "(python -m cyclegan.translate paints folders of any size)")
    folder = _request_folder(workdir)
    inputs, outputs = folder / "inputs", folder / "paintings"
    inputs.mkdir()
    notes, skipped, taken = [], [], set()
    for path in paths:
        try:
            upload = read_upload(path, max_megapixels)
        except UploadError as exc:
            skipped.append(str(exc))
            continue
        stem = _unique(_slug(path.stem), taken)
        suffix = path.suffix.lower()
        if upload.image.size == upload.original_size and suffix in IMAGE_EXTENSIONS:
            shutil.copyfile(path, inputs / f"{stem}{suffix}")  # translate_folder decodes it by the same rules
        else:  # downscaled, or a format translate_folder does not list
            upload.image.save(inputs / f"{stem}.png", **_PNG)
        notes.extend(f"{upload.name}: {n}" for n in upload.notes)
    if not any(inputs.iterdir()):
        raise UploadError("none of the uploaded files is an image the app can read: " + "; ".join(skipped[:3]))
    start = time.perf_counter()
    painted = translate_folder(painter.model, inputs, outputs, ext="png", tile=tile, num_workers=0, progress=False,
                               device=module_device(painter.model), batch_size=8)
    seconds = time.perf_counter() - start
    zip_path = folder / f"paintings_{_slug(painter.name)}.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:  # PNGs: deflating again gains nothing
        for p in painted:
            zf.write(p, p.name)
    return BatchPainting(zip_path, painted, seconds, painter.name, notes, skipped)

