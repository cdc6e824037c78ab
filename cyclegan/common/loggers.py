"""The experiment loggers of a run (``conf/logger/*``): building them, and showing an image in each.

Used by training (callbacks, ``train()``) and by ``evaluate.py`` alike.

``conf/logger/wandb.yaml`` instantiates :class:`WandbLogger`, Lightning's W&B logger as a new user
needs it: without ``WANDB_MODE`` and without credentials (``WANDB_API_KEY``, or the API key
``wandb login`` stores in ``~/.netrc``), ``wandb.init`` would stop the run with a long traceback asking
for a key (or block on a prompt in a terminal). Here the run logs offline instead, with one warning
saying how to upload it later or log in; any ``WANDB_MODE`` (``online`` included) or
``logger.wandb.offline=true`` is respected as given. No network is touched to decide.
"""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import hydra
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger

log = logging.getLogger(__name__)

__all__ = ["instantiate_group", "log_image", "WandbLogger", "wandb_credentials_found"]


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group holding named objects (callbacks, loggers)."""
    if not group:
        return []
    return [hydra.utils.instantiate(node) for node in group.values() if node and "_target_" in node]


def log_image(loggers: Iterable[Logger], key: str, image, step: int, caption: str = "") -> None:
    """Send an HxWx3 uint8 image to every logger that can show images (CSV keeps the PNG files only)."""
    for logger in loggers:
        if isinstance(logger, _LightningWandbLogger):
            logger.log_image(key=key, images=[image], caption=[caption] if caption else None, step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, step, dataformats="HWC")


def wandb_credentials_found() -> bool:
    """Whether W&B has an API key to use: WANDB_API_KEY, an identity token, or a netrc entry for its host."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc").expanduser()
    try:
        return netrc.netrc(str(path)).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbLogger(_LightningWandbLogger):
    """:class:`pytorch_lightning.loggers.WandbLogger`, offline (with a warning) when there is no account."""

    def __init__(self, *args, offline: bool = False, **kwargs):
        if not offline and "mode" not in kwargs and not os.environ.get("WANDB_MODE") and not wandb_credentials_found():
            # wandb.init(mode="offline") rather than Lightning's offline=True: that one sets WANDB_MODE for the
            # whole process and refuses log_model, while an offline run keeps the model artifact for `wandb sync`
            kwargs["mode"] = "offline"
            save_dir = kwargs.get("save_dir") or "."
            log.warning("W&B: no API key (WANDB_API_KEY or `wandb login`) and WANDB_MODE is not set: logging offline "
                        "to %s/wandb; upload later with `wandb sync %s/wandb/offline-run-*`, or log in first (set "
                        "WANDB_MODE=offline to run offline without this warning)", save_dir, save_dir)
        super().__init__(*args, offline=offline, **kwargs)
        # Lightning always passes anonymous=None, and wandb >= 0.19 warns that the setting has no effect
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
