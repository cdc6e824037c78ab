"""Where and how the guards (NaN guard, graceful shutdown) save their checkpoints: every rank, atomically."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

__all__ = ["checkpoint_dir", "save_checkpoint"]


def checkpoint_dir(trainer: pl.Trainer) -> Path:
    """The ModelCheckpoint folder (``<run>/checkpoints``), else ``<default_root_dir>/checkpoints``."""
    callback = trainer.checkpoint_callback
    dirpath = getattr(callback, "dirpath", None)
    return Path(dirpath) if dirpath else Path(trainer.default_root_dir) / "checkpoints"


def save_checkpoint(trainer: pl.Trainer, path: Path) -> str:
    """``trainer.save_checkpoint`` (atomic: Lightning writes through a transaction), every rank.

    A ``last.ckpt`` left as a symlink by ``save_last="link"`` is removed first, so the save does not
    write through it into the checkpoint it points at.
    """
    if trainer.is_global_zero:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
    callback = trainer.checkpoint_callback
    if callback is not None and getattr(callback, "save_last", False) and \
            Path(callback.format_checkpoint_name({}, callback.CHECKPOINT_NAME_LAST)) == path:
        # ModelCheckpoint's own last.ckpt from now on (this is part of the saved state): a resumed run
        # overwrites it instead of writing last-v1.ckpt beside a stale last.ckpt
        callback.last_model_path = str(path)
    trainer.save_checkpoint(str(path), weights_only=False)  # full training state: resumable
    return str(path)
