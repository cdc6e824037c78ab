"""Learning-rate policies, stepped once per epoch by the LightningModule.

``linear`` is the reference CycleGAN schedule: the rate stays at its initial value
for ``n_epochs`` epochs, then falls linearly towards zero over ``n_epochs_decay``
epochs. After ``e`` completed epochs the factor is
``1 - max(0, e + 1 - n_epochs) / (n_epochs_decay + 1)`` (the reference's
``lambda_rule`` with ``epoch_count = 1``).
"""

from __future__ import annotations

from torch.optim import Optimizer, lr_scheduler

LR_POLICIES = ("linear", "step", "cosine", "plateau", "constant")


def linear_decay_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """LR multiplier after `epoch` completed epochs under the reference's linear policy."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


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
    if policy == "constant":
        return lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)
    raise ValueError(f"unknown model.lr_policy '{policy}'; choose one of: {', '.join(LR_POLICIES)}")
