"""Adversarial losses by name, plus the gradient penalty of WGAN-GP.

`GANLoss(mode)(prediction, target_is_real)` hides what each mode compares a
discriminator output with, so the training step reads the same for all of them:

- ``lsgan``   least squares (MSE to 1 / 0), the CycleGAN paper's choice and the default;
- ``vanilla`` binary cross-entropy on logits (the original GAN, used by the Kaggle notebooks);
- ``hinge``   hinge loss for D, -D(x) for G (as in SAGAN / BigGAN);
- ``wgangp``  Wasserstein critic (-D(real) + D(fake)), used with `gradient_penalty`.

The cycle and identity terms are plain L1 (`torch.nn.functional.l1_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.models.gan_modes import GAN_MODES  # the one list of modes (evaluation reads it too)


class GANLoss(nn.Module):
    """Adversarial loss for one discriminator output (any shape: PatchGAN maps are averaged)."""

    def __init__(self, mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown model.gan_mode '{mode}'; choose one of: {', '.join(GAN_MODES)}")
        self.mode = mode
        self.real_label = real_label
        self.fake_label = fake_label

    def forward(self, prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        # Losses are computed in fp32 even under autocast: MSE/BCE of bf16 patch maps lose precision.
        prediction = prediction.float()
        if self.mode in ("lsgan", "vanilla"):
            value = self.real_label if target_is_real else self.fake_label
            target = torch.full_like(prediction, value)
            if self.mode == "lsgan":
                return F.mse_loss(prediction, target)
            return F.binary_cross_entropy_with_logits(prediction, target)
        if self.mode == "hinge":
            if not for_discriminator:  # generator: raise D's score of the fakes
                return -prediction.mean()
            margin = 1.0 - prediction if target_is_real else 1.0 + prediction
            return F.relu(margin).mean()
        # wgangp: the critic's score of real images goes up, of fakes down
        return -prediction.mean() if target_is_real else prediction.mean()


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP penalty: weight * (||grad D(x_hat)||_2 - 1)^2 on random interpolates of real and fake."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
    interpolates = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = discriminator(interpolates)
    (grads,) = torch.autograd.grad(scores.float().sum(), interpolates, create_graph=True)
    grad_norm = grads.flatten(1).float().norm(2, dim=1)
    return weight * ((grad_norm - 1.0) ** 2).mean()
