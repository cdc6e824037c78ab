"""Reading an uploaded file into the RGB image the painter gets, with what the user should know.

The rules (stated in the page too):
- any file PIL reads (JPEG, PNG, WebP, BMP, TIFF, ...) is taken; anything else is refused with a
  message naming the file (:class:`UploadError`), never a traceback;
- grayscale, 16-bit, palette, transparent (RGBA) and CMYK images become RGB the way training and
  ``cyclegan.translate`` read them (:func:`cyclegan.common.imaging.load_image`), with a note saying so;
- an image over the size limit (``max_pixels``, default :data:`DEFAULT_MAX_MEGAPIXELS` megapixels) is
  downscaled to it, keeping its aspect, with a note; a file over :data:`REFUSED_MEGAPIXELS` is refused
  (decoding it alone would take gigabytes).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from cyclegan.common.errors import UserError, first_line
from cyclegan.common.imaging import ImageLoadError, load_image

__all__ = ["DEFAULT_MAX_MEGAPIXELS", "REFUSED_MEGAPIXELS", "UploadError", "Upload", "mode_notes", "read_upload"]

# A 4 MP painting (2448 x 1632) takes tens of seconds on a 2-core CPU: the limit keeps the page responsive.
DEFAULT_MAX_MEGAPIXELS = 4.0
# Larger files are refused rather than downscaled: below PIL's decompression-bomb limit (~179 MP).
REFUSED_MEGAPIXELS = 100.0

_GRAY_MODES = {"1", "L", "LA", "La", "I", "F"}
_FORMATS = "JPEG, PNG, WebP, BMP or TIFF"


class UploadError(UserError, ValueError):
    """An uploaded file the app cannot paint (the message names the file and what to upload instead)."""


@dataclass
class Upload:
    """An upload as the painter gets it: RGB, within the size limit; ``notes``: what was changed."""

    name: str
    image: Image.Image
    original_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)


def mode_notes(mode: str, info: dict) -> list[str]:
    """What reading an image of this PIL mode as RGB does to it, for the user (nothing for plain RGB)."""
    notes = []
    if mode.startswith("I;16") or mode in _GRAY_MODES:
        notes.append("grayscale image: painted as RGB (the painter sees three equal channels)")
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in info:
        notes.append("transparent image: transparent areas were filled with white")
    if mode == "CMYK":
        notes.append("CMYK image: converted to RGB (colours may shift slightly)")
    return notes


def _fit(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    w, h = size
    if w * h <= max_pixels:
        return size
    scale = math.sqrt(max_pixels / (w * h))
    return max(1, int(w * scale)), max(1, int(h * scale))


def read_upload(path: str | os.PathLike, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                name: str | None = None) -> Upload:
    """Decode an uploaded file for painting (the module's rules); :class:`UploadError` if it cannot be."""
    name = name or Path(path).name
    max_pixels = int(max_megapixels * 1e6)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limits below decide
            with Image.open(path) as im:
                header_size, mode, info = im.size, im.mode, dict(im.info)
    except Image.DecompressionBombError:
        raise UploadError(f"{name}: too large to open (over {REFUSED_MEGAPIXELS:g} megapixels); "
                          f"upload an image of at most {max_megapixels:g} megapixels") from None
    except UnidentifiedImageError:
        raise UploadError(f"{name} is not an image (none of the formats the app reads); "
                          f"upload a {_FORMATS} file") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UploadError(f"{name} is not an image the app can read ({first_line(exc)}); "
                          f"upload a {_FORMATS} file") from None
    megapixels = header_size[0] * header_size[1] / 1e6
    if megapixels > REFUSED_MEGAPIXELS:
        raise UploadError(f"{name}: {header_size[0]} x {header_size[1]} px ({megapixels:.0f} megapixels) is too large; "
                          f"the app paints images up to {max_megapixels:g} megapixels (larger ones up to "
                          f"{REFUSED_MEGAPIXELS:g} are downscaled): shrink it first")
    target = _fit(header_size, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = load_image(path, name=name, draft_size=min(target) if target != header_size else None)
    except ImageLoadError as exc:
        raise UploadError(f"{first_line(exc)}; upload a complete {_FORMATS} file") from None
    notes = mode_notes(mode, info)
    if target != header_size:
        fitted = _fit(image.size, max_pixels)  # the decoded image may be EXIF-rotated or drafted
        if fitted != image.size:
            image = image.resize(fitted, Image.LANCZOS)
        notes.append(f"{header_size[0]} x {header_size[1]} px is over the {max_megapixels:g}-megapixel limit: "
                     f"downscaled to {image.size[0]} x {image.size[1]} px")
    return Upload(name, image, header_size, notes)
