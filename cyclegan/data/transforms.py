"""Image transforms (albumentations) for the CycleGAN data pipeline.

Input: an RGB ``uint8`` numpy array ``HxWx3``. Output: ``float32`` tensor ``3xHxW`` in ``[-1, 1]``.
Works with albumentations 1.4.x and 2.x (only APIs common to both are used).
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import torch  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402

__all__ = ["build_transforms", "denormalize", "MEAN", "STD"]

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def build_transforms(
    image_size: int = 256,
    load_size: int = 286,
    train: bool = True,
    flip: bool = True,
    rotate: float = 0,
    color_jitter: float = 0.0,
) -> A.Compose:
    """The CycleGAN pipeline.

    train: ``Resize(load_size, load_size)`` -> ``Rotate(+-rotate, reflected border)`` if
    ``rotate`` -> ``RandomCrop(image_size)`` -> ``HorizontalFlip(p=0.5)`` if ``flip`` ->
    ``ColorJitter(brightness=contrast=saturation=s, hue=s/4)`` if ``color_jitter=s`` > 0.
    (Rotation comes before the crop so the crop removes most of the reflected corners.)

    test: ``Resize(image_size, image_size)`` only: no randomness.

    Both end with ``Normalize(0.5, 0.5)`` (``[0, 255]`` -> ``[-1, 1]``) and ``ToTensorV2``.
    """
    image_size, load_size = int(image_size), int(load_size)
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if train and load_size < image_size:
        raise ValueError(f"load_size ({load_size}) must be >= image_size ({image_size}): images are resized to "
                         "load_size, then randomly cropped to image_size")
    ops: list = []
    if train:
        ops.append(A.Resize(load_size, load_size, interpolation=cv2.INTER_CUBIC))
        if rotate and float(rotate) > 0:
            ops.append(A.Rotate(limit=float(rotate), border_mode=cv2.BORDER_REFLECT_101, p=1.0))
        ops.append(A.RandomCrop(image_size, image_size))
        if flip:
            ops.append(A.HorizontalFlip(p=0.5))
        if color_jitter and float(color_jitter) > 0:
            s = float(color_jitter)
            ops.append(A.ColorJitter(brightness=s, contrast=s, saturation=s, hue=min(0.5, s / 4), p=1.0))
    else:
        ops.append(A.Resize(image_size, image_size, interpolation=cv2.INTER_CUBIC))
    ops.append(A.Normalize(mean=MEAN, std=STD, max_pixel_value=255.0))
    ops.append(ToTensorV2())
    return A.Compose(ops)


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` -> ``[0, 1]`` (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)
