"""A NaN/Inf update never lands: :class:`NaNGuard` (a Lightning callback).

Every optimizer step's gradient norm is checked *before* the step (``on_before_optimizer_step``; a
NaN or Inf loss always shows up there as non-finite gradients), and a bad update is dropped so the
weights and Adam's moments stay as they were. How it is dropped decides the cost:

- **Fused Adam** (``model.fused_adam``, the default on a GPU): the guard hands the optimizer a
  device flag (``found_inf``, as PyTorch's GradScaler does) and the fused kernel skips the whole
  update on the device. No host sync: the flags are read once every ``check_every_n_steps`` batches
  (by default every batch on a CPU, where reading costs nothing, and at Lightning's logging
  interval on a GPU, where Lightning waits for the device anyway), and the guard acts then.
- **Any other optimizer**: the gradients are set to ``None`` (Adam then skips the parameters),
  which needs the host to know the norm: one host sync per optimizer step.

When a bad update was seen:

- ``policy="stop"``: saves ``checkpoints/nan_step_<N>.ckpt`` and raises :class:`TrainingDiverged`
  naming the step and the losses that went bad; no non-finite update is in that state, and
  ``train.py ckpt_path=<that file>`` resumes from it. The message also names the newest periodic
  checkpoint, an earlier state to go back to if the run diverges again from there.
- ``policy="skip"``: logs a warning and carries on; after ``max_consecutive_skips`` bad steps in a
  row it stops as above.

``keep_last_good=True`` (opt-in: a copy of three times the parameters per step, and a host sync)
also rolls the emergency checkpoint back to before the last *applied* update, which came from finite
gradients but may itself have blown the weights up (a too-high rate). Under fp16 mixed precision the
GradScaler already skips steps with Inf gradients (that is how it finds its scale), so the guard
checks the logged losses at the end of the batch instead.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import pytorch_lightning as pl
import torch

from cyclegan.config.checks import NAN_POLICIES
from cyclegan.common.errors import UserError
from cyclegan.training.saving import checkpoint_dir, save_checkpoint

log = logging.getLogger(__name__)

__all__ = ["TrainingDiverged", "NaNGuard"]


class TrainingDiverged(UserError):
    """A loss or gradient became NaN/Inf; an emergency checkpoint of the last good state was saved."""

    exit_code = 3

    def __init__(self, message: str, checkpoint: str | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint


def _nonfinite_losses(trainer: pl.Trainer) -> dict[str, float]:
    """This step's logged ``train/*`` values that are NaN or Inf (one host sync for all of them)."""
    items = [(k, v) for k, v in trainer.callback_metrics.items()
             if k.startswith("train/") and k.endswith("_step") and isinstance(v, torch.Tensor) and v.numel() == 1]
    if not items:
        return {}
    values = torch.stack([v.detach().float().reshape(()) for _, v in items]).cpu()
    return {k[: -len("_step")]: float(x) for (k, _), x in zip(items, values) if not math.isfinite(float(x))}


def _skips_on_device(optimizer) -> bool:
    """Whether ``optimizer.step`` honours a ``found_inf`` flag (torch's fused Adam/AdamW/SGD kernels)."""
    return bool(getattr(optimizer, "defaults", {}).get("fused")) and \
        all(group.get("fused") for group in optimizer.param_groups)


class NaNGuard(pl.Callback):
    """Drop non-finite updates; stop with an emergency checkpoint (or skip) -- see the module doc."""

    def __init__(self, policy: str = "stop", max_consecutive_skips: int = 20, keep_last_good: bool = False,
                 check_every_n_steps: int | None = None):
        if policy not in NAN_POLICIES:
            raise ValueError(f"callbacks.nan_guard.policy={policy!r} is not one of: {', '.join(NAN_POLICIES)}")
        if check_every_n_steps is not None and int(check_every_n_steps) < 1:
            raise ValueError(f"callbacks.nan_guard.check_every_n_steps={check_every_n_steps} must be >= 1 (or null)")
        self.policy = policy
        self.max_consecutive_skips = int(max_consecutive_skips)
        self.keep_last_good = bool(keep_last_good)
        self.check_every_n_steps = check_every_n_steps
        self._last_good: dict[int, _LastGoodState] = {}  # id(optimizer) -> its state before its last step
        self.consecutive = 0
        self.total_skipped = 0
        self._bad: list[str] = []  # optimizers whose update was dropped during this batch (host path)
        # device path: (batch's step, optimizer name, device flag) not read yet, oldest first
        self._pending: list[tuple[int, str, torch.Tensor]] = []
        self._names: dict[int, str] = {}
        self._interval = 1
        self._step = 0

    # -- which networks an optimizer updates, for the message
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for i, opt in enumerate(trainer.optimizers):
            ids = {id(p) for group in opt.param_groups for p in group["params"]}
            owners = [name for name, child in pl_module.named_children()
                      if any(id(p) in ids for p in child.parameters())]
            self._names[id(opt)] = f"optimizer {i} ({', '.join(owners)})" if owners else f"optimizer {i}"
        if self.check_every_n_steps is None:  # a CPU reads a flag for free; a GPU when Lightning logs
            on_cpu = all(p.device.type == "cpu" for p in pl_module.parameters())
            self._interval = 1 if on_cpu else max(1, int(getattr(trainer, "log_every_n_steps", 1) or 1))
        else:
            self._interval = int(self.check_every_n_steps)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        self._step = trainer.global_step  # this batch's step (its first optimizer step advances the counter)

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
        name = self._names.get(id(optimizer), type(optimizer).__name__)
        if not scaler and not self.keep_last_good and _skips_on_device(optimizer):
            bad = ~torch.isfinite(norm)
            optimizer.found_inf = bad.to(torch.float32)  # the fused kernel skips the update when it is 1
            self._pending.append((self._step, name, bad))
            return
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
        self._bad.append(name)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self._pending:  # the device path: read the flags every few batches, not on every one
            if len({step for step, _, _ in self._pending}) >= self._interval or trainer.is_last_batch:
                self._read_device_flags(trainer, pl_module)
            return
        bad_losses = _nonfinite_losses(trainer) if (self._bad or self._scaler_active(trainer)) else {}
        bad = bool(self._bad or bad_losses)
        bad = trainer.strategy.reduce_boolean_decision(bad, all=False)  # every rank decides alike
        if not bad:
            self.consecutive = 0
            return
        self._on_bad_batch(trainer, pl_module, trainer.global_step - 1, sorted(set(self._bad)), bad_losses)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending:  # before the epoch's checkpoint: what was seen is acted on first
            self._read_device_flags(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending:  # a run stopped by max_steps or max_time between two reads
            self._read_device_flags(trainer, pl_module)

    def _read_device_flags(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One host read for the flags of several batches, then each batch as the host path would have."""
        pending, self._pending = self._pending, []
        flags = torch.stack([flag.reshape(()) for _, _, flag in pending]).cpu().tolist()
        batches: dict[int, list[str]] = {}
        for (step, name, _), flag in zip(pending, flags):
            names = batches.setdefault(step, [])
            if flag:
                names.append(name)
        last = max(batches)
        for step, names in batches.items():
            bad = trainer.strategy.reduce_boolean_decision(bool(names), all=False)
            if not bad:
                self.consecutive = 0
                continue
            losses = _nonfinite_losses(trainer) if step == last else {}
            self._on_bad_batch(trainer, pl_module, step, sorted(set(names)), losses)

    def _on_bad_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int, where: list[str],
                      bad_losses: dict[str, float]) -> None:
        """A batch at ``step`` had a bad update (dropped) in ``where`` or non-finite ``bad_losses``: warn or stop."""
        what = f"step {step}: non-finite gradients in {', '.join(where) or 'the losses'}"
        if not bad_losses and where and step == trainer.global_step - 1:  # read only now (no sync otherwise)
            bad_losses = _nonfinite_losses(trainer)
        if bad_losses:
            what += f" (losses: {', '.join(f'{k}={v}' for k, v in sorted(bad_losses.items()))})"
        self._bad = []
        _drop_nonfinite_pool_images(pl_module)
        self.consecutive += 1
        self.total_skipped += 1
        if self.policy == "skip" and self.consecutive <= self.max_consecutive_skips:
            log.warning("%s; update skipped (%d in a row, %d in total; callbacks.nan_guard.policy=skip)",
                        what, self.consecutive, self.total_skipped)
            return
        self._pending = []
        directory = checkpoint_dir(trainer)
        earlier = _newest_checkpoint(directory)  # before this save: the newest periodic state
        rolled_back = self._roll_back(trainer)
        path = save_checkpoint(trainer, directory / f"nan_step_{step:07d}.ckpt")
        reason = (f"{self.consecutive} bad steps in a row" if self.policy == "skip" else
                  "callbacks.nan_guard.policy=stop")
        fallback = f"; if it diverges again from there, go back to {earlier}" if earlier and not self.keep_last_good else ""
        raise TrainingDiverged(
            f"training diverged at {what}; the bad update was not applied ({reason}). Saved the last good state "
            f"({rolled_back}) to {path}: resume with ckpt_path={path}, with a lower rate if it diverges again "
            f"(model.lr=...), or set callbacks.nan_guard.policy=skip to step over bad batches{fallback}",
            checkpoint=path,
        )

    def _roll_back(self, trainer: pl.Trainer) -> str:
        """With ``keep_last_good``: put every optimizer's parameters and state back to before its last applied step.

        That step was taken from finite gradients, but it is what led to this non-finite one (an
        update can overflow the weights or Adam's moments, or make the next forward pass overflow):
        the state before it is the newest one known to train. Returns what the checkpoint holds.
        """
        if not self.keep_last_good:
            return "no non-finite update applied"
        restored = [self._last_good[id(opt)].restore(opt) for opt in trainer.optimizers if id(opt) in self._last_good]
        if not restored or not any(restored):
            return "the weights before the bad update; no earlier step was taken"
        return "weights and optimizer state from before the last applied update"

    def state_dict(self) -> dict:
        return {"total_skipped": self.total_skipped}

    def load_state_dict(self, state_dict: dict) -> None:
        self.total_skipped = int(state_dict.get("total_skipped", 0))


def _newest_checkpoint(directory) -> str | None:
    """The newest periodic checkpoint in ``directory`` (not an emergency ``nan_step_*``); None if there is none."""
    found = [p for p in directory.glob("*.ckpt") if not p.name.startswith("nan_step_")] if directory.is_dir() else []
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None


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
