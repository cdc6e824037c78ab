"""CUT and FastCUT: one generator, one discriminator, PatchNCE instead of a cycle (Park et al., ECCV 2020).

Contrastive Unpaired Translation trains one direction X -> Y (``model.direction``: AB translates
domain A into B, BA the other way). The generator G must fool the PatchGAN D (the adversarial loss)
while each patch of G(x) stays recognisable as the patch of x at the same place among the other
patches of x (PatchNCE on G's own encoder features, cyclegan/gan/patchnce.py). No second generator,
no cycle: half of CycleGAN's networks, and the output is free to change what the cycle would pull back.

One training step, in the official order (models/cut_model.py, ``optimize_parameters``):
  1. forward: fake = G(x) (CUT also G(y), the identity input; FastCUT flips the batch half the time);
  2. discriminator step on the *current* fake, detached (no image pool by default):
     0.5 * (loss on real y + loss on fake), the WGAN-GP penalty for ``gan_mode=wgangp``;
  3. generator + F step with D frozen: lambda_GAN * adversarial + lambda_NCE * PatchNCE(x, G(x)),
     CUT averaging it with PatchNCE(y, G(y)) (``nce_idt``).

CUT: lambda_NCE 1 with the identity term. FastCUT (conf/model/fastcut.yaml): lambda_NCE 10, no identity
term, flip equivariance. tests/gan/test_cut_fixture.py replays a step of the official code exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.common.directions import DOMAINS_OF, normalize_direction
from cyclegan.gan.diffaugment import DiffAugment, parse_policy
from cyclegan.gan.family import GANFamily
from cyclegan.gan.hparams import Count, GanMode, LrPolicy, NonNegative, Positive, PositiveCount, UnitInterval
from cyclegan.gan.losses import GANLoss
from cyclegan.gan.patchnce import PatchSampleF, patch_nce_loss
from cyclegan.gan.pool import ImagePool
from cyclegan.models import build_discriminator, build_generator
from cyclegan.models.compile import compile_options
from cyclegan.models.spec import discriminator_args, generator_args

__all__ = ["CUT", "encoder_widths"]


def encoder_widths(name: str, kwargs: Mapping[str, Any], layers: Sequence[int]) -> list[int]:
    """G's channel count at each NCE layer: one forward of a weightless (meta) copy, so F's MLPs can be
    built with the model instead of on its first batch as the official code does."""
    with torch.device("meta"):
        G = build_generator(name, **{**kwargs, "init_type": "normal"})
        size = max(64, getattr(G, "min_size", 1))
        size += -size % max(1, getattr(G, "size_multiple", 1))
        channels = int(kwargs.get("in_channels", 3))
        return [f.shape[1] for f in G.encode(torch.empty(1, channels, size, size), layers)]


class CUT(GANFamily):
    def __init__(
        self,
        direction: str = "AB",
        # networks (the official defaults: antialiased ResNet generator and PatchGAN, xavier init)
        gen: str = "resnet",
        disc: str = "patch",
        ngf: int = 64,
        ndf: int = 64,
        n_blocks: int = 9,
        d_layers: int = 3,
        norm: str = "instance",
        dropout: bool = False,
        init_type: str = "xavier",
        init_gain: float = 0.02,
        antialias: bool = True,
        netF_nc: PositiveCount = 256,
        init_from: str | None = None,  # recorded only: cyclegan.training.init_from loads the weights before fit
        # losses
        gan_mode: GanMode = "lsgan",
        lambda_GAN: NonNegative = 1.0,
        lambda_NCE: NonNegative = 1.0,
        nce_idt: bool = True,
        nce_layers: Sequence[int] = (0, 4, 8, 12, 16),
        nce_T: Positive = 0.07,
        num_patches: PositiveCount = 256,
        flip_equivariance: bool = False,
        nce_includes_all_negatives_from_minibatch: bool = False,
        lambda_gp: NonNegative = 10.0,
        d_loss_weight: NonNegative = 0.5,
        pool_size: Count = 0,
        diffaugment: str | None = None,
        # optimisation (one Adam for G and F, one for D: per-parameter Adam, so the official three are the same)
        lr: Positive = 2e-4,
        lr_D: Positive | None = None,
        beta1: UnitInterval = 0.5,
        beta2: UnitInterval = 0.999,
        lr_policy: LrPolicy = "linear",
        n_epochs: Count = 200,
        n_epochs_decay: Count = 200,
        lr_step_epochs: PositiveCount = 50,
        lr_gamma: Positive = 0.1,
        lr_decay_start: UnitInterval = 0.5,
        plateau_monitor: str = "train/G_loss_epoch",
        # speed (cyclegan/gan/speed.py; docs/SPEED.md)
        channels_last: bool = False,
        compile: bool | str | dict = False,  # stored as hparams.compile; never assign self.compile (nn.Module.compile)
        fused_adam: bool | None = None,
        # any other option of the chosen networks (models/registry.py), e.g. upsample=resize
        **network_options: Any,
    ):
        super().__init__()
        self.reject_unknown_network_options(network_options)
        if isinstance(compile, Mapping):  # a DictConfig would make the checkpoint unloadable with weights_only
            compile = dict(compile)
        direction = normalize_direction(direction, "model.direction")
        nce_layers = [int(i) for i in (nce_layers.split(",") if isinstance(nce_layers, str) else nce_layers)]
        if not nce_layers or sorted(set(nce_layers)) != nce_layers or nce_layers[0] < 0:
            raise ValueError(f"model.nce_layers={nce_layers} must be increasing layer indices >= 0, e.g. [0,4,8,12,16]")
        if num_patches < 1:
            raise ValueError(f"model.num_patches={num_patches} must be >= 1 (patches per layer, 256 in the paper)")
        self.save_hyperparameters()
        self.hparams.direction, self.hparams.nce_layers = direction, nce_layers
        compile_options(compile)  # reject an unknown model.compile value now, not after the data is loaded
        gen, gen_kwargs = generator_args(self.hparams, init=True)
        disc, disc_kwargs = discriminator_args(self.hparams, init=True)
        self.G = build_generator(gen, **gen_kwargs)
        if not isinstance(getattr(self.G, "model", None), nn.Sequential):
            raise ValueError(f"model.gen={gen} has no layer sequence to take PatchNCE features from: use model.gen=resnet")
        if nce_layers[-1] >= len(self.G.model):
            raise ValueError(f"model.nce_layers={nce_layers}: the generator has layers 0..{len(self.G.model) - 1}")
        self.D = build_discriminator(disc, **disc_kwargs)
        self.F = PatchSampleF(encoder_widths(gen, gen_kwargs, nce_layers), netF_nc, init_type, init_gain)

        self.direction = direction
        self.source, self.target = DOMAINS_OF[direction]
        self.gan_loss = GANLoss(gan_mode)
        self.pool = ImagePool(pool_size)
        policy = parse_policy(diffaugment)
        self.augment = DiffAugment(policy) if policy else None
        rows = [(f"{self.source} -> {self.target}", ("real_X", "fake_Y"))]
        if nce_idt:  # what G does to an image that is already in the target domain (CUT's identity input)
            rows.append((f"{self.target} (identity)", ("real_Y", "idt_Y")))
        self.visual_layout = {"rows": tuple(rows), "columns": ("real", "translated")}
        self.visual_caption = (f"columns: real, translated ({self.source} -> {self.target})"
                               + ("; second row: a real target image and G's identity output" if nce_idt else ""))
        self.automatic_optimization = False
        self.last_visuals: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ the family interface
    def generators(self) -> dict[str, nn.Module]:
        return {self.direction: self.G}

    def discriminators(self) -> dict[str, nn.Module]:
        return {self.direction: self.D}

    def forward(self, x: torch.Tensor, direction: str | None = None) -> torch.Tensor:
        if direction is not None and normalize_direction(direction) != self.direction:
            raise ValueError(f"this CUT model translates {self.direction} only (model.direction), not {direction}")
        return self.G(x)

    # ------------------------------------------------------------------ losses
    def draw_flip(self) -> bool:
        """FastCUT's flip equivariance: flip this step's inputs with probability 0.5."""
        return bool(self.hparams.flip_equivariance) and bool(torch.rand(()) < 0.5)

    def translate(self, real_X: torch.Tensor, real_Y: torch.Tensor, flipped: bool):
        """``(G(x), G(y) or None)``, in one batch as the official code does; flipped along the width when
        ``flipped`` (the outputs stay flipped: D does not care, PatchNCE flips the features back)."""
        real = torch.cat((real_X, real_Y)) if self.hparams.nce_idt else real_X
        fake = self.G(real.flip(3) if flipped else real)
        n = real_X.size(0)
        return fake[:n], (fake[n:] if self.hparams.nce_idt else None)

    def nce_loss(self, source: torch.Tensor, translated: torch.Tensor, flipped: bool) -> torch.Tensor:
        """lambda_NCE x PatchNCE(source, translated), the mean over ``nce_layers`` (official reduction:
        the mean of the weighted per-patch losses of each layer, summed, divided by the layer count)."""
        hp = self.hparams
        layers = hp.nce_layers
        query = self.G.encode(translated, layers)
        if flipped:  # G saw the flipped image: flip its features back onto the source's positions
            query = [f.flip(3) for f in query]
        with torch.no_grad():  # the key side is detached in the loss anyway: no graph needed
            key_samples, ids = self.F(self.G.encode(source, layers), hp.num_patches)
        query_samples, _ = self.F(query, hp.num_patches, ids)
        total = 0.0
        for q, k in zip(query_samples, key_samples):
            per_patch = patch_nce_loss(q, k, source.size(0), hp.nce_T, hp.nce_includes_all_negatives_from_minibatch)
            total = total + (per_patch * hp.lambda_NCE).mean()
        return total / len(layers)

    def generator_loss(self, real_X, real_Y, fake_Y, idt_Y, flipped: bool) -> tuple[torch.Tensor, dict]:
        hp = self.hparams
        zero = fake_Y.new_zeros((), dtype=torch.float32)
        logs = {}
        adv = zero
        if hp.lambda_GAN > 0:
            adv = self.gan_loss(self.judge(self.D, fake_Y), True, for_discriminator=False) * hp.lambda_GAN
            logs["G_GAN"] = adv
        nce = zero
        if hp.lambda_NCE > 0:
            nce = logs["NCE"] = self.nce_loss(real_X, fake_Y, flipped)
            if hp.nce_idt:
                logs["NCE_Y"] = self.nce_loss(real_Y, idt_Y, flipped)
                nce = (logs["NCE"] + logs["NCE_Y"]) * 0.5
        logs["G_loss"] = total = adv + nce
        return total, logs

    # ------------------------------------------------------------------ training
    def _source_target(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        real_A, real_B = self._input_pair(batch)
        return (real_A, real_B) if self.direction == "AB" else (real_B, real_A)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        real_X, real_Y = self._source_target(batch)
        opt_g, opt_d = self.optimizers()  # opt_g: G and F
        if self.hparams.lr_policy == "linear_time":
            self._set_time_budget_lr(opt_g, opt_d)
        flipped = self.draw_flip()
        fake_Y, idt_Y = self.translate(real_X, real_Y, flipped)

        # 1. Discriminator step on the current fake (the official order: D first).
        self.toggle_optimizer(opt_d)
        loss_D, parts = self.discriminator_terms(self.D, real_Y, self.pool.query(fake_Y.detach()))
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_D)
        self._step_without_counting(opt_d)  # the G step counts the iteration
        self.untoggle_optimizer(opt_d)

        # 2. Generator + F step; toggle_optimizer freezes D.
        self.toggle_optimizer(opt_g)
        loss_G, logs = self.generator_loss(real_X, real_Y, fake_Y, idt_Y, flipped)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_G)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        logs.update(D_real=parts["real"], D_fake=parts["fake"], D_loss=loss_D)
        self._log_step(logs, opt_g, real_X.size(0))
        unflip = (lambda t: t.flip(3)) if flipped else (lambda t: t)
        self.last_visuals = {"real_X": real_X, "fake_Y": unflip(fake_Y).detach()}
        if idt_Y is not None:
            self.last_visuals.update(real_Y=real_Y, idt_Y=unflip(idt_Y).detach())

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        real_X, real_Y = self._source_target(batch)
        fake_Y = self.G(real_X)
        # How far G moves its input (0: it learned the identity); quality is val/kid (callbacks.val_kid).
        self.log("val/l1_to_input", F.l1_loss(fake_Y, real_X), on_epoch=True, batch_size=real_X.size(0),
                 sync_dist=True)
        return {"real_X": real_X, "real_Y": real_Y, "fake_Y": fake_Y}

    # ------------------------------------------------------------------ optimisers and checkpoints
    def configure_optimizers(self):
        return self.adam_pair(list(self.G.parameters()) + list(self.F.parameters()), self.D.parameters())

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)  # checkpoint["generators"]
        if self.pool.size:
            checkpoint["image_pools"] = {self.target: self.pool.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        pools = checkpoint.get("image_pools") or {}
        if self.target in pools:
            self.pool.load_state_dict(pools[self.target])
