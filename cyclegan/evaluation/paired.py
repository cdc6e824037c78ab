"""Metrics of an image against its own translation: SSIM to the input, cycle-consistency L1."""

from __future__ import annotations

from typing import Any, Optional, Union

import torch

__all__ = ["ssim", "cycle_l1", "PairedMetrics"]


def _to_unit_float(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    lo, hi = value_range
    return ((x.detach().float() - lo) / (hi - lo)).clamp(0, 1)


def ssim(inputs: torch.Tensor, translations: torch.Tensor, reduction: str = "mean",
         value_range: tuple[float, float] = (0.0, 1.0)) -> Union[float, torch.Tensor]:
    """SSIM between each input and its translation (gaussian 11x11, sigma 1.5, data_range 1 on [0, 1]).

    Float images in ``value_range`` are mapped to [0, 1] (uint8: /255); computed by
    ``torchmetrics.functional.structural_similarity_index_measure``. ``reduction="mean"`` -> float;
    ``"none"`` -> per-image tensor [N].
    """
    # the root import of torchmetrics.functional is deprecated (and warns on every call through it)
    from torchmetrics.functional.image import structural_similarity_index_measure  # ~1 s to import
    x, y = _to_unit_float(inputs, value_range), _to_unit_float(translations, value_range)
    if x.ndim == 3:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    if x.shape != y.shape:
        raise ValueError(f"ssim needs images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    per_image = structural_similarity_index_measure(x, y, data_range=1.0, reduction="none").reshape(-1).cpu()
    if reduction == "none":
        return per_image
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return float(per_image.mean())


def cycle_l1(inputs: torch.Tensor, reconstructions: torch.Tensor, reduction: str = "mean",
             value_range: tuple[float, float] = (0.0, 1.0)) -> Union[float, torch.Tensor]:
    """Mean absolute error between x and F(G(x)) on the [0, 1] scale (half the training loss's [-1, 1] L1)."""
    x, r = _to_unit_float(inputs, value_range), _to_unit_float(reconstructions, value_range)
    if x.shape != r.shape:
        raise ValueError(f"cycle_l1 needs tensors of equal shape, got {tuple(x.shape)} and {tuple(r.shape)}")
    per_image = (x - r).abs().reshape(x.shape[0] if x.ndim == 4 else 1, -1).mean(-1).cpu()
    return per_image if reduction == "none" else float(per_image.mean())


class PairedMetrics:
    """Streams SSIM(x, G(x)) and cycle L1(x, F(G(x))) over batches: ``update`` per batch, ``compute`` at the end.

    ``compute()`` -> {"ssim", "cycle_l1", "n_pairs"} (means over images; NaN when no batch was seen).
    """

    def __init__(self, value_range: tuple[float, float] = (-1.0, 1.0)):
        self.value_range = value_range
        self.reset()

    def reset(self) -> None:
        self._ssim_sum = 0.0
        self._l1_sum = 0.0
        self._n_ssim = 0
        self._n_l1 = 0

    def update(self, inputs: torch.Tensor, translations: Optional[torch.Tensor] = None,
               reconstructions: Optional[torch.Tensor] = None) -> None:
        if translations is not None:
            s = ssim(inputs, translations, reduction="none", value_range=self.value_range)
            self._ssim_sum += float(s.sum())
            self._n_ssim += s.numel()
        if reconstructions is not None:
            e = cycle_l1(inputs, reconstructions, reduction="none", value_range=self.value_range)
            self._l1_sum += float(e.sum())
            self._n_l1 += e.numel()

    def compute(self) -> dict[str, Any]:
        nan = float("nan")
        return {
            "ssim": self._ssim_sum / self._n_ssim if self._n_ssim else nan,
            "cycle_l1": self._l1_sum / self._n_l1 if self._n_l1 else nan,
            "n_pairs": max(self._n_ssim, self._n_l1),
        }
