"""Image files, the same way for training, evaluation and inference.

- :data:`IMAGE_EXTENSIONS` and :func:`walk_images`: which files are images, found recursively,
  each real folder once (a link to ``.`` cannot make the walk loop or list a file twice), links to
  folders outside the scanned folder left out unless asked for (a link to a parent would bring in
  the other domain); each kind of left-out link is reported in one warning.
- :func:`load_image` and :func:`to_rgb`: decode to 8-bit RGB with one rule for every mode:
  EXIF orientation applied, transparent pixels composited on white, 16-bit and float images
  scaled. Training, translation and evaluation read images only through these.

Writing files safely is :mod:`cyclegan.common.files`; choosing a device is :mod:`cyclegan.common.devices`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct

import numpy as np
from PIL import Image, ImageOps

from cyclegan.common.errors import UserError

log = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "PIL_FORMATS",
    "ImageLoadError",
    "is_image_name",
    "walk_images",
    "to_rgb",
    "load_image",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
PIL_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP",
               ".tif": "TIFF", ".tiff": "TIFF"}
_SKIPPED_FOLDERS = {"__MACOSX"}  # macOS resource forks inside zips


class ImageLoadError(UserError, RuntimeError):
    """An image could not be read or decoded. ``.path`` names it."""

    def __init__(self, path: str, cause: BaseException | str | None = None):
        if cause is None:  # re-raised by a DataLoader worker, or a subclass's own message
            message = _original_message(str(path))
            self.path, self.cause = "", message
            super().__init__(message)
            return
        self.path = str(path)
        self.cause = cause
        reason = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else str(cause)
        super().__init__(f"cannot read image {self.path!r}: {reason}")


def _original_message(report: str) -> str:
    """The error line of a DataLoader worker's report ("Caught X in DataLoader worker ... X: msg").

    torch re-raises a worker's exception as ``type(exc)(report)``, the report holding the worker's
    traceback; the user needs only the last line, without the class name.
    """
    lines = [line for line in report.strip().splitlines() if line.strip()]
    if len(lines) < 2 or "DataLoader worker" not in lines[0]:
        return report
    last = lines[-1].strip()
    head, sep, rest = last.partition(": ")
    return rest if sep and head.endswith("Error") else last


# ----------------------------------------------------------------------------- listing
def is_image_name(name: str | os.PathLike) -> bool:
    """Whether the file name has an image extension (any case) and is not hidden."""
    name = os.path.basename(os.fspath(name))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def walk_images(folder: str | os.PathLike, exclude: str | os.PathLike | None = None, *,
                follow_links: bool = False, how_to_follow: str = "") -> list[str]:
    """Paths of the image files under ``folder`` (recursive), sorted by their path relative to it.

    A symbolic link to a folder is followed only when the folder it leads to lies inside
    ``folder``: a link out of it (``A/up -> ..``, which would bring in the other domain and the
    test splits, or ``A/more -> /elsewhere``) is left out unless ``follow_links`` (then every link
    is followed); one warning names each such link and where it leads, ending with
    ``how_to_follow`` (what the caller's option is called). A link to one image file is followed
    wherever it leads: it names that image on purpose. Every real folder and file is visited once
    (by device and inode): the folders of the tree itself first, then the folders links lead to,
    so a link to ``.`` or to a sibling (a loop, or the same images twice) is left out and files
    keep their real paths; a second name for the same file (a file link, a hard link) is left
    out too. Such links are reported in one warning, folders that cannot be listed in another.
    Hidden files and folders (``.x``) and ``__MACOSX`` are skipped, as is ``exclude`` (e.g. an
    output folder inside the input). Files are not opened (one ``stat`` each); a dangling link
    with an image name is listed, for the caller to report.
    """
    folder = os.fspath(folder)
    skip: set[tuple[int, int]] = set()
    if exclude is not None:
        with contextlib.suppress(OSError):
            skip.add(_identity(os.stat(exclude)))
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    repeated: list[str] = []
    outside: list[str] = []  # links to folders out of ``folder``, as "link -> target"
    unreadable: list[str] = []
    inside = _inside(folder)
    found: list[tuple[str, str]] = []
    real_dirs: list[str] = [folder]  # depth first through the real folders ...
    linked_dirs: list[str] = []  # ... then the targets of links (first found, first visited)
    try:
        seen_dirs.add(_identity(os.stat(folder)))
    except OSError:
        return []
    while real_dirs or linked_dirs:
        if real_dirs:
            directory = real_dirs.pop()
        else:
            directory = linked_dirs.pop(0)
            try:
                ident = _identity(os.stat(directory))
            except OSError:
                continue
            if ident in skip:
                continue
            target = os.path.realpath(directory)
            if not (follow_links or inside(target)):
                outside.append(f"{directory} -> {target}")
                continue
            if ident in seen_dirs:
                repeated.append(directory)
                continue
            seen_dirs.add(ident)
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            unreadable.append(f"{directory} ({e.strerror or e})")
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name in _SKIPPED_FOLDERS:
                    continue
                if entry.is_symlink():
                    linked_dirs.append(entry.path)
                    continue
                try:
                    ident = _identity(entry.stat())
                except OSError as e:
                    unreadable.append(f"{entry.path} ({e.strerror or e})")
                    continue
                if ident in skip:
                    continue
                if ident in seen_dirs:  # a bind mount, or a folder reached before through a link
                    repeated.append(entry.path)
                    continue
                seen_dirs.add(ident)
                subdirs.append(entry.path)
            elif is_image_name(entry.name):
                try:
                    ident = _identity(entry.stat())
                except OSError:  # a dangling link: listed, the caller says why it is unusable
                    ident = None
                if ident is not None and ident in seen_files:
                    repeated.append(entry.path)
                    continue
                if ident is not None:
                    seen_files.add(ident)
                found.append((os.path.relpath(entry.path, folder).replace(os.sep, "/"), entry.path))
        real_dirs.extend(reversed(subdirs))  # popped in name order
    if outside:
        log.warning("%s: left out %d symbolic link(s) to folders outside it, whose images are not this folder's: "
                    "%s%s", folder, len(outside), _listed(outside), f" ({how_to_follow})" if how_to_follow else "")
    if repeated:
        log.warning("%s: left out %d symbolic link(s) to folders or files already scanned (link loops or "
                    "duplicates; each real image is listed once): %s", folder, len(repeated), _listed(repeated))
    if unreadable:
        log.warning("%s: %d folder(s) could not be read, their images are left out: %s", folder, len(unreadable),
                    _listed(unreadable))
    found.sort()
    return [path for _, path in found]


def _inside(folder: str):
    """A test: whether a resolved path is ``folder`` (resolved) or lies under it."""
    root = os.path.realpath(folder)
    prefix = root.rstrip(os.sep) + os.sep
    return lambda real: real == root or real.startswith(prefix)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _listed(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


# ----------------------------------------------------------------------------- decoding
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
# Modes PIL's Image.reduce accepts; others (P: palette indices cannot be averaged, 1, I;16) are
# converted to RGB first.
_REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F"}


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB.

    Transparent images are composited on white; 16/32-bit integer images (``I;16``, ``I``)
    are scaled from the 16-bit range; float images (``F``) are taken as ``[0, 1]`` when their
    maximum is <= 1, else as ``[0, 255]``; CMYK, YCbCr, L, 1, P ... use PIL's conversion.
    A float image with NaN or infinite pixels raises ``ValueError`` (:func:`load_image`: an
    unreadable image, skipped like a corrupt file): clipped, they would be black and white
    pixels that the image never had.
    """
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if mode == "F":
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            if bad:
                raise ValueError(f"{bad} of {arr.size} pixels of this float image are NaN or infinite "
                                 "(missing values, not colours)")
            if arr.size and arr.max() <= 1.0:
                arr = arr * 255.0
        elif mode.startswith("I;16") or (arr.size and arr.max() > 255):
            arr = arr / 257.0  # 65535 -> 255
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB", "1") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _shrink_large(im: Image.Image, target: int) -> Image.Image:
    """Box-reduce a decoded non-JPEG image by an integer factor keeping both sides >= ``target``.

    JPEGs shrink while decoding (draft); PNG/WebP/BMP decode at full size, so big ones are
    reduced right away to keep the later conversions and transforms small. PIL's decompression
    bomb limit (``Image.MAX_IMAGE_PIXELS``, ~179 MP refused) bounds the decode itself: such
    files are skipped like any unreadable image.
    """
    factor = min(im.size) // max(target, 1)
    if factor < 2:
        return im
    if im.mode not in _REDUCIBLE_MODES:
        im = to_rgb(im)
    return im.reduce(factor)


def load_image(source, name: str | None = None, draft_size: int | None = None) -> Image.Image:
    """Decode ``source`` (path or binary file object) into an RGB PIL image (:func:`to_rgb`).

    EXIF orientation is applied. ``draft_size``: the image may come out smaller, but both sides
    stay >= ``draft_size`` (JPEGs decode at a reduced scale, other formats are box-reduced):
    fast reads of huge photos that are resized anyway. Any failure raises
    :class:`ImageLoadError` naming ``name`` (default: ``source``).
    """
    name = str(name if name is not None else source)
    try:
        with Image.open(source) as im:
            if draft_size and im.format == "JPEG":
                im.draft("RGB", (int(draft_size), int(draft_size)))
            elif draft_size:
                im = _shrink_large(im, int(draft_size))
            im = ImageOps.exif_transpose(im)  # a loaded copy (transposed when EXIF says so)
            rgb = to_rgb(im)
            rgb.load()
            return rgb
    except ImageLoadError:
        raise
    except (OSError, ValueError, SyntaxError, TypeError, struct.error, Image.DecompressionBombError) as e:
        raise ImageLoadError(name, e) from e
