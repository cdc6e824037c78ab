"""Runtime guards (Lightning callbacks): a NaN/Inf update never lands, an interrupt never loses work.

:class:`NaNGuard` checks the gradients of every optimizer step *before* the step
(``on_before_optimizer_step``; a NaN or Inf loss always shows up there as non-finite
gradients). A bad update is dropped (gradients set to ``None``: Adam then leaves the weights
and its moments untouched). Then, at the end of the batch:

- ``policy="stop"``: saves ``checkpoints/nan_step_<N>.ckpt`` (the last good state: no bad update
  was applied) and raises :class:`TrainingDiverged` naming the step and the losses that went bad;
  ``train.py ckpt_path=<that file>`` resumes from it.
- ``policy="skip"``: logs a warning and carries on; after ``max_consecutive_skips`` bad steps in a
  row it stops as above.

Under fp16 mixed precision the GradScaler already skips steps with Inf gradients (that is how it
finds its scale), so the guard checks the logged losses at the end of the batch instead.

:class:`GracefulShutdown` turns SIGINT (Ctrl-C) and SIGTERM (what cluster schedulers send before
killing a job) into: finish the current batch, save ``checkpoints/last.ckpt`` (atomically), exit
with :class:`TrainingInterrupted` (code 130 / 143). A second Ctrl-C (or SIGTERM) while that stop is under
way is ignored with a warning: quitting then could leave no checkpoint (``kill -9`` still quits at once).
Lightning also watches SIGTERM and stops its loop with ``SIGTERMException`` at a batch or epoch
end; when the signal lands after this callback's check of that batch, Lightning's stop comes first:
the checkpoint is then saved in ``on_exception`` (the loop is at a batch end, so it is as resumable)
and :func:`interruption_of` turns the exception into the same :class:`TrainingInterrupted`.
DataLoader workers forked during training inherit the handler, so a signal sent to the whole
process group does not kill them mid-batch.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from cyclegan.config.checks import NAN_POLICIES
from cyclegan.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["TrainingDiverged", "TrainingInterrupted", "NaNGuard", "GracefulShutdown", "checkpoint_dir",
           "interruption_of"]


class TrainingDiverged(UserError):
    """A loss or gradient became NaN/Inf; an emergency checkpoint of the last good state was saved."""

    exit_code = 3

    def __init__(self, message: str, checkpoint: str | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint


class TrainingInterrupted(UserError):
    """SIGINT/SIGTERM during training; a resumable checkpoint was saved first."""

    def __init__(self, message: str, signum: int, checkpoint: str | None = None):
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint
        self.exit_code = 128 + int(signum)


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


def _nonfinite_losses(trainer: pl.Trainer) -> dict[str, float]:
    """This step's logged ``train/*`` values that are NaN or Inf (one host sync for all of them)."""
    items = [(k, v) for k, v in trainer.callback_metrics.items()
             if k.startswith("train/") and k.endswith("_step") and isinstance(v, torch.Tensor) and v.numel() == 1]
    if not items:
        return {}
    values = torch.stack([v.detach().float().reshape(()) for _, v in items]).cpu()
    return {k[: -len("_step")]: float(x) for (k, _), x in zip(items, values) if not math.isfinite(float(x))}


class NaNGuard(pl.Callback):
    """Drop non-finite updates; stop with an emergency checkpoint (or skip) -- see the module doc."""

    def __init__(self, policy: str = "stop", max_consecutive_skips: int = 20, keep_last_good: bool = True):
        if policy not in NAN_POLICIES:
            raise ValueError(f"callbacks.nan_guard.policy={policy!r} is not one of: {', '.join(NAN_POLICIES)}")
        self.policy = policy
        self.max_consecutive_skips = int(max_consecutive_skips)
        self.keep_last_good = bool(keep_last_good)
        self._last_good: dict[int, _LastGoodState] = {}  # id(optimizer) -> its state before its last step
        self.consecutive = 0
        self.total_skipped = 0
        self._bad: list[str] = []  # optimizers whose update was dropped during this batch
        self._names: dict[int, str] = {}

    # -- which networks an optimizer updates, for the message
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for i, opt in enumerate(trainer.optimizers):
            ids = {id(p) for group in opt.param_groups for p in group["params"]}
            owners = [name for name, child in pl_module.named_children()
                      if any(id(p) in ids for p in child.parameters())]
            self._names[id(opt)] = f"optimizer {i} ({', '.join(owners)})" if owners else f"optimizer {i}"

    @staticmethod
    def _scaler_active(trainer: pl.Trainer) -> bool:
        return getattr(trainer.precision_plugin, "scaler", None) is not None

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        scaler = self._scaler_active(trainer)
        if scaler and not self.keep_last_good:
            return  # the GradScaler skips Inf/NaN steps itself; the losses are checked at batch end
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        norm = torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False)
        if bool(torch.isfinite(norm)):
            if self.keep_last_good:  # this step will be applied: remember the state it starts from
                self._last_good.setdefault(id(optimizer), _LastGoodState()).capture(optimizer)
            return
        if scaler:
            return  # the GradScaler skips this step itself
        # Drop this update: with no gradients Adam leaves the weights and its moments as they were.
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None
        self._bad.append(self._names.get(id(optimizer), type(optimizer).__name__))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        bad_losses = _nonfinite_losses(trainer) if (self._bad or self._scaler_active(trainer)) else {}
        bad = bool(self._bad or bad_losses)
        bad = trainer.strategy.reduce_boolean_decision(bad, all=False)  # every rank decides alike
        if not bad:
            self.consecutive = 0
            return
        step = trainer.global_step - 1  # this iteration (its first optimizer step advanced the counter)
        where = ", ".join(sorted(set(self._bad))) or "the losses"
        losses = ", ".join(f"{k}={v}" for k, v in sorted(bad_losses.items())) if bad_losses else ""
        if not losses and self._bad:  # losses are only read when a bad update was seen (no sync otherwise)
            losses = ", ".join(f"{k}={v}" for k, v in sorted(_nonfinite_losses(trainer).items()))
        what = f"step {step}: non-finite gradients in {where}" + (f" (losses: {losses})" if losses else "")
        self._bad = []
        _drop_nonfinite_pool_images(pl_module)
        self.consecutive += 1
        self.total_skipped += 1
        if self.policy == "skip" and self.consecutive <= self.max_consecutive_skips:
            log.warning("%s; update skipped (%d in a row, %d in total; callbacks.nan_guard.policy=skip)",
                        what, self.consecutive, self.total_skipped)
            return
        rolled_back = self._roll_back(trainer)
        path = save_checkpoint(trainer, checkpoint_dir(trainer) / f"nan_step_{step:07d}.ckpt")
        reason = (f"{self.consecutive} bad steps in a row" if self.policy == "skip" else
                  "callbacks.nan_guard.policy=stop")
        raise TrainingDiverged(
            f"training diverged at {what}; the bad update was not applied ({reason}). Saved the last good state "
            f"({rolled_back}) to {path}: resume with ckpt_path={path}, with a lower rate if it diverges again "
            f"(model.lr=...), or set callbacks.nan_guard.policy=skip to step over bad batches",
            checkpoint=path,
        )

    def _roll_back(self, trainer: pl.Trainer) -> str:
        """Put every optimizer's parameters and state back to before its last applied step.

        That step was taken from finite gradients, but it is what led to this non-finite one (an
        update can overflow the weights or Adam's moments, or make the next forward pass overflow):
        the state before it is the newest one known to train. Returns what the checkpoint holds.
        """
        if not self.keep_last_good:
            return "the weights before the bad update"
        restored = [self._last_good[id(opt)].restore(opt) for opt in trainer.optimizers if id(opt) in self._last_good]
        if not restored or not any(restored):
            return "the weights before the bad update; no earlier step was taken"
        return "weights and optimizer state from before the last applied update"

    def state_dict(self) -> dict:
        return {"total_skipped": self.total_skipped}

    def load_state_dict(self, state_dict: dict) -> None:
        self.total_skipped = int(state_dict.get("total_skipped", 0))


class _LastGoodState:
    """One optimizer's parameters and state (Adam's moments and step) before its last applied step.

    Copied into buffers allocated once, with one fused copy per device and dtype: the cost is a
    device-to-device copy of three times the parameters per optimizer step, and as much memory.
    """

    def __init__(self) -> None:
        self.params: list[torch.Tensor] = []
        self.state: dict[int, dict[str, Any]] = {}  # parameter index -> copy of optimizer.state[p]

    @staticmethod
    def _parameters(optimizer) -> list[torch.Tensor]:
        return [p for group in optimizer.param_groups for p in group["params"]]

    @torch.no_grad()
    def capture(self, optimizer) -> None:
        params = self._parameters(optimizer)
        if [b.shape for b in self.params] != [p.shape for p in params]:
            self.params = [torch.empty_like(p) for p in params]
        dst, src = list(self.params), [p.detach() for p in params]
        for i, p in enumerate(params):
            state = optimizer.state.get(p)
            if not state:
                self.state.pop(i, None)
                continue
            saved = self.state.setdefault(i, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    buffer = saved.get(key)
                    if not (isinstance(buffer, torch.Tensor) and buffer.shape == value.shape
                            and buffer.dtype == value.dtype and buffer.device == value.device):
                        buffer = saved[key] = torch.empty_like(value)
                    dst.append(buffer)
                    src.append(value)
                else:
                    saved[key] = copy.deepcopy(value)
        _copy_tensors(dst, src)

    @torch.no_grad()
    def restore(self, optimizer) -> bool:
        """Back to the captured state; False when nothing was captured."""
        params = self._parameters(optimizer)
        if len(self.params) != len(params):
            return False
        dst, src = list(params), list(self.params)
        for i, p in enumerate(params):
            saved = self.state.get(i)
            if saved is None:  # no step had been taken for it yet: an optimizer without state
                optimizer.state.pop(p, None)
                continue
            state = optimizer.state[p]
            for key, value in saved.items():
                if isinstance(value, torch.Tensor) and isinstance(state.get(key), torch.Tensor):
                    dst.append(state[key])
                    src.append(value)
                else:
                    state[key] = value.clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)
        _copy_tensors(dst, src)
        return True


def _copy_tensors(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    """dst[i].copy_(src[i]) for all i: one fused (foreach) copy per device and dtype."""
    groups: dict[tuple, tuple[list, list]] = {}
    for d, s in zip(dst, src):
        group = groups.setdefault((d.device, d.dtype, s.device, s.dtype), ([], []))
        group[0].append(d)
        group[1].append(s)
    for d, s in groups.values():
        torch._foreach_copy_(d, s)


def _drop_nonfinite_pool_images(pl_module: pl.LightningModule) -> None:
    """A NaN fake pushed into an image pool would poison every later discriminator step (and the
    emergency checkpoint): drop such entries."""
    for name in ("pool_A", "pool_B"):
        pool = getattr(pl_module, name, None)
        images = getattr(pool, "images", None)
        if isinstance(images, list) and images:
            pool.images = [im for im in images if bool(torch.isfinite(im).all())]


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
