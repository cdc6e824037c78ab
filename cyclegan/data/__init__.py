"""Data layer: image sources for every layout, datasets, transforms and the Lightning DataModule.

Main entry point: :class:`UnpairedDataModule` (instantiated from ``conf/data/*.yaml``).
"""

from .datamodule import UnpairedDataModule
from .datasets import DomainDataset, PairedByIndexDataset, UnpairedDataset
from .download import DatasetDownloadError, berkeley_url, download_berkeley
from .sources import (
    BERKELEY_URL,
    DatasetNotFoundError,
    FileImageList,
    ImageList,
    TFRecordImageList,
    holdout,
    sample_dir,
    scan_images,
)
from .transforms import build_transforms, denormalize

__all__ = [
    "UnpairedDataModule",
    "UnpairedDataset",
    "PairedByIndexDataset",
    "DomainDataset",
    "DatasetNotFoundError",
    "build_transforms",
    "denormalize",
    "download_berkeley",
    "DatasetDownloadError",
    "berkeley_url",
    "BERKELEY_URL",
    "ImageList",
    "FileImageList",
    "TFRecordImageList",
    "scan_images",
    "holdout",
    "sample_dir",
]
