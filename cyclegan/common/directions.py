"""The two translation directions, spelled one way everywhere: ``AB`` (domain A -> B, generator
``G_AB``) and ``BA`` (B -> A, ``G_BA``), as the checkpoints name the generators.

That spelling is used by the code, the metrics keys (``metrics.json``, ``eval/BA/kid_mean``), the
``metrics.directions`` option, ``--direction`` and ``path:BA`` specs. The spellings of other tools
(``A2B``/``B2A``, the reference's ``AtoB``/``BtoA``, ``A->B``, lower case) are accepted as input and
mean the same.
"""

from __future__ import annotations

import argparse

from cyclegan.common.errors import UserError

DIRECTIONS = ("AB", "BA")
# direction -> (source domain, target domain)
DOMAINS_OF = {"AB": ("A", "B"), "BA": ("B", "A")}
LABELS = {"AB": "A → B", "BA": "B → A"}


class DirectionError(UserError, ValueError):
    """A direction that is none of the accepted spellings."""


def as_direction(value: object) -> str | None:
    """``"AB"``/``"BA"`` for any accepted spelling of a direction, else None."""
    text = str(value).strip().upper()
    for sep in ("->", "2", "TO", "_", "-", " "):
        text = text.replace(sep, "")
    return text if text in DIRECTIONS else None


def normalize_direction(value: object, what: str = "direction") -> str:
    """``as_direction`` that raises a one-line :class:`DirectionError` naming ``what`` for anything else."""
    direction = as_direction(value)
    if direction is None:
        raise DirectionError(f"{what}={value!r}: use AB (domain A -> B, G_AB) or BA (B -> A, G_BA); "
                             "A2B/B2A and AtoB/BtoA are read as the same")
    return direction


def direction_argument(value: str) -> str:
    """``type=`` of a ``--direction`` option: any accepted spelling, stored as AB/BA."""
    direction = as_direction(value)
    if direction is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a direction: use AB or BA (A2B/B2A also accepted)")
    return direction
