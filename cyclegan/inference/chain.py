"""Generators applied one after the other (e.g. Monet -> photo -> Van Gogh), from ``path[:AB|:BA]`` specs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from cyclegan.common.directions import as_direction, normalize_direction
from cyclegan.inference.batching import TranslateError
from cyclegan.inference.checkpoint import lcm_multiple, load_generator

__all__ = ["Chain", "parse_spec", "load_chain"]


class Chain(nn.Module):
    """Apply generators one after the other (e.g. Monet -> photo -> Van Gogh).

    ``size_multiple`` is the lcm of the members': the input is padded once for all of them.
    """

    def __init__(self, generators: Iterable[nn.Module]):
        super().__init__()
        self.generators = nn.ModuleList(generators)
        if len(self.generators) == 0:
            raise TranslateError("a chain needs at least one generator")
        self.size_multiple = lcm_multiple(self.generators)
        self.min_size = max(int(getattr(g, "min_size", 1) or 1) for g in self.generators)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for g in self.generators:
            x = g(x)
        return x


def parse_spec(spec: str, default_direction: str = "AB") -> tuple[Path, str]:
    """``"path.ckpt:AB"`` -> (Path("path.ckpt"), "AB") (``:B2A`` and the other spellings of
    cyclegan.common.directions too); no suffix -> ``default_direction``."""
    head, sep, tail = str(spec).rpartition(":")
    direction = as_direction(tail) if sep and head else None
    if direction:
        return Path(head), direction
    if sep and head and Path(head).is_file() and not Path(spec).exists():  # "run.ckpt:XY": a typo, not a file
        raise TranslateError(f"{spec}: unknown direction {tail!r} after {head}; use {head}:AB or {head}:BA "
                             "(A2B/B2A are read too)")
    return Path(spec), normalize_direction(default_direction)


def load_chain(specs: Sequence[str] | str, map_location: Any = "cpu", default_direction: str | None = "AB",
               *, allow_torchscript: bool = False, **gen_kwargs: Any) -> Chain:
    """A :class:`Chain` from specs like ``["monet2photo.ckpt:AB", "vangogh2photo.ckpt:BA"]``.

    ``default_direction`` is for specs without a suffix; None lets each file decide (the one direction of a
    one-direction checkpoint such as CUT's, else AB). ``allow_torchscript`` and ``state_dict_gen`` (``--gen``)
    apply to every member (see :func:`load_generator`)."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [str(specs)]
    gens = []
    for spec in specs:
        path, direction = parse_spec(spec, default_direction or "AB")
        if default_direction is None and parse_spec(spec, "BA")[1] != direction:
            direction = None  # no suffix and no default: the file says
        gens.append(load_generator(path, direction=direction, map_location=map_location,
                                   allow_torchscript=allow_torchscript, **gen_kwargs))
    return Chain(gens)
