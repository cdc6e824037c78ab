"""The dataset layouts (``data.source``): one class per layout, one registry line each.

A layout knows where the training and test folders of domains A and B are under ``data.root``, what
to say when they are missing, how to read a folder (image files, or TFRecord shards), and whether it
can download itself. :class:`~cyclegan.data.datamodule.UnpairedDataModule` asks the layout of its
``source`` and has no branch per layout, so a new layout is a class here plus its line in
:data:`LAYOUTS` (and a ``conf/data/*.yaml`` that selects it).

``dir_a``/``dir_b`` (training) and ``test_dir_a``/``test_dir_b`` given by the user come first in every
layout; a layout only fills what is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .download import download_berkeley
from .sources import (
    BERKELEY_URL,
    KAGGLE_URL,
    LAYOUTS_HELP,
    DatasetNotFoundError,
    FileImageList,
    ImageList,
    TFRecordImageList,
    describe_folder,
    find_berkeley_root,
    find_dataset_folders,
    find_kaggle_root,
    kaggle_candidates,
    sample_dir,
)
from .tfrecord import tfrecord_files

DOMAINS = ("A", "B")
Folders = dict[str, Path | None]  # domain -> folder (None: not given, not found)


@dataclass(frozen=True)
class Dataset:
    """What a layout needs to know of the datamodule: the dataset's name and root folder."""

    name: str
    root: Path | None
    follow_links: bool = False  # data.follow_links: include links to folders outside a domain's folder


class Layout:
    """The base: folders found from what the user gave; image files read from them."""

    needs_root = False  # data.root is required unless dir_a and dir_b are both given
    needs_dirs = False  # data.dir_a and data.dir_b are required
    downloadable = False
    nothing_found = "no images"  # what a folder without anything readable is said to hold

    def locate(self, ds: Dataset, train: Folders, test: Folders) -> None:
        """Fill the training (and, where the layout has them, test) folders left None; raise
        :class:`DatasetNotFoundError` naming what was looked for when they do not exist."""
        require(ds, train)

    def scan(self, ds: Dataset, folder: Path, domain: str, split: str) -> ImageList:
        images = FileImageList.from_folder(folder, follow_links=ds.follow_links)
        if len(images) == 0:
            raise DatasetNotFoundError(f"Found {self.nothing_found} in {folder} (domain {domain}, split {split}) "
                                       f"for dataset {ds.name!r}. {LAYOUTS_HELP}")
        return images

    def download(self, ds: Dataset, train: Folders) -> None:
        """Fetch the dataset when it is missing (``data.download=true``); only downloadable layouts do."""


class FoldersLayout(Layout):
    """A folder of images per domain, given as ``data.dir_a`` / ``data.dir_b`` (``source=folders``)."""

    needs_dirs = True


class BerkeleyLayout(Layout):
    """``trainA``/``trainB``/``testA``/``testB`` under the root (the CycleGAN authors' datasets)."""

    needs_root = True
    downloadable = True

    def locate(self, ds: Dataset, train: Folders, test: Folders) -> None:
        base = find_berkeley_root(ds.root, ds.name) if ds.root is not None else None
        if base is None and (train["A"] is None or train["B"] is None):
            raise berkeley_missing(ds, f"{ds.root}/trainA and {ds.root}/trainB")
        for d in DOMAINS:
            if base is not None:
                if train[d] is None:
                    train[d] = base / f"train{d}"
                if test[d] is None and (base / f"test{d}").is_dir():
                    test[d] = base / f"test{d}"
            if not train[d].is_dir():
                raise berkeley_missing(ds, str(train[d]))

    def download(self, ds: Dataset, train: Folders) -> None:
        if ds.root is None or find_berkeley_root(ds.root, ds.name) is not None:
            return
        if train["A"] is not None and train["B"] is not None:
            return
        download_berkeley(ds.name, ds.root.parent, folder=ds.root.name)


class NamedFoldersLayout(Layout):
    """One named subfolder per domain under the root (e.g. Kaggle's ``monet_jpg``/``photo_jpg``),
    the root being the competition's folder, this project's former name for it, or the folder itself."""

    needs_root = True

    def __init__(self, folder_a: str, folder_b: str) -> None:
        self.names = (folder_a, folder_b)

    def base(self, ds: Dataset, train: Folders) -> Path | None:
        if train["A"] is not None and train["B"] is not None:
            return ds.root
        base = find_kaggle_root(ds.root, self.names)
        if base is None:
            raise kaggle_missing(ds, self.names)
        return base

    def locate(self, ds: Dataset, train: Folders, test: Folders) -> None:
        base = self.base(ds, train)
        for d, sub in zip(DOMAINS, self.names):
            if train[d] is None:
                train[d] = base / sub
        require(ds, train)


class TFRecordLayout(NamedFoldersLayout):
    """As :class:`NamedFoldersLayout`, with each folder read as TFRecord shards when it has ``*.tfrec``."""

    nothing_found = "no *.tfrec files and no images"

    def scan(self, ds: Dataset, folder: Path, domain: str, split: str) -> ImageList:
        if not tfrecord_files(folder):
            return super().scan(ds, folder, domain, split)
        images = TFRecordImageList.from_folder(folder)
        if len(images) == 0:
            raise DatasetNotFoundError(f"No readable records in the TFRecord files of {folder} "
                                       f"(domain {domain}, split {split}).")
        return images


class SampleLayout(NamedFoldersLayout):
    """The small sample bundled with the package (``A``/``B``), or the same layout under data.root."""

    needs_root = False

    def base(self, ds: Dataset, train: Folders) -> Path | None:
        return sample_dir() if ds.root is None else ds.root


# data.source -> its layout (the order is the one error messages list them in)
LAYOUTS: dict[str, Layout] = {
    "berkeley": BerkeleyLayout(),
    "kaggle": NamedFoldersLayout("monet_jpg", "photo_jpg"),
    "folders": FoldersLayout(),
    "tfrecord": TFRecordLayout("monet_tfrec", "photo_tfrec"),
    "sample": SampleLayout("A", "B"),
}


# ------------------------------------------------------------------ what to say when data is missing
def require(ds: Dataset, folders: Folders) -> None:
    missing = [str(folders[d]) for d in DOMAINS if not folders[d].exists()]
    if missing:
        raise layout_missing(ds, " and ".join(missing))


def found_here(ds: Dataset, missing: Path | None = None) -> str:
    """What the data folder holds and which dataset folders in it would work (for not-found errors)."""
    where = ds.root.parent if ds.root is not None else (missing.parent if missing is not None else None)
    if where is None:
        return ""
    found = find_dataset_folders(where)
    hint = (f" Dataset folders found there: {', '.join(found)} (select one with data=<name> when a config of "
            f"that name exists, else data=folders data.dir_a=... data.dir_b=...).") if found else ""
    return f" {describe_folder(where)}.{hint}"


def berkeley_missing(ds: Dataset, looked_for: str) -> DatasetNotFoundError:
    root = ds.root
    url = BERKELEY_URL.format(name=ds.name)
    return DatasetNotFoundError(
        f"Dataset {ds.name!r} not found: looked for {looked_for} (Berkeley CycleGAN layout "
        f"trainA/trainB/testA/testB). Download {url} and unzip it into {root.parent} so that {root}/trainA "
        f"exists, or set data.download=true, or set paths.data_dir=... to the folder that contains "
        f"{root.name}/ (or the env var CYCLEGAN_DATA_DIR).{found_here(ds)}"
    )


def kaggle_missing(ds: Dataset, subdirs: tuple[str, str]) -> DatasetNotFoundError:
    a, b = subdirs
    where = ", ".join(str(p) for p in kaggle_candidates(ds.root))
    found = find_dataset_folders(ds.root)
    return DatasetNotFoundError(
        f"Dataset {ds.name!r} not found: looked for {a}/ and {b}/ in {where}. Set paths.data_dir to the "
        f"folder that contains gan-getting-started/ (on Kaggle: paths.data_dir=/kaggle/input), or data.root to "
        f"the folder that holds {a}/ and {b}/ itself. The data is Kaggle's gan-getting-started ({KAGGLE_URL}, "
        f"`kaggle competitions download -c gan-getting-started`; it needs a Kaggle account, so there is no "
        f"automatic download). {describe_folder(ds.root)}."
        + (f" Dataset folders found there: {', '.join(found)}." if found else "")
    )


def layout_missing(ds: Dataset, looked_for: str) -> DatasetNotFoundError:
    hint = "Set data.dir_a / data.dir_b (or data.root) to existing folders."
    first = Path(looked_for.split(" and ")[0].removeprefix("test folder "))
    return DatasetNotFoundError(f"Dataset {ds.name!r} not found: looked for {looked_for}. {hint} {LAYOUTS_HELP}"
                                f"{found_here(ds, first)}")
