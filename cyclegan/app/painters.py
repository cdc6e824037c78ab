"""The painters the app offers: every bundled generator, every ``--ckpt`` the user names, and the
chains they make (data-driven: a painter into domain X followed by a painter out of X).

A painter's domains come from its name, the datasets' convention ``<source>2<target>``:
``pretrained:photo2monet_cpu`` paints photo -> monet; ``monet2photo.ckpt:AB`` paints monet -> photo and
``monet2photo.ckpt:BA`` photo -> monet (Berkeley layout: A = paintings, B = photos). Two painters
chain when the first one's target is the second one's source (``monet2photo`` then ``photo2vangogh``:
Monet -> Van Gogh); a name without ``2`` chains only when the user names the chain (``--chain``).

Nothing here imports Gradio: the listing and the loading are tested without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn

from cyclegan.common.directions import normalize_direction
from cyclegan.common.errors import UserError
from cyclegan.inference import pretrained
from cyclegan.inference.chain import Chain, parse_spec
from cyclegan.inference.checkpoint import load_generator

__all__ = ["PainterSpec", "Painter", "domains_of", "bundled_specs", "ckpt_specs", "chain_spec", "find_chains",
           "all_specs", "load_painters"]

CHAIN_ARROW = " → "
_DOMAINS = re.compile(r"^([A-Za-z]+)2([A-Za-z]+)")


@dataclass(frozen=True)
class PainterSpec:
    """What to load for one entry of the painter list: the ``path[:AB|BA]`` / ``pretrained:NAME`` specs
    applied in order (one for a painter, several for a chain), its name in the page and its domains."""

    name: str
    specs: tuple[str, ...]
    source: str | None = None
    target: str | None = None
    description: str = ""

    @property
    def is_chain(self) -> bool:
        return len(self.specs) > 1


@dataclass
class Painter:
    """A loaded painter: the generator (or :class:`~cyclegan.inference.chain.Chain`) and its spec."""

    spec: PainterSpec
    model: nn.Module = field(repr=False)

    @property
    def name(self) -> str:
        return self.spec.name


def domains_of(stem: str, direction: str = "AB") -> tuple[str | None, str | None]:
    """(source, target) read from a ``<x>2<y>`` name for ``direction`` (BA swaps them); (None, None)
    when the name does not say."""
    match = _DOMAINS.match(stem)
    if not match:
        return None, None
    x, y = match.group(1).lower(), match.group(2).lower()
    return (x, y) if normalize_direction(direction) == "AB" else (y, x)


def _card_title(name: str) -> str:
    text = pretrained.card(name) if (pretrained.FOLDER / f"{name}.md").is_file() else ""
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.strip()), "")
    return title.removeprefix(f"{name}:").strip()  # the card's title repeats the name


def bundled_specs() -> list[PainterSpec]:
    """One painter per generator bundled with the package (``pretrained:NAME``), the ones that take
    photos first: the page selects the first painter, and what most people upload is a photo."""
    out = []
    for name in pretrained.available():
        source, target = domains_of(name)
        out.append(PainterSpec(name, (pretrained.PREFIX + name,), source, target, _card_title(name)))
    return sorted(out, key=lambda spec: spec.source != "photo")  # stable: by name within each group


def _single_spec(spec: str, default_direction: str) -> PainterSpec:
    if pretrained.is_pretrained(spec):
        name = spec[len(pretrained.PREFIX):]
        source, target = domains_of(name)
        return PainterSpec(name, (spec,), source, target, _card_title(name))
    path, direction = parse_spec(spec, default_direction)
    source, target = domains_of(path.name.split(".")[0], direction)
    arrow = f" ({source} → {target})" if source else ""
    return PainterSpec(f"{path.name} {direction}", (f"{path}:{direction}",), source, target,
                       f"{direction} generator of {path}{arrow}")


def ckpt_specs(specs: Iterable[str], default_direction: str = "AB") -> list[PainterSpec]:
    """One painter per ``--ckpt`` spec (``path[:AB|BA]`` or ``pretrained:NAME``), in the given order."""
    return [_single_spec(str(s), default_direction) for s in specs]


def _chained(members: Sequence[PainterSpec]) -> PainterSpec:
    name = CHAIN_ARROW.join(m.name for m in members)
    route = [members[0].source] + [m.target for m in members]
    known = all(route)
    return PainterSpec(name, tuple(s for m in members for s in m.specs), route[0], route[-1],
                       "chain: " + (CHAIN_ARROW.join(route) if known else name))  # type: ignore[arg-type]


def chain_spec(text: str, default_direction: str = "AB") -> PainterSpec:
    """A ``--chain`` value: comma-separated specs applied in order (``a.ckpt:AB,pretrained:photo2monet_cpu``)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if len(parts) < 2:
        raise UserError(f"--chain {text!r}: name two or more painters separated by commas, "
                        "e.g. --chain monet2photo.ckpt:AB,pretrained:photo2monet_cpu")
    return _chained(ckpt_specs(parts, default_direction))


def find_chains(painters: Sequence[PainterSpec]) -> list[PainterSpec]:
    """Two-step chains the painters make: first's target = second's source, not a round trip."""
    return [_chained((a, b)) for a in painters for b in painters
            if a is not b and a.target and a.target == b.source and a.source != b.target]


def all_specs(ckpts: Sequence[str] = (), chains: Sequence[str] = (), default_direction: str = "AB",
              bundled: bool = True) -> list[PainterSpec]:
    """The painter list of the page: ``--ckpt`` painters first (the user asked for them), then the
    bundled ones, the chains they make, and the ``--chain`` ones; each name once."""
    singles = ckpt_specs(ckpts, default_direction) + (bundled_specs() if bundled else [])
    named = [chain_spec(c, default_direction) for c in chains]
    out: dict[str, PainterSpec] = {}
    for spec in singles + find_chains(singles) + named:
        out.setdefault(spec.name, spec)
    return list(out.values())


def load_painters(specs: Sequence[PainterSpec], device: torch.device | str = "cpu") -> list[Painter]:
    """Load every painter now (a file that fails stops the start, named in one line); a file shared
    by several painters is read once."""
    cache: dict[str, nn.Module] = {}

    def load(spec: str) -> nn.Module:
        if spec not in cache:
            path, direction = (spec, "AB") if pretrained.is_pretrained(spec) else parse_spec(spec)
            cache[spec] = load_generator(path if isinstance(path, str) else Path(path), direction=direction,
                                         map_location=device).eval()
        return cache[spec]

    painters = []
    for spec in specs:
        members = [load(s) for s in spec.specs]
        model = members[0] if len(members) == 1 else Chain(members).eval()
        painters.append(Painter(spec, model))
    return painters
