"""Checkpoints that survive a crash while they are written, and the leftovers of saves that were killed.

:class:`AtomicCheckpointIO` writes every checkpoint to a temporary file in the same folder and
renames it over the target, so a crash while saving leaves the previous ``last.ckpt`` intact.

While training runs with the :class:`PublishCheckpoints` callback (as train() runs it), the rename
waits until the metrics the checkpoint covers are logged. Lightning saves
in ``on_train_batch_end`` and at validation's end, *before* it logs that batch's (or that epoch's)
row: a run killed right after a plain save had a checkpoint at step k and a ``metrics.csv`` without
the row of step k-1, which a resume from that checkpoint never logs again. Until its rename the
complete, fsynced file waits under its temporary name; a kill then leaves the previous checkpoint,
whose rows are all on disk (and the temporary file, removed at the next start).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from cyclegan.common.errors import find_cause
from cyclegan.common.files import atomic_write, temporary_glob, temporary_name, temporary_writer_pid

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into `.<name>.tmp-<pid>` beside the target, fsync, then os.replace over it
    (:func:`cyclegan.common.files.atomic_write`).

    os.replace is atomic on POSIX and Windows within one filesystem: readers see the old file or
    the new one, never a half-written one. Remote paths (s3://, gs://, ...) use Lightning's own save.
    With ``publish_after_logging`` the rename waits for :meth:`publish` (see the module doc).
    """

    def __init__(self, publish_after_logging: bool = False) -> None:
        super().__init__()
        self.publish_after_logging = publish_after_logging
        self._waiting: dict[Path, Path] = {}  # target -> its complete temporary file

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        try:
            if self.publish_after_logging:
                self._write_unpublished(checkpoint, Path(path))
                return
            with atomic_write(path, fsync=True) as tmp, open(tmp, "wb") as f:
                torch.save(checkpoint, f)
        except Exception as exc:
            # torch.save reports a failed write on the file as a RuntimeError ("unexpected pos ...")
            # raised during the OSError: surface the full disk itself, naming the target
            full = disk_full_cause(exc)
            if full is None:
                raise
            raise OSError(full.errno, full.strerror, str(path)) from exc

    def _write_unpublished(self, checkpoint: dict[str, Any], path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_name(path)
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            self._waiting.pop(path, None)
            raise
        self._waiting[path] = tmp

    def publish(self) -> list[Path]:
        """Rename the checkpoints written since the last call over their targets (in the order saved)."""
        published = []
        while self._waiting:
            path, tmp = next(iter(self._waiting.items()))
            del self._waiting[path]
            try:
                os.replace(tmp, path)
            except OSError as exc:
                log.warning("could not put the checkpoint %s in place (%s); it is in %s", path, exc.strerror, tmp)
                continue
            published.append(path)
        return published

    def remove_checkpoint(self, path) -> None:
        waiting = self._waiting.pop(Path(path), None)
        if waiting is not None:  # replaced before it was published (a top-k file superseded at once)
            waiting.unlink(missing_ok=True)
        if Path(path).exists() or "://" in str(path):
            super().remove_checkpoint(path)


def _checkpoint_io(trainer: pl.Trainer) -> AtomicCheckpointIO | None:
    io = getattr(trainer.strategy, "checkpoint_io", None)
    return io if isinstance(io, AtomicCheckpointIO) else None


class PublishCheckpoints(pl.Callback):
    """While training runs, an :class:`AtomicCheckpointIO` puts each checkpoint in place only once the
    metrics it covers are logged: at the next batch or epoch, when training ends, and when it stops
    on an exception. (Other saves, e.g. ddp_spawn's hand-over file after training, are immediate.)"""

    @staticmethod
    def publish(trainer: pl.Trainer, still_training: bool = True) -> None:
        io = _checkpoint_io(trainer)
        if io is None:
            return
        io.publish_after_logging = still_training
        if io._waiting:
            for logger in trainer.loggers:  # Lightning saves after each row; this makes sure
                logger.save()
            io.publish()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.publish(trainer)

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.publish(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.publish(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.publish(trainer, still_training=False)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.publish(trainer, still_training=False)


def disk_full_cause(exc: BaseException | None) -> OSError | None:
    """The ENOSPC / EDQUOT error that ``exc`` is, or was raised from or during; None if none."""
    return find_cause(exc, OSError, where=lambda e: e.errno in (errno.ENOSPC, errno.EDQUOT))


TEMPORARY_PATTERN = temporary_glob("*.ckpt")  # the temporary files of cyclegan.common.files.atomic_write


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
