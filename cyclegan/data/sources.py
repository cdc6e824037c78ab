"""Finding the images of each domain and split, for every supported on-disk layout.

Nothing here decodes an image: scanning only lists file names (a 100k-file tree takes
seconds), and TFRecord files are indexed by reading their 12-byte record headers.

Layouts (``source``):

- ``berkeley``: ``root/trainA``, ``root/trainB``, ``root/testA``, ``root/testB`` (the CycleGAN
  dataset server's zips; ``root/<name>/trainA`` is accepted too).
- ``kaggle``: ``monet_jpg`` (A) and ``photo_jpg`` (B) of Kaggle's ``gan-getting-started``, in ``root``
  itself or in ``root/gan-getting-started`` (Kaggle mounts it at ``/kaggle/input/gan-getting-started``)
  or ``root/kaggle_monet`` (see :func:`find_kaggle_root`).
- ``tfrecord``: ``monet_tfrec/*.tfrec`` (A) and ``photo_tfrec/*.tfrec`` (B), same competition, same folders.
- ``folders``: any two folders ``dir_a`` and ``dir_b``.
- ``sample``: the tiny dataset bundled in this package (``cyclegan/data/sample/{A,B}``).

Layouts without a test split get a deterministic hold-out (see :func:`holdout`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from cyclegan.common.errors import UserError
from cyclegan.common.imaging import IMAGE_EXTENSIONS, walk_images

from .tfrecord import index_records, parse_example, read_record, tfrecord_files

log = logging.getLogger(__name__)

__all__ = [
    "BERKELEY_URL",
    "LAYOUTS_HELP",
    "DatasetNotFoundError",
    "ImageList",
    "FileImageList",
    "TFRecordImageList",
    "scan_images",
    "walk_images",
    "holdout",
    "select_subset",
    "sample_dir",
    "find_berkeley_root",
    "find_kaggle_root",
    "KAGGLE_FOLDERS",
]

BERKELEY_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"
KAGGLE_URL = "https://www.kaggle.com/competitions/gan-getting-started/data"
# Folder names the competition data is looked for under data.root: Kaggle's own (its notebooks mount
# the data at /kaggle/input/gan-getting-started), then this project's former default name.
KAGGLE_FOLDERS = ("gan-getting-started", "kaggle_monet")

LAYOUTS_HELP = (
    "Accepted layouts: berkeley = root/trainA, root/trainB (+ testA, testB); "
    "kaggle = root/monet_jpg, root/photo_jpg; tfrecord = root/monet_tfrec/*.tfrec, root/photo_tfrec/*.tfrec "
    "(also in root/gan-getting-started or root/kaggle_monet); "
    "folders = dir_a, dir_b. Images: " + " ".join(IMAGE_EXTENSIONS) + " (any case, searched recursively)."
)


class DatasetNotFoundError(UserError, FileNotFoundError):
    """The data a config points at is missing or empty; the message says what was looked for."""


# ----------------------------------------------------------------------------- image lists
class ImageList(Sequence):
    """An ordered, indexable list of images of one domain and split.

    ``paths[i]`` is a display/identity string; ``open(i)`` returns something
    :func:`PIL.Image.open` accepts (a path or a binary file object); ``keys[i]`` is a
    location-independent identity used for the deterministic hold-out.
    """

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):  # Sequence protocol: the path string
        return self.paths[i]

    @property
    def paths(self) -> list[str]:
        raise NotImplementedError

    @property
    def keys(self) -> list[str]:
        return self.paths

    def open(self, i: int):
        raise NotImplementedError

    def subset(self, indices: Sequence[int]) -> ImageList:
        raise NotImplementedError


class FileImageList(ImageList):
    """Image files on disk."""

    def __init__(self, paths: Sequence[str], keys: Sequence[str] | None = None, folder: str | None = None):
        self._paths = [str(p) for p in paths]
        self._keys = list(keys) if keys is not None else None
        self.folder = folder

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, follow_links: bool = False) -> FileImageList:
        folder = str(folder)
        paths = scan_images(folder, follow_links=follow_links)
        keys = [os.path.relpath(p, folder).replace(os.sep, "/") for p in paths]
        return cls(paths, keys, folder=folder)

    @property
    def paths(self) -> list[str]:
        return self._paths

    @property
    def keys(self) -> list[str]:
        return self._keys if self._keys is not None else self._paths

    def open(self, i: int):
        return self._paths[i]

    def subset(self, indices: Sequence[int]) -> FileImageList:
        keys = self.keys
        return FileImageList([self._paths[i] for i in indices], [keys[i] for i in indices], folder=self.folder)

    def __repr__(self) -> str:
        return f"FileImageList({self.folder or ''!s}, n={len(self)})"


class TFRecordImageList(ImageList):
    """JPEG images stored in the ``image`` feature of tf.train.Example records.

    Entries are ``(file, data_offset, data_length, record_index)``; paths read
    ``<file>#<record_index>``. ``verify`` checks the data CRC when a record is read (the
    length CRCs are always checked while indexing; corrupt tails are skipped with a warning).
    """

    def __init__(self, entries: Sequence[tuple[str, int, int, int]], image_key: str = "image", verify: bool = True):
        self.entries = list(entries)
        self.image_key = image_key
        self.verify = verify
        self._paths = [f"{f}#{i}" for f, _, _, i in self.entries]

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, image_key: str = "image", verify: bool = True):
        entries = []
        for f in tfrecord_files(folder):
            for i, (off, n) in enumerate(index_records(f, verify=True)):
                entries.append((str(f), off, n, i))
        return cls(entries, image_key=image_key, verify=verify)

    @property
    def paths(self) -> list[str]:
        return self._paths

    @property
    def keys(self) -> list[str]:
        return [f"{os.path.basename(f)}#{i}" for f, _, _, i in self.entries]

    def read_example(self, i: int) -> dict[str, list]:
        f, off, n, _ = self.entries[i]
        return parse_example(read_record(f, off, n, verify=self.verify))

    def open(self, i: int):
        ex = self.read_example(i)
        values = ex.get(self.image_key)
        if not values or not isinstance(values[0], bytes):
            raise ValueError(f"record has no bytes feature {self.image_key!r} (features: {sorted(ex)})")
        return io.BytesIO(values[0])

    def subset(self, indices: Sequence[int]) -> TFRecordImageList:
        return TFRecordImageList([self.entries[i] for i in indices], image_key=self.image_key, verify=self.verify)

    def __repr__(self) -> str:
        return f"TFRecordImageList(n={len(self)})"


# ----------------------------------------------------------------------------- scanning
def scan_images(folder: str | os.PathLike, follow_links: bool = False) -> list[str]:
    """All image files under ``folder`` (:func:`cyclegan.common.imaging.walk_images`: recursive, each real
    folder once, links to folders outside ``folder`` left out unless ``follow_links``
    (``data.follow_links``), hidden files and ``__MACOSX`` skipped), sorted.

    No file is opened: empty (0-byte) files and broken links are dropped here from one ``stat``
    each, with a warning per file (the first ``MAX_LISTED_SKIPS``) and a count; files that fail to
    decode are skipped later, when read.
    """
    out: list[str] = []
    skipped = 0
    for path in walk_images(folder, follow_links=follow_links,
                            how_to_follow="data.follow_links=true includes them"):
        try:
            empty = os.stat(path).st_size == 0
            reason = "empty file (0 bytes)"
        except OSError as e:  # a dangling symlink, or removed while scanning
            empty, reason = True, f"cannot stat it ({e.strerror})"
        if empty:
            skipped += 1
            if skipped <= MAX_LISTED_SKIPS:
                log.warning("skipping %s: %s", path, reason)
            continue
        out.append(path)
    if skipped:
        log.warning("%s: skipped %d unusable file(s)%s; %d image(s) kept", folder, skipped,
                    f" ({skipped - MAX_LISTED_SKIPS} not listed)" if skipped > MAX_LISTED_SKIPS else "", len(out))
    return out


MAX_LISTED_SKIPS = 20  # scan warnings listed one by one; the rest are only counted


def describe_folder(folder: str | os.PathLike, limit: int = 12) -> str:
    """What a folder holds, for error messages: 'X does not exist' / 'X is empty' / 'X contains: a/, b.txt'."""
    folder = Path(folder)
    if not folder.exists():
        parent = next((p for p in folder.parents if p.exists()), None)
        return f"{folder} does not exist" + (f" ({describe_folder(parent, limit)})" if parent and parent != folder
                                              and str(parent) not in ("/", ".") else "")
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as e:
        return f"{folder} cannot be listed ({e.strerror})"
    names = [p.name + ("/" if p.is_dir() else "") for p in entries if not p.name.startswith(".")]
    if not names:
        return f"{folder} is empty"
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return f"{folder} contains: {', '.join(names[:limit])}{more}"


def find_dataset_folders(folder: str | os.PathLike) -> list[str]:
    """Subfolders of ``folder`` holding a recognised layout (Berkeley trainA/trainB, Kaggle, TFRecord)."""
    folder = Path(folder)
    found = []
    try:
        subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for sub in subs:
        if find_berkeley_root(sub, sub.name) is not None or any(
            (sub / a).is_dir() and (sub / b).is_dir() for a, b in (("monet_jpg", "photo_jpg"),
                                                                    ("monet_tfrec", "photo_tfrec"))):
            found.append(sub.name)
    return found


def _rank(keys: Sequence[str]) -> list[int]:
    """Indices ordered by a stable hash of each key (independent of file location)."""
    # surrogateescape: a file name that is not valid UTF-8 hashes as its bytes (valid names are unchanged)
    return sorted(range(len(keys)), key=lambda i: (hashlib.md5(keys[i].encode("utf-8", "surrogateescape")).hexdigest(),
                                                   keys[i]))


def select_subset(images: ImageList, k: int) -> ImageList:
    """A deterministic, spread-out subset of ``k`` images (all when ``k`` >= len)."""
    if k is None or k >= len(images):
        return images
    chosen = sorted(_rank(images.keys)[: max(k, 0)])
    return images.subset(chosen)


def holdout(images: ImageList, k: int) -> tuple[ImageList, ImageList]:
    """Split off a deterministic hold-out of ``k`` images: returns ``(rest, held_out)``.

    The hold-out is the ``k`` images with the smallest MD5 of their relative path (or TFRecord
    ``file#index``), so it does not depend on where the data lives and barely moves when
    images are added. At most half of the images are held out, so training keeps data; a
    domain of a single image is used for both. ``k <= 0`` holds out nothing (empty hold-out).
    """
    n = len(images)
    if k is None or int(k) <= 0:
        return images, images.subset([])
    if n == 1:
        return images, images
    k = min(int(k), n // 2)
    held = set(_rank(images.keys)[:k])
    rest = [i for i in range(n) if i not in held]
    return images.subset(rest), images.subset(sorted(held))


# ----------------------------------------------------------------------------- layouts
def sample_dir() -> Path:
    """The bundled sample dataset (works from an installed package)."""
    try:
        p = Path(str(files("cyclegan.data") / "sample"))
        if p.is_dir():
            return p
    except Exception:  # pragma: no cover - zipped installs etc.
        pass
    return Path(__file__).resolve().parent / "sample"


def find_berkeley_root(root: Path, name: str | None = None) -> Path | None:
    """``root`` if it holds trainA/trainB (or testA/testB), else ``root/<name>`` or a single
    subfolder that does (zips unpacked one level too deep); None when nothing matches."""

    def ok(p: Path) -> bool:
        return ((p / "trainA").is_dir() and (p / "trainB").is_dir()) or (
            (p / "testA").is_dir() and (p / "testB").is_dir()
        )

    if ok(root):
        return root
    if name and ok(root / name):
        return root / name
    if root.is_dir():
        subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(subs) == 1 and ok(subs[0]):
            return subs[0]
    return None


def kaggle_candidates(root: Path) -> list[Path]:
    """Where :func:`find_kaggle_root` looks, in order: ``root``, then ``root/<name>`` for KAGGLE_FOLDERS."""
    return [root] + [root / name for name in KAGGLE_FOLDERS]


def find_kaggle_root(root: Path, subdirs: tuple[str, str]) -> Path | None:
    """The folder holding both ``subdirs`` (``monet_jpg``, ``photo_jpg`` or the ``_tfrec`` pair):
    ``root`` itself, ``root/gan-getting-started``, ``root/kaggle_monet``, or the single subfolder of
    ``root`` that holds them (a download unpacked under another name); None when none does."""

    def ok(p: Path) -> bool:
        return all((p / sub).is_dir() for sub in subdirs)

    found = next((p for p in kaggle_candidates(root) if ok(p)), None)
    if found is None and root.is_dir():
        subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and ok(p)]
        found = subs[0] if len(subs) == 1 else None
    return found
