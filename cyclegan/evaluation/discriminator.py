"""Discriminator accuracy: how often D tells real target images from translations."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from cyclegan.models.gan_modes import DECISION_THRESHOLD, GAN_MODES

__all__ = ["decision_threshold", "discriminator_decisions", "discriminator_accuracy"]


def decision_threshold(gan_mode: str) -> float:
    """The score above which a discriminator trained with ``gan_mode`` calls an image real: 0.5 for
    lsgan (regressed to 1 / 0), 0 for vanilla's logits and hinge / wgangp critic scores
    (:data:`cyclegan.models.gan_modes.DECISION_THRESHOLD`, the table training's losses read too)."""
    try:
        return DECISION_THRESHOLD[str(gan_mode)]
    except KeyError:
        raise ValueError(f"unknown gan_mode {gan_mode!r}; expected one of {', '.join(GAN_MODES)}") from None


def _per_image_score(output: Any) -> torch.Tensor:
    if isinstance(output, (list, tuple)):  # multi-scale discriminators: average the per-image scores
        return torch.stack([_per_image_score(o) for o in output]).mean(0)
    return output.detach().float().reshape(output.shape[0], -1).mean(-1)


@torch.no_grad()
def discriminator_decisions(D: nn.Module, images: torch.Tensor, gan_mode: str = "lsgan",
                            threshold: Optional[float] = None) -> torch.Tensor:
    """Bool [N]: True where D judges the image real (PatchGAN map averaged per image, then > threshold)."""
    thr = decision_threshold(gan_mode) if threshold is None else threshold
    was_training = D.training
    D.eval()
    try:
        score = _per_image_score(D(images))
    finally:
        D.train(was_training)
    return (score > thr).cpu()


def discriminator_accuracy(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gan_mode: str = "lsgan",
                           threshold: Optional[float] = None) -> float:
    """Fraction of correct real/fake decisions over real + fake images (0.5 = indistinguishable).

    Images must be in D's training range (usually [-1, 1]). ``gan_mode``: lsgan thresholds the
    per-image mean at 0.5; vanilla (BCE with logits) / hinge / wgangp at 0 (:func:`decision_threshold`).
    """
    real_ok = discriminator_decisions(D, real, gan_mode, threshold)
    fake_ok = ~discriminator_decisions(D, fake, gan_mode, threshold)
    n = real_ok.numel() + fake_ok.numel()
    return (int(real_ok.sum()) + int(fake_ok.sum())) / n if n else float("nan")
