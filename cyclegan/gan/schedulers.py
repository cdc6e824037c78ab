"""Learning-rate policies, stepped once per epoch by the LightningModule.

``linear`` is the reference CycleGAN schedule: the rate stays at its initial value
for ``n_epochs`` epochs, then falls linearly towards zero over ``n_epochs_decay``
epochs. After ``e`` completed epochs the factor is
``1 - max(0, e + 1 - n_epochs) / (n_epochs_decay + 1)`` (the reference's
``lambda_rule`` with ``epoch_count = 1``).

``linear_time`` is the same shape over a wall-clock budget (``trainer.max_time``) instead of an epoch
count, for "the best model in N GPU-minutes" runs whose epoch count is not known in advance: the rate
stays constant for the first ``lr_decay_start`` fraction of the budget, then falls linearly to zero at
its end. The LightningModule sets it before every training step from Lightning's ``Timer`` (whose
state is in the checkpoint, so a resumed run continues where the budget left off); the per-epoch
scheduler of this policy is a no-op.
"""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer, lr_scheduler

from cyclegan.common.errors import UserError


class PlateauMonitorError(UserError, ValueError):
    """``model.plateau_monitor`` names a metric the run does not log (``lr_policy=plateau``)."""


def plateau_metric(monitor: str, logged: dict) -> Any:
    """The value of ``monitor`` among the metrics logged this epoch; one line listing them when it is not there."""
    if monitor in logged:
        return logged[monitor]
    epoch_level = sorted(k for k in logged if not k.endswith("_step"))
    raise PlateauMonitorError(
        f"model.plateau_monitor={monitor!r} was not logged, so lr_policy=plateau has nothing to watch; "
        f"the metrics logged at an epoch's end are: {', '.join(epoch_level) or 'none'} "
        "(e.g. model.plateau_monitor=train/G_loss_epoch)"
    )


LR_POLICIES = ("linear", "step", "cosine", "plateau", "constant", "linear_time")


def linear_decay_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """LR multiplier after `epoch` completed epochs under the reference's linear policy."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def time_decay_factor(fraction: float, decay_start: float = 0.5) -> float:
    """LR multiplier once ``fraction`` of the time budget is spent under ``linear_time``."""
    if fraction <= decay_start:
        return 1.0
    return max(0.0, 1.0 - (fraction - decay_start) / (1.0 - decay_start))


def time_budget_fraction(trainer: Any) -> float:
    """The spent fraction of ``trainer.max_time`` (Lightning's ``Timer``), equal on every rank."""
    from pytorch_lightning.callbacks import Timer

    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    remaining = timer.time_remaining("train") if timer is not None else None
    if remaining is None:
        raise ValueError("model.lr_policy=linear_time decays the rate over trainer.max_time: set it, "
                         "e.g. trainer.max_time=00:00:09:00 (DD:HH:MM:SS)")
    elapsed = timer.time_elapsed("train")
    total = elapsed + remaining
    fraction = min(1.0, elapsed / total) if total > 0 else 1.0
    if trainer.world_size > 1:  # ranks step with one rate (their clocks differ slightly): rank 0's decides
        fraction = trainer.strategy.broadcast(fraction, src=0)
    return fraction


def build_scheduler(
    optimizer: Optimizer,
    policy: str = "linear",
    *,
    n_epochs: int = 100,
    n_epochs_decay: int = 100,
    step_epochs: int = 50,
    gamma: float = 0.1,
    plateau_patience: int = 5,
    plateau_factor: float = 0.2,
):
    if policy == "linear":
        return lr_scheduler.LambdaLR(optimizer, lambda e: linear_decay_factor(e, n_epochs, n_epochs_decay))
    if policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=step_epochs, gamma=gamma)
    if policy == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, n_epochs + n_epochs_decay), eta_min=0.0)
    if policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=plateau_factor, threshold=0.01, patience=plateau_patience
        )
    if policy in ("constant", "linear_time"):  # linear_time: the module sets the rate per step
        return lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)
    raise ValueError(f"unknown model.lr_policy '{policy}'; choose one of: {', '.join(LR_POLICIES)}")
