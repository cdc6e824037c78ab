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

:class:`AtomicCheckpointIO` writes every checkpoint to a temporary file in the same folder and
renames it over the target, so a crash while saving leaves the previous ``last.ckpt`` intact.
"""

from __future__ import annotations

import csv
import errno
import logging
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader

from cyclegan.errors import MissingFileError, UserError, find_cause
from cyclegan.files import atomic_write, temporary_glob, temporary_writer_pid

log = logging.getLogger(__name__)

WANDB_RUN_ID_KEY = "wandb_run_id"
METRICS_CSV_KEY = "metrics_csv"  # the CSVLogger file holding this run's history (carry_over_metrics)
METRICS_FILE = "metrics.csv"


# ----------------------------------------------------------------------------- global generators
# Checkpoint contents stay plain Python types and tensors: checkpoints are loaded with
# torch.load(weights_only=True), which refuses numpy arrays.
def global_rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached_gauss)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        # a run resumed on fewer GPUs restores the ones it has
        for device, device_state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state, device)


# ----------------------------------------------------------------------------- dataset streams
def _albumentations_nodes(transform) -> list:
    """The transform and its children, depth first: each keeps its own generators (albumentations 2)."""
    nodes = [transform]
    for child in getattr(transform, "transforms", None) or []:
        nodes.extend(_albumentations_nodes(child))
    return nodes


def dataset_rng_state(dataset) -> dict[str, Any] | None:
    """Random streams of a dataset drawing in the main process (UnpairedDataset), or None."""
    make_generator = getattr(dataset, "generator", None)
    if not callable(make_generator):
        return None
    generator = make_generator()  # created (and the transform seeded) on first use
    if not isinstance(generator, torch.Generator):
        return None
    transforms = []
    for node in _albumentations_nodes(getattr(dataset, "transform", None)):
        if hasattr(node, "random_generator") and hasattr(node, "py_random"):
            transforms.append([node.random_generator.bit_generator.state, node.py_random.getstate()])
    return {"generator": generator.get_state(), "transforms": transforms}


def set_dataset_rng_state(dataset, state: dict[str, Any]) -> None:
    generator = dataset.generator()  # seeds everything the dataset's way first, then we overwrite
    generator.set_state(state["generator"])
    nodes = [n for n in _albumentations_nodes(getattr(dataset, "transform", None))
             if hasattr(n, "random_generator") and hasattr(n, "py_random")]
    if len(nodes) != len(state["transforms"]):
        log.warning("the training transforms changed since the checkpoint; their random streams restart")
        return
    for node, (numpy_state, python_state) in zip(nodes, state["transforms"]):
        node.random_generator.bit_generator.state = numpy_state
        version, internal, gauss_next = python_state
        node.py_random.setstate((version, tuple(internal), gauss_next))


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
      stepped on to the resumed epoch (CycleGAN steps them once at each epoch end).
    """

    def __init__(self) -> None:
        self._rng_before_validation: dict | None = None
        self._restored = False

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
        self._restored = True
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

    # ---- validation leaves the training's random state as it found it
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:  # Lightning isolates the sanity check itself
            self._rng_before_validation = global_rng_state()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # runs before ModelCheckpoint's on_validation_end (Lightning calls checkpoint callbacks last)
        if self._rng_before_validation is not None:
            set_global_rng_state(self._rng_before_validation)
            self._rng_before_validation = None


def _gather_from_ranks(trainer: pl.Trainer, state: dict) -> list[dict]:
    """[state of rank 0, rank 1, ...]: a collective, like Trainer.save_checkpoint itself."""
    if trainer.world_size == 1 or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [state]
    states: list = [None] * trainer.world_size
    torch.distributed.all_gather_object(states, state)
    return states


def wandb_run_id(ckpt_path: str | os.PathLike) -> str | None:
    """The W&B run id stored in a checkpoint by ExactResume (memory-mapped: tensors are not read)."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", mmap=True, weights_only=True)
    return checkpoint.get(WANDB_RUN_ID_KEY)


# ----------------------------------------------------------------------------- metrics history
def carry_over_metrics(loggers: list, ckpt_path: str | os.PathLike) -> None:
    """Give every CSVLogger of a resumed run the rows its run logged before ``ckpt_path``.

    The rows come from the file stored in the checkpoint by ExactResume (else the usual
    ``<run>/csv/metrics.csv`` beside ``<run>/checkpoints/``). Only steps before the checkpoint's
    global step are kept: later ones were logged after the checkpoint and are trained again. Must
    run before the logger writes: Lightning's CSV writer deletes an existing metrics.csv.
    """
    targets = [logger for logger in loggers if isinstance(logger, CSVLogger)]
    if not targets or rank_zero_only.rank != 0:
        return
    checkpoint = torch.load(ckpt_path, map_location="cpu", mmap=True, weights_only=True)
    stored = checkpoint.get(METRICS_CSV_KEY)
    fallback = Path(ckpt_path).resolve().parent.parent / "csv" / METRICS_FILE
    source = next((Path(p) for p in (stored, fallback) if p and Path(p).is_file()), None)
    if source is None:
        log.info("no metrics history beside %s: csv/%s starts at the resumed step", ckpt_path, METRICS_FILE)
        return
    resume_step = int(checkpoint["global_step"])
    with open(source, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = [row for row in reader if row.get("step") not in (None, "") and int(float(row["step"])) < resume_step]
    for logger in targets:
        writer = logger.experiment  # created now: removes the old file (read above) if it is the same one
        with open(writer.metrics_file_path, "w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=header)
            out.writeheader()
            out.writerows(rows)
        writer.metrics_keys = sorted(header)  # later rows with new keys rewrite the file with all columns
    log.info("carried %d rows of metrics history (steps < %d) over from %s", len(rows), resume_step, source)


# ----------------------------------------------------------------------------- finding `last`
class ResumeError(UserError, ValueError):
    """``ckpt_path`` cannot be used to resume this run (refused, unreadable or a different model)."""


class NothingToResume(ResumeError, MissingFileError):
    """``ckpt_path=last`` found no checkpoint; the message says where it looked."""


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The ``global_step`` stored in a training checkpoint, or None when the file is not one.

    Memory-mapped, weights only: reading the step of a large checkpoint costs milliseconds.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception:  # noqa: BLE001 - a truncated, foreign or unsafe file is simply not a candidate
        return None
    step = checkpoint.get("global_step") if isinstance(checkpoint, dict) else None
    return step if isinstance(step, int) else None


def newest_checkpoint(folder: str | os.PathLike) -> tuple[Path, int] | None:
    """(path, global step) of the checkpoint in ``folder`` with the highest global step, or None.

    Every ``*.ckpt`` counts (last.ckpt, epoch_*.ckpt, an emergency nan_step_*.ckpt, a last-v1.ckpt
    left by an older version): the newest *state* wins, whatever its name or modification time.
    On a tie last.ckpt is preferred, then the most recently written file.
    """
    folder = Path(folder)
    best, best_key = None, None
    for path in folder.glob("*.ckpt") if folder.is_dir() else ():
        step = checkpoint_step(path) if path.is_file() else None
        if step is None:
            continue
        key = (step, path.name == "last.ckpt", path.stat().st_mtime)
        if best_key is None or key > best_key:
            best, best_key = path, key
    return (best, best_key[0]) if best is not None else None


def find_last_checkpoint(output_dir: str | os.PathLike, search_siblings: bool,
                         checkpoint_dir: str | os.PathLike | None = None) -> Path:
    """`ckpt_path=last`: the newest state (highest global step, see :func:`newest_checkpoint`) of
    this run's own checkpoint folder (`checkpoint_dir`, default <output_dir>/checkpoints) when it
    has one, i.e. a run continued in place with `hydra.run.dir=<old run dir>`; else, with
    `search_siblings`, that of the most recently written `*/checkpoints/last.ckpt` beside the run
    directory (Hydra gives a resumed run a new directory beside the old one).
    """
    output_dir = Path(output_dir)
    own_dir = Path(checkpoint_dir or output_dir / "checkpoints")
    own = newest_checkpoint(own_dir)
    if own is not None:
        return own[0]
    runs = []
    if search_siblings and output_dir.parent.is_dir():
        runs = [p for p in output_dir.parent.glob("*/checkpoints/last.ckpt") if p.is_file()]
    newest = None
    for last in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True):
        found = newest_checkpoint(last.parent)
        if found is not None:
            newest = found[0]
            break
    if newest is None:
        where = f"{own_dir}/*.ckpt or {output_dir.parent}/*/checkpoints/last.ckpt" if search_siblings else \
            f"{own_dir}/*.ckpt"
        raise NothingToResume(
            f"ckpt_path=last: no checkpoint to resume (looked in {where}); pass a path "
            "(ckpt_path=outputs/train/<run>/checkpoints/last.ckpt) or continue in place with "
            "hydra.run.dir=<old run dir> (hydra.sweep.dir=<old sweep dir> for a sweep)"
        )
    log.info("ckpt_path=last -> %s (newest of %d runs beside this one)", newest, len(runs))
    return newest


# ----------------------------------------------------------------------------- atomic writes
class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into `.<name>.tmp-<pid>` beside the target, fsync, then os.replace over it
    (:func:`cyclegan.files.atomic_write`).

    os.replace is atomic on POSIX and Windows within one filesystem: readers see the old file or
    the new one, never a half-written one. Remote paths (s3://, gs://, ...) use Lightning's own save.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        try:
            with atomic_write(path, fsync=True) as tmp, open(tmp, "wb") as f:
                torch.save(checkpoint, f)
        except Exception as exc:
            # torch.save reports a failed write on the file as a RuntimeError ("unexpected pos ...")
            # raised during the OSError: surface the full disk itself, naming the target
            full = disk_full_cause(exc)
            if full is None:
                raise
            raise OSError(full.errno, full.strerror, str(path)) from exc


def disk_full_cause(exc: BaseException | None) -> OSError | None:
    """The ENOSPC / EDQUOT error that ``exc`` is, or was raised from or during; None if none."""
    return find_cause(exc, OSError, where=lambda e: e.errno in (errno.ENOSPC, errno.EDQUOT))


TEMPORARY_PATTERN = temporary_glob("*.ckpt")  # the temporary files of cyclegan.files.atomic_write


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of saves that were killed (SIGKILL, power loss) in ``folder``.

    A file whose writer (the pid in its name) is still running on this machine is kept: another run
    may be saving into the same folder right now.
    """
    removed = []
    for tmp in Path(folder).glob(TEMPORARY_PATTERN) if Path(folder).is_dir() else ():
        pid = temporary_writer_pid(tmp)
        if pid is not None and pid != os.getpid() and _process_alive(pid):
            continue
        size = tmp.stat().st_size if tmp.is_file() else 0
        try:
            tmp.unlink()
        except OSError as exc:
            log.warning("could not remove the left-over temporary checkpoint %s (%s)", tmp, exc.strerror)
            continue
        removed.append(tmp)
        log.warning("removed %s (%.1f MB), left by a checkpoint save that was killed", tmp, size / 1024**2)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True
