"""The CycleGAN LightningModule: two generators, two discriminators, manual optimization.

Naming: ``G_AB`` translates domain A -> B and ``G_BA`` B -> A; ``D_A`` judges
whether an image is a real A-domain image and ``D_B`` likewise for B. (The
reference calls G_AB ``netG_A`` and names each discriminator after the generator
it judges, so its ``netD_A`` is our ``D_B``.)

One training step follows the paper's order:
  1. forward both cycles: A -> fake_B -> rec_A and B -> fake_A -> rec_B;
  2. generator step with both discriminators frozen:
     adversarial + lambda * cycle L1 + lambda * lambda_identity * identity L1;
  3. discriminator step on fakes drawn from the image pools (detached):
     0.5 * (loss on real + loss on fake), plus the gradient penalty for wgangp.

With ``diffaugment`` set, every discriminator call of steps 2 and 3 judges an augmented image
(:meth:`CycleGAN.judge`; cyclegan/gan/diffaugment.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Annotated, Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from cyclegan.gan.diffaugment import DiffAugment, parse_policy
from cyclegan.gan.losses import GANLoss, gradient_penalty
from cyclegan.models.gan_modes import GAN_MODES
from cyclegan.models import build_discriminator, build_generator
from cyclegan.models.options import Above, AtLeast, Below, OneOf
from cyclegan.models.spec import discriminator_args, generator_args, network_keys
from cyclegan.gan.pool import ImagePool
from cyclegan.gan.schedulers import LR_POLICIES, build_scheduler, time_budget_fraction, time_decay_factor
from cyclegan.gan.speed import adam_kwargs, apply_speedups, channels_last_input
from cyclegan.models.compile import compile_options

log = logging.getLogger(__name__)

# The ranges config/checks.py reads from this signature (a wrong value is one line before anything is built).
NonNegative = Annotated[float, AtLeast(0)]
Positive = Annotated[float, Above(0)]


class CycleGAN(pl.LightningModule):
    def __init__(
        self,
        # networks
        gen: str = "resnet",
        disc: str = "patch",
        ngf: int = 64,
        ndf: int = 64,
        n_blocks: int = 9,
        unet_depth: int = 8,
        d_layers: int = 3,
        norm: str = "instance",
        dropout: bool = False,
        init_type: str = "normal",
        init_gain: float = 0.02,
        upsample: str = "deconv",
        residual_output: bool = False,
        init_from: str | None = None,  # recorded only: cyclegan.training.init_from loads the weights before fit
        # losses
        gan_mode: Annotated[str, OneOf(GAN_MODES)] = "lsgan",
        lambda_cycle: NonNegative = 10.0,
        lambda_A: NonNegative | None = None,
        lambda_B: NonNegative | None = None,
        lambda_identity: NonNegative = 0.5,
        lambda_gp: NonNegative = 10.0,
        d_loss_weight: NonNegative = 0.5,
        pool_size: Annotated[int, AtLeast(0)] = 50,
        diffaugment: str | None = None,
        # optimisation
        lr: Positive = 2e-4,
        lr_D: Positive | None = None,
        beta1: Annotated[float, AtLeast(0), Below(1)] = 0.5,
        beta2: Annotated[float, AtLeast(0), Below(1)] = 0.999,
        lr_policy: Annotated[str, OneOf(LR_POLICIES)] = "linear",
        n_epochs: Annotated[int, AtLeast(0)] = 100,
        n_epochs_decay: Annotated[int, AtLeast(0)] = 100,
        lr_step_epochs: Annotated[int, AtLeast(1)] = 50,
        lr_gamma: Positive = 0.1,
        lr_decay_start: Annotated[float, AtLeast(0), Below(1)] = 0.5,
        plateau_monitor: str = "train/G_loss_epoch",
        # speed (cyclegan/gan/speed.py; docs/SPEED.md): applied in configure_model / configure_optimizers
        channels_last: bool = False,
        compile: bool | str | dict = False,  # stored as hparams.compile; never assign self.compile (nn.Module.compile)
        fused_adam: bool | None = None,
        # any other option of the chosen networks (models/registry.py), e.g. antialias=True
        **network_options: Any,
    ):
        super().__init__()
        unknown = sorted(set(network_options) - set(network_keys()))
        if unknown:
            raise TypeError(f"CycleGAN got {', '.join(unknown)}, which no registered network takes "
                            f"(network options: {', '.join(network_keys())})")
        if isinstance(compile, Mapping):  # a Hydra DictConfig would make the checkpoint unloadable with
            compile = dict(compile)       # weights_only=True (evaluate, translate, resume refuse it)
        self.save_hyperparameters()
        compile_options(compile)  # reject an unknown model.compile value now, not after the data is loaded
        gen, gen_kwargs = generator_args(self.hparams, init=True)
        disc, disc_kwargs = discriminator_args(self.hparams, init=True)
        self.G_AB = build_generator(gen, **gen_kwargs)
        self.G_BA = build_generator(gen, **gen_kwargs)
        self.D_A = build_discriminator(disc, **disc_kwargs)
        self.D_B = build_discriminator(disc, **disc_kwargs)

        self.gan_loss = GANLoss(gan_mode)
        self.lambda_A = lambda_cycle if lambda_A is None else lambda_A
        self.lambda_B = lambda_cycle if lambda_B is None else lambda_B
        # Pools hold fakes *for* each discriminator: pool_A feeds D_A with fake A images.
        self.pool_A = ImagePool(pool_size)
        self.pool_B = ImagePool(pool_size)
        # model.diffaugment: the same kind of random augmentation before every discriminator call
        # (cyclegan/gan/diffaugment.py); None when off, so the default step runs exactly the code it always ran
        policy = parse_policy(diffaugment)
        self.augment = DiffAugment(policy) if policy else None
        self.automatic_optimization = False
        self.last_visuals: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ speed
    def configure_model(self) -> None:
        """channels_last and torch.compile (in place: state-dict keys unchanged); idempotent,
        as Lightning calls it once per fit/validate/test in the same process."""
        apply_speedups(self, channels_last=self.hparams.get("channels_last", False),
                       compile=self.hparams.get("compile", False), gan_mode=self.hparams.gan_mode)

    def _input_pair(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        # channels_last weights want channels_last inputs (else cuDNN transposes the first layer's input).
        # (Done here rather than in on_after_batch_transfer, which Lightning warns about with a datamodule.)
        if self.hparams.get("channels_last", False):
            return channels_last_input(batch["A"]), channels_last_input(batch["B"])
        return batch["A"], batch["B"]

    # ------------------------------------------------------------------ inference
    def forward(self, x: torch.Tensor, direction: str = "AB") -> torch.Tensor:
        return (self.G_AB if direction == "AB" else self.G_BA)(x)

    # ------------------------------------------------------------------ losses
    def judge(self, D, x: torch.Tensor) -> torch.Tensor:
        """``D(x)``, through the DiffAugment policy when ``model.diffaugment`` is set."""
        return D(x) if self.augment is None else D(self.augment(x))

    def generator_loss(self, real_A, real_B, fake_A, fake_B, rec_A, rec_B) -> tuple[torch.Tensor, dict]:
        hp = self.hparams
        adv_AB = self.gan_loss(self.judge(self.D_B, fake_B), True, for_discriminator=False)
        adv_BA = self.gan_loss(self.judge(self.D_A, fake_A), True, for_discriminator=False)
        cycle_A = F.l1_loss(rec_A, real_A) * self.lambda_A
        cycle_B = F.l1_loss(rec_B, real_B) * self.lambda_B
        logs = {"G_adv_AB": adv_AB, "G_adv_BA": adv_BA, "cycle_A": cycle_A, "cycle_B": cycle_B}
        total = adv_AB + adv_BA + cycle_A + cycle_B
        if hp.lambda_identity > 0:
            # G_AB fed a B image should leave it unchanged (weighted with lambda_B), and vice versa.
            idt_AB = F.l1_loss(self.G_AB(real_B), real_B) * self.lambda_B * hp.lambda_identity
            idt_BA = F.l1_loss(self.G_BA(real_A), real_A) * self.lambda_A * hp.lambda_identity
            logs.update(idt_AB=idt_AB, idt_BA=idt_BA)
            total = total + idt_AB + idt_BA
        logs["G_loss"] = total
        return total, logs

    def discriminator_loss(self, D, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss = self.hparams.d_loss_weight * (self.gan_loss(self.judge(D, real), True)
                                             + self.gan_loss(self.judge(D, fake.detach()), False))
        if self.hparams.gan_mode == "wgangp":  # the penalty on un-augmented interpolates
            loss = loss + gradient_penalty(D, real, fake, self.hparams.lambda_gp)
        return loss

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        real_A, real_B = self._input_pair(batch)
        opt_g, opt_d = self.optimizers()
        if self.hparams.lr_policy == "linear_time":
            self._set_time_budget_lr(opt_g, opt_d)

        fake_B = self.G_AB(real_A)
        rec_A = self.G_BA(fake_B)
        fake_A = self.G_BA(real_B)
        rec_B = self.G_AB(fake_A)

        # Generator step: toggle_optimizer freezes every parameter not in opt_g (the discriminators).
        self.toggle_optimizer(opt_g)
        loss_G, logs = self.generator_loss(real_A, real_B, fake_A, fake_B, rec_A, rec_B)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_G)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        # Discriminator step on a mix of current and earlier fakes.
        self.toggle_optimizer(opt_d)
        loss_D_A = self.discriminator_loss(self.D_A, real_A, self.pool_A.query(fake_A))
        loss_D_B = self.discriminator_loss(self.D_B, real_B, self.pool_B.query(fake_B))
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_D_A + loss_D_B)
        self._step_without_counting(opt_d)
        self.untoggle_optimizer(opt_d)

        logs.update(D_A=loss_D_A, D_B=loss_D_B)
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, on_step=True, on_epoch=True,
                      batch_size=real_A.size(0))
        # A CPU tensor: a Python float would become a new CUDA tensor, i.e. a host sync every step.
        self.log("train/lr", torch.tensor(float(opt_g.param_groups[0]["lr"])), on_step=True, on_epoch=False,
                 prog_bar=True, batch_size=real_A.size(0))
        self.last_visuals = {
            "real_A": real_A, "fake_B": fake_B, "rec_A": rec_A,
            "real_B": real_B, "fake_A": fake_A, "rec_B": rec_B,
        }

    def _step_without_counting(self, optimizer) -> None:
        """Step without advancing `global_step`.

        Under manual optimization Lightning counts every optimizer step, so one CycleGAN
        iteration (G step + D step) would count twice and `trainer.max_steps`, checkpoint
        and logging intervals would mean half as many iterations as users expect. This is
        Lightning's open issue "incorrect global_step with multiple optimizers and
        automatic_optimization=False" (Lightning-AI/pytorch-lightning#17958; the fix proposed in
        PR #19589 is unmerged). The count happens in ``LightningOptimizer._on_after_step``, a
        private hook (set per optimizer by the manual-optimization loop, after stopping the
        ``optimizer_step`` profiler action): for the D step it is swapped for the profiler stop
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

    def on_train_epoch_end(self) -> None:
        for scheduler in self.lr_schedulers():
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                metric = self.trainer.callback_metrics.get(self.hparams.plateau_monitor)
                if metric is None:
                    raise KeyError(
                        f"model.plateau_monitor '{self.hparams.plateau_monitor}' was not logged; "
                        f"logged metrics: {sorted(self.trainer.callback_metrics)}"
                    )
                # Under DDP each rank logged its own mean: average them so every rank takes the same decision.
                scheduler.step(self.trainer.strategy.reduce(metric.to(self.device), reduce_op="mean"))
            else:
                scheduler.step()

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        real_A, real_B = self._input_pair(batch)
        fake_B, fake_A = self.G_AB(real_A), self.G_BA(real_B)
        rec_A, rec_B = self.G_BA(fake_B), self.G_AB(fake_A)
        self.log_dict(
            {"val/cycle_A": F.l1_loss(rec_A, real_A), "val/cycle_B": F.l1_loss(rec_B, real_B)},
            on_epoch=True, batch_size=real_A.size(0), sync_dist=True,
        )
        return {"real_A": real_A, "real_B": real_B, "fake_A": fake_A, "fake_B": fake_B}

    # ------------------------------------------------------------------ optimisers
    def configure_optimizers(self):
        hp = self.hparams
        betas = (hp.beta1, hp.beta2)
        g_params = list(self.G_AB.parameters()) + list(self.G_BA.parameters())
        d_params = list(self.D_A.parameters()) + list(self.D_B.parameters())
        fused = hp.get("fused_adam", None)  # None: fused when the parameters are on a GPU
        opt_g = torch.optim.Adam(g_params, lr=hp.lr, betas=betas, **adam_kwargs(g_params, fused))
        opt_d = torch.optim.Adam(d_params, lr=hp.lr_D or hp.lr, betas=betas, **adam_kwargs(d_params, fused))
        sched = dict(
            policy=hp.lr_policy, n_epochs=hp.n_epochs, n_epochs_decay=hp.n_epochs_decay,
            step_epochs=hp.lr_step_epochs, gamma=hp.lr_gamma,
        )
        return [opt_g, opt_d], [build_scheduler(opt_g, **sched), build_scheduler(opt_d, **sched)]

    # ------------------------------------------------------------------ checkpoint extras
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["image_pools"] = {"A": self.pool_A.state_dict(), "B": self.pool_B.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        pools = checkpoint.get("image_pools")
        if pools:
            self.pool_A.load_state_dict(pools["A"])
            self.pool_B.load_state_dict(pools["B"])
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
