"""Exact resume: what Lightning does not put in a checkpoint, and checkpoints that survive a crash.

Lightning already saves the epoch / global-step counters, optimizer and LR-scheduler states and
(through ``CycleGAN.on_save_checkpoint``) the image pools. :class:`ExactResume` adds the rest of
what decides the next step of training:

- the global random generators: torch (CPU and every CUDA device), numpy and Python ``random``;
- the random streams of the training dataset when it runs in the main process
  (``data.num_workers=0``): the B-image choice generator and the albumentations generators.
  With worker processes those streams are re-derived from torch's generator at each epoch, so the
  torch state covers them (not with ``persistent_workers``, whose workers outlive the epoch);
- under DDP, every rank's generators (gathered when the checkpoint is built), each restored on
  its own rank;
- the W&B run id, so ``ckpt_path=...`` continues the same W&B run (``training.py`` reads it
  with :func:`wandb_run_id` before the loggers exist).

A run resumed from an end-of-epoch checkpoint then continues exactly as if it had never stopped.
From a mid-epoch checkpoint, counters, LR, optimizers, pools and generators are restored, but the
rest of the interrupted epoch is drawn from a new shuffle (Lightning's plain DataLoader cannot
replay its position; it warns about it).

The other parts of resuming have their own modules: which checkpoint a resume takes
(:mod:`~cyclegan.training.resume_checkpoint`), the metrics history (:mod:`~cyclegan.training.metrics_history`),
crash-proof checkpoint writes (:mod:`~cyclegan.training.atomic_checkpoint`) and the random state
itself (:mod:`~cyclegan.training.rng_state`).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger, WandbLogger
from torch.utils.data import DataLoader

from cyclegan.training.metrics_history import METRICS_CSV_KEY, METRICS_FILE
from cyclegan.training.resume_checkpoint import read_checkpoint
from cyclegan.training.rng_state import (
    dataset_rng_state,
    global_rng_state,
    set_dataset_rng_state,
    set_global_rng_state,
)

log = logging.getLogger(__name__)

WANDB_RUN_ID_KEY = "wandb_run_id"


def _training_dataset(trainer: pl.Trainer):
    """The training dataset: the running loader's, else (while restoring, before the loader
    exists) the datamodule's `data_train`, which is the object that loader will draw from."""
    loader = trainer.train_dataloader
    if isinstance(loader, DataLoader):
        return loader.dataset
    return getattr(trainer.datamodule, "data_train", None)


# ----------------------------------------------------------------------------- the callback
class ExactResume(pl.Callback):
    """Saves and restores the random state of training and the W&B run id (see the module doc).

    Two more things make the point where a checkpoint was saved irrelevant:

    - validation runs on a copy of the random state (it is put back when validation ends), so a
      checkpoint saved before or after an epoch's validation continues identically and training
      does not depend on how often it validates;
    - a checkpoint saved on the last batch of an epoch (`every_n_train_steps`) precedes the
      epoch-end hooks, which Lightning does not replay on resume: the per-epoch LR schedulers are
      stepped on to the resumed epoch (CycleGAN steps them once at each epoch end);
    - logged rows continue at the step where the checkpoint stopped (see ``on_train_batch_start``);
    - a checkpoint saved at an epoch's end resumes at the next epoch's start, never inside the epoch
      end it already went through (see :func:`start_after_finished_epoch`).
    """

    def __init__(self) -> None:
        self._rng_before_validation: dict | None = None
        self._restored = False
        self._align_log_step = False

    # ---- checkpoint contents
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # Lightning builds the checkpoint on every rank and rank 0 writes it: gather each rank's
        # generators (they differ: the data streams are seeded per rank) so each gets its own back.
        own = {"global": global_rng_state()}
        dataset = _training_dataset(trainer)
        if dataset is not None and (data_state := dataset_rng_state(dataset)) is not None:
            own["train_dataset"] = data_state
        checkpoint["rng_state"] = {"ranks": _gather_from_ranks(trainer, own)}
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and logger.version:
                checkpoint[WANDB_RUN_ID_KEY] = logger.version
            elif isinstance(logger, CSVLogger) and trainer.is_global_zero:
                # the history up to this checkpoint is on disk (a killed run loses no row before it),
                # and a resumed run knows where to copy it from (carry_over_metrics)
                logger.save()
                checkpoint[METRICS_CSV_KEY] = str(Path(logger.log_dir) / METRICS_FILE)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # Called while Lightning restores the checkpoint, after the datamodule's setup and before
        # the first training dataloader iterator is created: nothing random happens in between.
        self._restored = self._align_log_step = True
        start_after_finished_epoch(checkpoint)
        ranks = (checkpoint.get("rng_state") or {}).get("ranks")
        if not ranks:
            log.warning("the checkpoint has no random state (saved without ExactResume): "
                        "training continues, but not bit-for-bit as an uninterrupted run")
            return
        if len(ranks) != trainer.world_size:
            log.warning("the checkpoint was saved by %d processes and is resumed by %d: the random state "
                        "of each rank is not the one it had", len(ranks), trainer.world_size)
        state = ranks[trainer.global_rank % len(ranks)]
        set_global_rng_state(state["global"])
        data_state = state.get("train_dataset")
        dataset = _training_dataset(trainer)
        if data_state is not None and dataset is not None and callable(getattr(dataset, "generator", None)):
            set_dataset_rng_state(dataset, data_state)

    # ---- LR schedulers of a checkpoint saved before its epoch's end hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._restored:
            return
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if config.interval != "epoch" or isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                continue  # plateau steps need the epoch's metric, which was not logged before the stop
            with warnings.catch_warnings():
                # the optimizer stepped before the checkpoint was saved: PyTorch's order check cannot know that
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                while scheduler.last_epoch < trainer.current_epoch:
                    scheduler.step()

    # ---- logged steps of a resumed run
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if not self._align_log_step:
            return
        self._align_log_step = False
        # Rows are logged at the epoch loop's count of batches that stepped, which here equals
        # global_step (one count per batch: CycleGAN.step_without_counting). On a restart from an
        # end-of-epoch checkpoint Lightning adds one to that count although no batch ran, and every
        # later row of metrics.csv moved one step on (0-5, then 7, 8, 9): start it where the run stopped.
        loop = trainer.fit_loop.epoch_loop
        if getattr(loop, "_batches_that_stepped", None) is not None:
            loop._batches_that_stepped = trainer.global_step

    # ---- validation leaves the training's random state as it found it
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:  # Lightning isolates the sanity check itself
            self._rng_before_validation = global_rng_state()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # runs before ModelCheckpoint's on_validation_end (Lightning calls checkpoint callbacks last)
        if self._rng_before_validation is not None:
            set_global_rng_state(self._rng_before_validation)
            self._rng_before_validation = None


def start_after_finished_epoch(checkpoint: dict) -> None:
    """Make an end-of-epoch checkpoint restart at the next epoch's start (its loop state, in place).

    ModelCheckpoint saves in ``on_train_epoch_end``, after the fit loop counted the epoch processed
    and before it counts it completed. Without ``trainer.max_steps`` Lightning resumes that state at
    the next epoch; with it (iteration-based training) Lightning takes it for a restart *inside* that
    epoch's end and runs the end again: the epoch is counted twice (a run stopped by max_steps at the
    end of its next-to-last epoch then ends at once, "nothing was trained"), CycleGAN steps its LR
    schedulers once more and the epoch's checkpoints are rewritten. The epoch-end hooks all ran before
    the save, so the state is recorded as it is when the next epoch begins: the epoch completed, no
    batch of the next one started.
    """
    loop = (checkpoint.get("loops") or {}).get("fit_loop")
    epochs = (loop or {}).get("epoch_progress")
    batches = (loop or {}).get("epoch_loop.batch_progress")
    if not epochs or not batches:
        return
    total = epochs["total"]
    saved_at_epoch_end = total["ready"] == total["started"] == total["processed"] == total["completed"] + 1
    if not (saved_at_epoch_end and batches.get("is_last_batch")):
        return
    for counts in (epochs["total"], epochs["current"]):
        counts["completed"] = counts["processed"]
    batches["current"] = dict.fromkeys(batches["current"], 0)
    batches["is_last_batch"] = False


def _gather_from_ranks(trainer: pl.Trainer, state: dict) -> list[dict]:
    """[state of rank 0, rank 1, ...]: a collective, like Trainer.save_checkpoint itself."""
    if trainer.world_size == 1 or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [state]
    states: list = [None] * trainer.world_size
    torch.distributed.all_gather_object(states, state)
    return states


def wandb_run_id(ckpt_path: str | os.PathLike) -> str | None:
    """The W&B run id stored in a checkpoint by ExactResume (memory-mapped: tensors are not read)."""
    checkpoint = read_checkpoint(ckpt_path)
    return checkpoint.get(WANDB_RUN_ID_KEY) if isinstance(checkpoint, dict) else None
