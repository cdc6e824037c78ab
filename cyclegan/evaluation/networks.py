"""What `evaluate.py` scores, by direction: a generator, and when the file has them the discriminator
that judges its output and the generator that translates back.

:func:`load_for_evaluation` is the entry point for every kind of file; it reads them through the one
loader (:func:`cyclegan.inference.checkpoint.load_networks`), so a new model family that writes
``checkpoint["generators"]`` (and optionally ``checkpoint["discriminators"]``) is evaluated without
a line here. A missing piece is no error: the metrics that need it are reported as not applicable,
with the reason :func:`missing_reasons` gives.

==========================================  ==============  ==============  ==============
file                                        generator(s)    discriminator   reverse (cycle)
==========================================  ==============  ==============  ==============
CycleGAN training checkpoint                AB and BA       D_B / D_A       the other G
a family's checkpoint with one direction    that one        if it has one   none
``pretrained:NAME``, export, state dict     one             none            none
``identity`` (the untranslated baseline)    AB and BA       none            identity
==========================================  ==============  ==============  ==============
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from torch import nn

from cyclegan.common.directions import DIRECTIONS, LABELS, as_direction, normalize_direction
from cyclegan.common.errors import UserError
from cyclegan.inference.checkpoint import load_networks
from cyclegan.models import ImageGenerator

log = logging.getLogger(__name__)

__all__ = ["DirectionNetworks", "EvaluationError", "IDENTITY", "IdentityGenerator", "load_for_evaluation", "missing_reasons",
           "networks_of", "parse_directions", "select_directions"]

IDENTITY = "identity"  # ckpt_path value of the untranslated baseline
REVERSE = {"AB": "BA", "BA": "AB"}


@dataclass
class DirectionNetworks:
    """The networks that score one direction."""

    generator: nn.Module
    discriminator: Optional[nn.Module] = None  # judges this direction's output (target domain): D accuracy
    reverse: Optional[nn.Module] = None  # translates the output back: cycle L1
    gan_mode: str = "lsgan"  # how to read the discriminator's scores

    def modules(self) -> list[nn.Module]:
        return [m for m in (self.generator, self.discriminator, self.reverse) if m is not None]


class IdentityGenerator(ImageGenerator):
    """Returns its input: the 'translation' of the untranslated-images baseline."""

    def forward(self, x):
        return x


class EvaluationError(UserError, ValueError):
    """A user-fixable problem with the evaluation request (one line naming the key and the fix)."""


def networks_of(generators: Mapping[str, nn.Module], discriminators: Mapping[str, nn.Module] | None = None,
                gan_mode: str = "lsgan") -> dict[str, DirectionNetworks]:
    """``{direction: DirectionNetworks}`` from a file's generators and discriminators by direction:
    the reverse of a direction is the generator of the other one, when there is one."""
    discriminators = discriminators or {}
    return {d: DirectionNetworks(generators[d], discriminators.get(d), generators.get(REVERSE[d]), gan_mode)
            for d in DIRECTIONS if d in generators}


def load_for_evaluation(ckpt_path: str | os.PathLike | None, direction: str | None = None,
                        map_location: Any = "cpu") -> tuple[dict[str, DirectionNetworks], dict[str, Any]]:
    """``({direction: DirectionNetworks}, info)`` of any file evaluate.py takes (see the module table).

    ``direction``: which way a lone generator translates, when its file or model card does not say
    (ignored for training checkpoints, which name their generators). info = ``{"checkpoint", "epoch",
    "global_step", "hparams", "kind"}``.
    """
    if ckpt_path in (None, "", "null"):
        raise EvaluationError(
            "ckpt_path is required: python evaluate.py ckpt_path=outputs/train/<run>/checkpoints/last.ckpt "
            "(or pretrained:NAME, an exported generator with direction=AB|BA, or identity for the untranslated images)")
    if direction is not None:
        direction = normalize_direction(direction, "direction")
    info: dict[str, Any] = {"checkpoint": str(ckpt_path), "epoch": None, "global_step": None, "hparams": {}}
    if str(ckpt_path) == IDENTITY:
        same = {d: IdentityGenerator() for d in DIRECTIONS}
        return networks_of(same), {**info, "kind": IDENTITY}
    spec = str(ckpt_path)
    if not spec.startswith("pretrained:") and not os.path.exists(os.path.expanduser(spec)):  # a folder: safe_load names it
        raise EvaluationError(f"ckpt_path={ckpt_path}: no such file")
    loaded = load_networks(os.path.expanduser(spec), direction=direction, map_location=map_location)
    gan_mode = str(loaded.hparams.get("gan_mode", "lsgan"))
    info.update(epoch=loaded.epoch, global_step=loaded.global_step, hparams=loaded.hparams, kind=loaded.kind)
    return networks_of(loaded.generators, loaded.discriminators, gan_mode), info


def missing_reasons(nets: DirectionNetworks, checkpoint: str) -> dict[str, str]:
    """metric -> why it is not applicable to these networks (empty when everything is there)."""
    reasons = {}
    if nets.discriminator is None:
        why = ("the untranslated baseline has no discriminator" if checkpoint == IDENTITY
               else f"{checkpoint} holds no discriminator for this direction")
        reasons.update(d_accuracy=why, d_accuracy_real=why, d_accuracy_fake=why)
    if nets.reverse is None:
        reasons["cycle_l1"] = f"{checkpoint} holds no generator for the way back"
    return reasons


def parse_directions(directions: str | Sequence[str] | None) -> list[str]:
    """``metrics.directions`` -> the direction keys to evaluate, in DIRECTIONS order (``both`` = all)."""
    if directions is None:
        return list(DIRECTIONS)
    items = [directions] if isinstance(directions, str) else [str(d) for d in directions]
    items = [d.strip() for item in items for d in item.split(",") if d.strip()]
    if items in (["both"], ["all"]):
        return list(DIRECTIONS)
    keys = [as_direction(d) for d in items]  # A2B/B2A (the older spelling) are read as AB/BA
    if not items or None in keys:
        raise EvaluationError(
            f"metrics.directions={directions!r}: use [AB,BA] (both, the default), AB or BA "
            "(BA: domain B's test images through G_BA, e.g. photos to paintings; A2B/B2A also read)")
    return [d for d in DIRECTIONS if d in keys]


def select_directions(nets: Mapping[str, DirectionNetworks], directions: str | Sequence[str] | None,
                      source: str = "the checkpoint") -> list[str]:
    """The asked directions (``metrics.directions``) that ``nets`` can translate; the others are logged
    and skipped. None of them translatable: a one-line error saying what the file translates."""
    asked = parse_directions(directions)
    wanted = [d for d in asked if d in nets]
    if not wanted:
        have = ", ".join(nets) or "nothing"
        raise EvaluationError(f"metrics.directions={asked}: {source} translates {have} only; "
                              f"ask for metrics.directions=[{have}]")
    for d in asked:
        if d not in nets:
            log.info("%s skipped: %s has no generator for it", LABELS[d], source)
    return wanted
