"""What `train.py` does once Hydra has composed the config: instantiate, fit, report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group holding named objects (callbacks, loggers)."""
    if not group:
        return []
    return [hydra.utils.instantiate(node) for node in group.values() if node and "_target_" in node]


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str) -> str | None:
    """`last` means the newest last.ckpt under this run's checkpoint folder."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        candidate = Path(output_dir) / "checkpoints" / "last.ckpt"
        if not candidate.exists():
            raise FileNotFoundError(
                f"ckpt_path=last: no {candidate}; pass the run's checkpoint path instead, "
                "e.g. ckpt_path=outputs/train/<run>/checkpoints/last.ckpt"
            )
        return str(candidate)
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such file")
    return ckpt_path


def train(cfg: DictConfig) -> dict[str, float]:
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)

    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.output_dir)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if "val/kid" in metrics:
        metrics["objective"] = metrics["val/kid"]
    log.info("finished; run directory: %s", cfg.paths.output_dir)
    return metrics
