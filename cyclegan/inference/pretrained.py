"""Generators bundled with the package, loadable by name: ``pretrained:photo2monet_cpu``.

Each one is an exported generator (``cyclegan/inference/pretrained/<name>.pt``, half precision, the
format of :func:`cyclegan.inference.export.export_state_dict`) with its model card beside it
(``<name>.md``: data, recipe, budget, metrics, licence). Every command that loads a generator takes
the name: ``python -m cyclegan.translate --ckpt pretrained:photo2monet_cpu --input photos/ --output out/``,
``python -m cyclegan.compare --ckpt pretrained:photo2monet_cpu ...``, ``load_generator("pretrained:...")``.

Bundling a new one (from a training checkpoint), then writing its card::

    python -m cyclegan.translate --ckpt <run>/checkpoints/last.ckpt:BA --export half \\
        --output cyclegan/inference/pretrained/<name>.pt
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cyclegan.common.serialization import CheckpointError

PREFIX = "pretrained:"
FOLDER = Path(__file__).resolve().parent / "pretrained"


def available() -> list[str]:
    """The names of the bundled generators."""
    return sorted(p.stem for p in FOLDER.glob("*.pt")) if FOLDER.is_dir() else []


def is_pretrained(spec: str | os.PathLike | None) -> bool:
    return str(spec).startswith(PREFIX)


def resolve(spec: str | os.PathLike) -> Path:
    """The file of ``pretrained:<name>``; any other spec is returned as a path."""
    if not is_pretrained(spec):
        return Path(spec)
    name = str(spec)[len(PREFIX):]
    path = FOLDER / f"{name}.pt"
    if not name or "/" in name or "\\" in name or not path.is_file():
        names = ", ".join(PREFIX + n for n in available()) or "none in this installation"
        raise CheckpointError(f"{spec!r} is not a bundled generator: the bundled ones are {names}")
    return path


def card(name: str) -> str:
    """The model card of a bundled generator (markdown)."""
    return (FOLDER / f"{name}.md").read_text(encoding="utf-8")


# The card's machine-readable line saying which way the generator translates, e.g. "- Direction: `BA` ..."
_DIRECTION_LINE = re.compile(r"^\s*[-*]?\s*\**direction\**\s*:\s*\**`?(AB|BA)\b", re.IGNORECASE | re.MULTILINE)


def card_direction(spec: str | os.PathLike) -> str | None:
    """``"AB"`` / ``"BA"``: the direction the model card of ``pretrained:<name>`` gives (its ``Direction:``
    line, in the domains of the data it was trained on); None for other specs or a card without one."""
    if not is_pretrained(spec):
        return None
    path = resolve(spec)
    card_path = path.with_suffix(".md")
    match = _DIRECTION_LINE.search(card_path.read_text(encoding="utf-8")) if card_path.is_file() else None
    return match.group(1).upper() if match else None


def pretrained_listing() -> str:
    """One line per bundled generator: its spec, the card's title and where the card is."""
    names = available()
    if not names:
        return "no generator is bundled with this installation"
    lines = []
    for name in names:
        title = next((line.lstrip("# ").strip() for line in card(name).splitlines() if line.strip()), "")
        lines.append(f"{PREFIX}{name}  {title}  (model card: {FOLDER / (name + '.md')})")
    return "\n".join(lines)
