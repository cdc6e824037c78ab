"""Ctrl-C and SIGTERM save first: :class:`GracefulShutdown` (a Lightning callback).

It turns SIGINT (Ctrl-C) and SIGTERM (what cluster schedulers send before killing a job) into:
finish the current batch, save ``checkpoints/last.ckpt`` (atomically), exit with
:class:`TrainingInterrupted` (code 130 / 143). A second Ctrl-C (or SIGTERM) while that stop is under
way is ignored with a warning: quitting then could leave no checkpoint (``kill -9`` still quits at once).
Lightning also watches SIGTERM and stops its loop with ``SIGTERMException`` at a batch or epoch
end; when the signal lands after this callback's check of that batch, Lightning's stop comes first:
the checkpoint is then saved in ``on_exception`` (the loop is at a batch end, so it is as resumable)
and :func:`interruption_of` turns the exception into the same :class:`TrainingInterrupted`.
DataLoader workers forked during training inherit the handler, so a signal sent to the whole
process group does not kill them mid-batch.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

from cyclegan.common.errors import UserError
from cyclegan.training.saving import checkpoint_dir, save_checkpoint

log = logging.getLogger(__name__)

__all__ = ["TrainingInterrupted", "GracefulShutdown", "interruption_of"]


class TrainingInterrupted(UserError):
    """SIGINT/SIGTERM during training; a resumable checkpoint was saved first."""

    def __init__(self, message: str, signum: int, checkpoint: str | None = None):
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint
        self.exit_code = 128 + int(signum)


class GracefulShutdown(pl.Callback):
    """SIGINT/SIGTERM -> save ``checkpoints/last.ckpt`` at the next batch end, then stop (module doc)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, filename: str = "last.ckpt"):
        self.filename = filename
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._active = False
        self.interrupted: TrainingInterrupted | None = None  # set when Lightning's SIGTERM stop won the race

    # -- handler
    def _handle(self, signum: int, frame) -> None:
        if not self._active:  # left installed after fit (Lightning restores it on errors): act as before
            self._delegate(signum, frame)
            return
        if self.received is not None:
            # Quitting now could cut the checkpoint write short: the stop in progress finishes first.
            log.warning("received %s again: still stopping, the checkpoint is written first (to quit without "
                        "saving: kill -9 %d)", signal.Signals(signum).name, os.getpid())
            return
        self.received = signum
        name = signal.Signals(signum).name
        log.warning("received %s: saving a checkpoint at the end of this batch, then stopping", name)

    def _delegate(self, signum: int, frame) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for sig in self.SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        self._active = True

    def _restore(self) -> None:
        self._active = False
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler in self._previous.items():
            if signal.getsignal(sig) == self._handle and handler is not None:
                signal.signal(sig, handler)

    # -- Lightning hooks
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Before Lightning registers its own SIGTERM handler (which then calls this one too), and
        # before any DataLoader worker is forked (workers inherit it: they do not die mid-batch).
        self.received = None
        self.interrupted = None
        self._install()

    def _save_and_describe(self, trainer: pl.Trainer, where: str) -> TrainingInterrupted:
        signum = self.received or signal.SIGTERM
        path = save_checkpoint(trainer, checkpoint_dir(trainer) / self.filename)
        name = signal.Signals(signum).name
        return TrainingInterrupted(
            f"stopped by {name} at step {trainer.global_step} ({where}); saved a resumable checkpoint to {path}: "
            f"continue with ckpt_path={path}",
            signum=signum,
            checkpoint=path,
        )

    def _stop_if_signalled(self, trainer: pl.Trainer, where: str, before_save=None) -> None:
        received = self.received is not None or trainer.received_sigterm
        if not trainer.strategy.reduce_boolean_decision(received, all=False):
            return
        if before_save is not None:
            before_save()
        raise self._save_and_describe(trainer, where)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        # Lightning sends this batch's values to the loggers after this hook, which the stop skips:
        # send them first, so the metrics history of the resumed run misses no step
        self._stop_if_signalled(trainer, "end of a training batch",
                                before_save=getattr(trainer._logger_connector, "update_train_step_metrics", None))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._stop_if_signalled(trainer, "during validation")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop_if_signalled(trainer, "end of an epoch")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore()
        if isinstance(exception, SIGTERMException):
            # Lightning's own SIGTERM stop, raised at a batch/epoch end after this callback's check
            # (every rank raises it together): the state is consistent, save it now.
            self.interrupted = self._save_and_describe(trainer, "Lightning's SIGTERM stop")

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._restore()


def interruption_of(trainer: pl.Trainer) -> TrainingInterrupted:
    """The :class:`TrainingInterrupted` for Lightning's SIGTERM stop: the one :class:`GracefulShutdown`
    prepared (with its checkpoint), else one saying that nothing was saved."""
    for callback in trainer.callbacks:
        if isinstance(callback, GracefulShutdown) and callback.interrupted is not None:
            return callback.interrupted
    return TrainingInterrupted(
        f"stopped by SIGTERM at step {trainer.global_step}; no checkpoint was saved on the way out (enable "
        "callbacks.graceful_shutdown for one); resume from the last periodic checkpoint",
        signum=signal.SIGTERM,
    )
