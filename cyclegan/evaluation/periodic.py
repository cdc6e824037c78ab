"""A number for the regular patterns a generator can stamp over every image: the checkerboard of a
transposed convolution, the gratings of a strided network that has learnt to fool its discriminator.

The score is the sharpest peak of the translations' mean power spectrum over their inputs', in dB, at
periods of at most 8 pixels. Averaging the spectra over all the test images keeps a pattern that sits
at the same frequency in every image, while the images' own content averages out. Dividing by the
inputs' mean spectrum removes what the inputs had already. Subtracting a local median of that ratio
(in dB) removes a broad change: a painter that adds brush strokes or grain raises whole bands of
high frequencies, not one. The identity scores 0 dB; the threshold for "visible" comes from
measured generators (docs/RESULTS.md, 2026-12-04).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["PeriodicArtifacts", "MAX_PERIOD"]

log = logging.getLogger(__name__)

MAX_PERIOD = 8.0   # pixels: strided and transposed convolutions repeat every 2, 4 or 8 pixels
_NEIGHBOURHOOD = 7  # frequency bins on a side of the local median


def _gray(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, H, W] luminance-like mean over channels, each image's mean removed."""
    g = images.detach().float().mean(dim=1)
    return g - g.mean(dim=(-2, -1), keepdim=True)


def _power(images: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Summed power spectrum [H, W//2+1] of a batch (a Hann window against leakage from the borders)."""
    return torch.fft.rfft2(_gray(images) * window).abs().square().sum(dim=0)


def _local_median(values: torch.Tensor, size: int) -> torch.Tensor:
    pad = size // 2
    padded = F.pad(values[None, None], (pad, pad, pad, pad), mode="replicate")
    patches = F.unfold(padded, kernel_size=size)  # [1, size*size, H*W]
    return patches.median(dim=1).values.reshape(values.shape)


class PeriodicArtifacts:
    """Streams the mean spectra of inputs and translations; ``compute`` gives the peak.

    ``compute()`` -> {"periodic_artifact_db": the peak in dB (NaN before any batch),
    "periodic_artifact_period": its period in pixels}. Batches of another image size than the first
    are left out (the spectra of different sizes do not add up).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._inputs: torch.Tensor | None = None
        self._translations: torch.Tensor | None = None
        self._window: torch.Tensor | None = None
        self.skipped = 0

    def update(self, inputs: torch.Tensor, translations: torch.Tensor) -> None:
        if inputs.shape != translations.shape:
            raise ValueError(f"periodic artefacts need inputs and translations of one shape, "
                             f"got {tuple(inputs.shape)} and {tuple(translations.shape)}")
        h, w = inputs.shape[-2:]
        if self._window is None:
            self._window = torch.outer(torch.hann_window(h, periodic=False), torch.hann_window(w, periodic=False))
        elif self._window.shape != (h, w):
            self.skipped += inputs.shape[0]
            return
        window = self._window.to(inputs.device)
        p_in, p_out = _power(inputs, window).cpu(), _power(translations, window).cpu()
        self._inputs = p_in if self._inputs is None else self._inputs + p_in
        self._translations = p_out if self._translations is None else self._translations + p_out

    def compute(self) -> dict[str, Any]:
        if self._inputs is None:
            return {"periodic_artifact_db": float("nan"), "periodic_artifact_period": float("nan")}
        if self.skipped:  # said once, so a score on part of the images is never taken for one on all
            log.warning("periodic artefacts: %d image(s) of another size than the first batch were left out", self.skipped)
        floor = 1e-12 * float(self._inputs.mean()) + 1e-30
        ratio_db = 10.0 * torch.log10((self._translations + floor) / (self._inputs + floor))
        excess = ratio_db - _local_median(ratio_db, _NEIGHBOURHOOD)
        h, w = self._window.shape
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        radius = torch.sqrt(fy ** 2 + fx ** 2)
        excess = excess.masked_fill(radius < 1.0 / MAX_PERIOD, -math.inf)
        peak = int(excess.argmax())
        return {"periodic_artifact_db": float(excess.reshape(-1)[peak]),
                "periodic_artifact_period": float(1.0 / radius.reshape(-1)[peak])}
