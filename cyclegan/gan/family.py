"""What every model family (CycleGAN, CUT / FastCUT, ...) shares: the family interface and the plumbing.

A model family is one LightningModule subclassing :class:`GANFamily` plus ``conf/model/<family>.yaml``
with its ``_target_`` (docs/ARCHITECTURE.md, "Adding a model family"). It declares

- :meth:`~GANFamily.generators`: direction ("AB"/"BA") -> the generator translating that way;
- :meth:`~GANFamily.discriminators`: direction -> the discriminator judging that direction's output;
- ``visual_layout`` (optional): the training image grid's ``rows`` (label, ``last_visuals`` names) and
  ``columns`` (labels), cyclegan.common.visualize.cycle_grid's arguments; None is CycleGAN's grid.

and the base puts ``checkpoint["generators"] = {direction: {"prefix", "spec"}}`` (and the same for the
``discriminators``) into every checkpoint, so inference and evaluation rebuild any family's networks
without importing the family's class.

The base also holds what the families' training steps share, so each family's file reads as its
paper's step: the speed switches (channels_last, torch.compile; cyclegan/gan/speed.py), the optimizer
pair (one Adam for what the generator step trains, one for the discriminators) with the schedules of
cyclegan/gan/schedulers.py, the time-budget rate (``lr_policy=linear_time``), a rate changed on resume,
the discriminator loss (0.5 x (real + fake), WGAN-GP penalty, DiffAugment) and counting one global step
per iteration under manual optimization.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from cyclegan.common.errors import ArgumentsError
from cyclegan.gan.losses import gradient_penalty
from cyclegan.gan.schedulers import build_scheduler, plateau_metric, time_budget_fraction, time_decay_factor
from cyclegan.gan.speed import adam_kwargs, apply_speedups, channels_last_input
from cyclegan.models import network_spec
from cyclegan.models.spec import network_keys

log = logging.getLogger(__name__)

__all__ = ["GANFamily", "network_entries"]
# (The ranges of a family's hyper-parameters are annotations of its constructor's arguments: gan/hparams.py.)


def network_entries(module: nn.Module, networks: Mapping[str, nn.Module]) -> dict[str, dict[str, Any]]:
    """``{direction: {"prefix": "<state_dict prefix>", "spec": {"name", "options"}}}`` of ``networks``, direct
    submodules of ``module`` (the checkpoint's ``generators`` / ``discriminators`` entry): ``build_generator(
    spec["name"], **spec["options"])`` rebuilds a generator, its weights are the state_dict entries under ``prefix``."""
    names = {id(child): name for name, child in module.named_children()}
    entries = {}
    for direction, net in networks.items():
        if id(net) not in names:
            raise ValueError(f"the {direction} network is not a direct submodule of {type(module).__name__}")
        entries[direction] = {"prefix": f"{names[id(net)]}.", "spec": network_spec(net) or {"name": None, "options": {}}}
    return entries


class GANFamily(pl.LightningModule):
    """Base of the model families: the interface above plus the shared training plumbing.

    Subclasses call ``save_hyperparameters()`` with at least ``lr``, ``lr_D``, ``beta1``, ``beta2``,
    ``lr_policy`` (+ its keys), ``gan_mode``, ``d_loss_weight``, ``lambda_gp`` and the speed keys, and set
    ``self.gan_loss`` and ``self.augment`` (a DiffAugment or None).
    """

    # the training image grid (cyclegan/training/callbacks.py): None = CycleGAN's rows and columns
    visual_layout: dict[str, Any] | None = None
    visual_caption: str = ""

    @classmethod
    def reject_unknown_network_options(cls, options: Mapping[str, Any]) -> None:
        """A family's ``**network_options`` take any option of a registered network (models/registry.py)."""
        unknown = sorted(set(options) - set(network_keys()))
        if unknown:
            raise ArgumentsError(f"model: {cls.__name__} got {', '.join(unknown)}, which no registered network takes "
                                 f"(network options: {', '.join(network_keys())})")  # a TypeError and a UserError

    # ------------------------------------------------------------------ the family interface
    def generators(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def discriminators(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def networks(self) -> dict[str, nn.Module]:
        """Attribute name -> network for the speed switches: the generators and discriminators."""
        wanted = {id(net) for net in (*self.generators().values(), *self.discriminators().values())}
        return {name: child for name, child in self.named_children() if id(child) in wanted}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["model_family"] = f"{type(self).__module__}.{type(self).__qualname__}"  # resume checks it
        checkpoint["generators"] = network_entries(self, self.generators())
        checkpoint["discriminators"] = network_entries(self, self.discriminators())

    # ------------------------------------------------------------------ speed
    def configure_model(self) -> None:
        """channels_last and torch.compile (in place: state-dict keys unchanged); idempotent,
        as Lightning calls it once per fit/validate/test in the same process."""
        apply_speedups(self, channels_last=self.hparams.get("channels_last", False),
                       compile=self.hparams.get("compile", False), gan_mode=self.hparams.gan_mode,
                       names=tuple(self.networks()))

    def _input_pair(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        # channels_last weights want channels_last inputs (else cuDNN transposes the first layer's input).
        # (Done here rather than in on_after_batch_transfer, which Lightning warns about with a datamodule.)
        if self.hparams.get("channels_last", False):
            return channels_last_input(batch["A"]), channels_last_input(batch["B"])
        return batch["A"], batch["B"]

    # ------------------------------------------------------------------ discriminator loss
    def judge(self, D, x: torch.Tensor) -> torch.Tensor:
        """``D(x)``, through the DiffAugment policy when ``model.diffaugment`` is set."""
        return D(x) if self.augment is None else D(self.augment(x))

    def discriminator_terms(self, D, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """``(d_loss_weight * (loss on real + loss on fake) [+ WGAN-GP penalty], {"real", "fake"})``."""
        on_real = self.gan_loss(self.judge(D, real), True)
        on_fake = self.gan_loss(self.judge(D, fake.detach()), False)
        loss = self.hparams.d_loss_weight * (on_real + on_fake)
        if self.hparams.gan_mode == "wgangp":  # the penalty on un-augmented interpolates
            loss = loss + gradient_penalty(D, real, fake, self.hparams.lambda_gp)
        return loss, {"real": on_real, "fake": on_fake}

    def discriminator_loss(self, D, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return self.discriminator_terms(D, real, fake)[0]

    # ------------------------------------------------------------------ optimisers
    def adam_pair(self, g_params: Iterable[torch.Tensor], d_params: Iterable[torch.Tensor]):
        """``configure_optimizers``' answer: one Adam for the generator step, one for the discriminators,
        each with the ``model.lr_policy`` schedule."""
        hp = self.hparams
        betas = (hp.beta1, hp.beta2)
        g_params, d_params = list(g_params), list(d_params)
        fused = hp.get("fused_adam", None)  # None: fused when the parameters are on a GPU
        opt_g = torch.optim.Adam(g_params, lr=hp.lr, betas=betas, **adam_kwargs(g_params, fused))
        opt_d = torch.optim.Adam(d_params, lr=hp.lr_D or hp.lr, betas=betas, **adam_kwargs(d_params, fused))
        sched = dict(
            policy=hp.lr_policy, n_epochs=hp.n_epochs, n_epochs_decay=hp.n_epochs_decay,
            step_epochs=hp.lr_step_epochs, gamma=hp.lr_gamma,
        )
        return [opt_g, opt_d], [build_scheduler(opt_g, **sched), build_scheduler(opt_d, **sched)]

    def _step_without_counting(self, optimizer) -> None:
        """Step without advancing `global_step`.

        Under manual optimization Lightning counts every optimizer step, so one iteration with two
        optimizer steps (generators + discriminators) would count twice and `trainer.max_steps`,
        checkpoint and logging intervals would mean half as many iterations as users expect. This is
        Lightning's open issue "incorrect global_step with multiple optimizers and
        automatic_optimization=False" (Lightning-AI/pytorch-lightning#17958; the fix proposed in
        PR #19589 is unmerged). The count happens in ``LightningOptimizer._on_after_step``, a
        private hook (set per optimizer by the manual-optimization loop, after stopping the
        ``optimizer_step`` profiler action): for the uncounted step it is swapped for the profiler stop
        alone. tests/gan/test_module.py pins the result (one global step per iteration), so a
        Lightning release that changes the hook fails there, not silently in long runs.
        """
        counting_hook = getattr(optimizer, "_on_after_step", None)
        if counting_hook is None:  # not a LightningOptimizer (e.g. called outside a Trainer)
            optimizer.step()
            return
        optimizer._on_after_step = lambda: self.trainer.profiler.stop("optimizer_step")
        try:
            optimizer.step()
        finally:
            optimizer._on_after_step = counting_hook

    def _set_time_budget_lr(self, *optimizers) -> None:
        """``lr_policy=linear_time``: the rate for the spent fraction of ``trainer.max_time``."""
        factor = time_decay_factor(time_budget_fraction(self.trainer), self.hparams.get("lr_decay_start", 0.5))
        for optimizer, base in zip(optimizers, (self.hparams.lr, self.hparams.lr_D or self.hparams.lr)):
            for group in optimizer.param_groups:
                group["lr"] = base * factor

    def _log_step(self, logs: Mapping[str, torch.Tensor], opt_g, batch_size: int) -> None:
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, on_step=True, on_epoch=True,
                      batch_size=batch_size)
        # A CPU tensor: a Python float would become a new CUDA tensor, i.e. a host sync every step.
        self.log("train/lr", torch.tensor(float(opt_g.param_groups[0]["lr"])), on_step=True, on_epoch=False,
                 prog_bar=True, batch_size=batch_size)

    def on_train_epoch_end(self) -> None:
        for scheduler in self.lr_schedulers():
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                metric = plateau_metric(self.hparams.plateau_monitor, self.trainer.callback_metrics)
                # Under DDP each rank logged its own mean: average them so every rank takes the same decision.
                scheduler.step(self.trainer.strategy.reduce(metric.to(self.device), reduce_op="mean"))
            else:
                scheduler.step()

    # ------------------------------------------------------------------ resume with another rate
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # the rates this checkpoint was trained with: on_train_start compares them with this run's
        saved = checkpoint.get("hyper_parameters") or {}
        if "lr" in saved:
            self._checkpoint_lrs = (saved["lr"], saved.get("lr_D") or saved["lr"])

    def on_train_start(self) -> None:
        stored = getattr(self, "_checkpoint_lrs", None)
        if stored is not None:
            self._checkpoint_lrs = None
            self._apply_new_rates(stored)

    def _apply_new_rates(self, stored: tuple[float, float]) -> None:
        """A resume with another model.lr / model.lr_D: this run's rate wins over the one restored with the
        optimizer and scheduler states (e.g. a lower one after a divergence). Everything is scaled by
        new / stored, so the schedule keeps its position and shape."""
        wanted = (self.hparams.lr, self.hparams.lr_D or self.hparams.lr)
        keys = ("model.lr", "model.lr_D" if self.hparams.lr_D else "model.lr")
        for which, key, optimizer, scheduler, old, new in zip(("generators", "discriminators"), keys, self.optimizers(),
                                                               self.lr_schedulers(), stored, wanted):
            if not old or math.isclose(old, new, rel_tol=1e-9):
                continue
            scale = new / old
            for group in optimizer.param_groups:
                group["lr"] *= scale
                if "initial_lr" in group:
                    group["initial_lr"] *= scale
            for attr in ("base_lrs", "_last_lr", "min_lrs"):
                if isinstance(getattr(scheduler, attr, None), list):
                    setattr(scheduler, attr, [lr * scale for lr in getattr(scheduler, attr)])
            log.info("%s=%g replaces the rate stored in the checkpoint (%g) for the %s: they train at %g from here",
                     key, new, old, which, optimizer.param_groups[0]["lr"])
