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

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.gan.diffaugment import DiffAugment, parse_policy
from cyclegan.gan.family import GANFamily
from cyclegan.gan.hparams import Count, GanMode, LrPolicy, NonNegative, Positive, PositiveCount, UnitInterval
from cyclegan.gan.losses import GANLoss
from cyclegan.gan.pool import ImagePool
from cyclegan.models import build_discriminator, build_generator
from cyclegan.models.spec import discriminator_args, generator_args
from cyclegan.models.compile import compile_options


class CycleGAN(GANFamily):
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
        gan_mode: GanMode = "lsgan",
        lambda_cycle: NonNegative = 10.0,
        lambda_A: NonNegative | None = None,
        lambda_B: NonNegative | None = None,
        lambda_identity: NonNegative = 0.5,
        lambda_gp: NonNegative = 10.0,
        d_loss_weight: NonNegative = 0.5,
        pool_size: Count = 50,
        diffaugment: str | None = None,
        # optimisation
        lr: Positive = 2e-4,
        lr_D: Positive | None = None,
        beta1: UnitInterval = 0.5,
        beta2: UnitInterval = 0.999,
        lr_policy: LrPolicy = "linear",
        n_epochs: Count = 100,
        n_epochs_decay: Count = 100,
        lr_step_epochs: PositiveCount = 50,
        lr_gamma: Positive = 0.1,
        lr_decay_start: UnitInterval = 0.5,
        plateau_monitor: str = "train/G_loss_epoch",
        # speed (cyclegan/gan/speed.py; docs/SPEED.md): applied in configure_model / configure_optimizers
        channels_last: bool = False,
        compile: bool | str | dict = False,  # stored as hparams.compile; never assign self.compile (nn.Module.compile)
        fused_adam: bool | None = None,
        # any other option of the chosen networks (models/registry.py), e.g. antialias=True
        **network_options: Any,
    ):
        super().__init__()
        self.reject_unknown_network_options(network_options)
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

    # ------------------------------------------------------------------ inference
    def forward(self, x: torch.Tensor, direction: str = "AB") -> torch.Tensor:
        return (self.G_AB if direction == "AB" else self.G_BA)(x)

    # ------------------------------------------------------------------ the family interface
    def generators(self) -> dict[str, nn.Module]:
        return {"AB": self.G_AB, "BA": self.G_BA}

    def discriminators(self) -> dict[str, nn.Module]:
        return {"AB": self.D_B, "BA": self.D_A}  # D_B judges what G_AB makes

    # ------------------------------------------------------------------ losses
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
        self._log_step(logs, opt_g, real_A.size(0))
        self.last_visuals = {
            "real_A": real_A, "fake_B": fake_B, "rec_A": rec_A,
            "real_B": real_B, "fake_A": fake_A, "rec_B": rec_B,
        }

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
        return self.adam_pair(list(self.G_AB.parameters()) + list(self.G_BA.parameters()),
                              list(self.D_A.parameters()) + list(self.D_B.parameters()))

    # ------------------------------------------------------------------ checkpoint extras
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)  # checkpoint["generators"]
        checkpoint["image_pools"] = {"A": self.pool_A.state_dict(), "B": self.pool_B.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)  # the stored rates (a resume with another model.lr)
        pools = checkpoint.get("image_pools")
        if pools:
            self.pool_A.load_state_dict(pools["A"])
            self.pool_B.load_state_dict(pools["B"])
