"""The experiment loggers of a run (``conf/logger/*``): building them, and showing an image in each.

Used by training (callbacks, ``train()``) and by ``evaluate.py`` alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import hydra
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, TensorBoardLogger, WandbLogger

__all__ = ["instantiate_group", "log_image"]


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group holding named objects (callbacks, loggers)."""
    if not group:
        return []
    return [hydra.utils.instantiate(node) for node in group.values() if node and "_target_" in node]


def log_image(loggers: Iterable[Logger], key: str, image, step: int, caption: str = "") -> None:
    """Send an HxWx3 uint8 image to every logger that can show images (CSV keeps the PNG files only)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], caption=[caption] if caption else None, step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, step, dataformats="HWC")
