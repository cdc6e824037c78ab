"""Data layer: image sources for every layout, datasets, transforms and the Lightning DataModule.

Main entry point: :class:`UnpairedDataModule` (instantiated from ``conf/data/*.yaml``).
"""

from .datamodule import UnpairedDataModule
from .datasets import DomainDataset, ImageLoadError, PairedByIndexDataset, UnpairedDataset, load_image, to_rgb
from .download import DatasetDownloadError, berkeley_url, download_berkeley
from .sources import (
    BERKELEY_URL,
    IMG_EXTENSIONS,
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
    "ImageLoadError",
    "DatasetNotFoundError",
    "load_image",
    "to_rgb",
    "build_transforms",
    "denormalize",
    "download_berkeley",
    "DatasetDownloadError",
    "berkeley_url",
    "BERKELEY_URL",
    "IMG_EXTENSIONS",
    "ImageList",
    "FileImageList",
    "TFRecordImageList",
    "scan_images",
    "holdout",
    "sample_dir",
]
