"""The adversarial loss modes, and what a discriminator's score means under each: one table.

Training (:class:`cyclegan.gan.losses.GANLoss`, ``model.gan_mode``) and evaluation (the discriminator
accuracy of :mod:`cyclegan.evaluation.discriminator`) both read it, so a new mode is one line here.
"""

from __future__ import annotations

# mode -> the per-image score above which the discriminator calls an image real:
# lsgan regresses to 1 (real) / 0 (fake); vanilla's logits, hinge's and wgangp's critic scores split at 0.
DECISION_THRESHOLD = {"lsgan": 0.5, "vanilla": 0.0, "hinge": 0.0, "wgangp": 0.0}
GAN_MODES = tuple(DECISION_THRESHOLD)
