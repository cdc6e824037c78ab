"""Evenly spaced subsets: the images a metric, a grid or a validation pass looks at when it cannot look at all.

Spread over the whole (sorted) list, first and last included, so a subset does not depend on
which images happen to come first and the same list always gives the same subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

__all__ = ["evenly_spaced_indices", "evenly_spaced"]

T = TypeVar("T")


def evenly_spaced_indices(n: int, count: int | None) -> list[int]:
    """``count`` distinct indices spread evenly over ``range(n)``; all of them when ``count`` is None,
    <= 0 or >= ``n``."""
    if count is None or count <= 0 or count >= n:
        return list(range(n))
    # spacing (n - 1) / (count - 1) >= 1, so the rounded indices are distinct
    return np.linspace(0, n - 1, int(count)).round().astype(int).tolist()


def evenly_spaced(items: Sequence[T], count: int | None) -> list[T]:
    """The items at :func:`evenly_spaced_indices` (all of them when there are no more than ``count``)."""
    return [items[i] for i in evenly_spaced_indices(len(items), count)]
