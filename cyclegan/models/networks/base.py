"""What every generator shares: the input-size rule and the encoder features of its layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _nearest_sizes(n: int, multiple: int, minimum: int) -> str:
    if n < minimum:
        return str(minimum)
    lower = n // multiple * multiple
    return f"{lower} or {lower + multiple}"


class ImageGenerator(nn.Module):
    """Base class: holds ``size_multiple`` / ``min_size`` and validates input sizes cheaply.

    The check reads two ints from the input's shape, so it costs nothing measurable and, under
    ``torch.compile``, becomes a shape guard rather than a graph break.
    """

    size_multiple: int = 1
    min_size: int = 1

    def check_input_size(self, x: torch.Tensor) -> None:
        h, w = x.shape[-2], x.shape[-1]
        m, lo = self.size_multiple, self.min_size
        if h % m or w % m or h < lo or w < lo:
            bad = [f"{name} {n} -> {_nearest_sizes(n, m, lo)}" for name, n in (("height", h), ("width", w))
                   if n % m or n < lo]
            raise ValueError(
                f"{type(self).__name__}: input size {h}x{w} is not supported; height and width must be "
                f"multiples of {m} and at least {lo} (nearest valid: {'; '.join(bad)})"
            )

    def after_init(self) -> None:
        """Called by the builder after the weight initialisation (e.g. to zero an output layer)."""

    def encode(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of the given top-level layers of ``self.model`` (an ``nn.Sequential``), in order.

        This is the official CUT code's ``encode_only=True`` pass (its ``nce_layers``, e.g. 0,4,8,12,16
        of the ResNet generator): it stops after the last requested layer, so the decoder never runs.
        """
        model = getattr(self, "model", None)
        if not isinstance(model, nn.Sequential):
            raise ValueError(f"{type(self).__name__} has no top-level model Sequential to take features from")
        wanted = sorted(set(int(i) for i in layers))
        if not wanted or wanted[0] < 0 or wanted[-1] >= len(model):
            raise ValueError(f"layers {list(layers)} must be indices in [0, {len(model) - 1}] of "
                             f"{type(self).__name__}.model")
        self.check_input_size(x)
        feats = []
        for index, layer in enumerate(model[: wanted[-1] + 1]):
            x = layer(x)
            if index in wanted:
                feats.append(x)
        return feats
