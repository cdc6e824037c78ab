"""``model.init_from``: start a new training from given weights (fine-tuning) instead of random ones.

``model.init_from=SPEC`` where SPEC is anything the one loader (:mod:`cyclegan.inference.checkpoint`)
reads, with an optional direction suffix as in ``translate --ckpt``:

* a training checkpoint ``run/checkpoints/last.ckpt``: both generators, and the discriminators it holds;
  ``last.ckpt:BA`` takes that direction only (its generator and the discriminator judging its output);
* a lone generator, e.g. the bundled painter ``pretrained:photo2monet_cpu:BA`` or an exported
  ``painter.pt:BA``: it starts the generator of that direction (the suffix is required: a lone
  generator does not say which way it translates in this run's data). The other networks start
  as usual (random, or the identity with ``model.residual_output``).

The model's own architecture (``model.gen``, ``model.ngf``, ...) must match the file's: weights that do
not fit are one line naming the first mismatching key and both shapes. A resumed run
(``ckpt_path=...``) takes its weights from the checkpoint and ignores ``init_from``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import hydra
import torch
from omegaconf import DictConfig
from torch import nn

from cyclegan.errors import UserError
from cyclegan.inference.chain import parse_spec
from cyclegan.inference.checkpoint import is_training_checkpoint, load_generator, load_generators
from cyclegan.inference.pretrained import resolve as resolve_pretrained
from cyclegan.models import load_reference_weights
from cyclegan.serialization import safe_load

log = logging.getLogger(__name__)

KEY = "init_from"
# CycleGAN's networks by direction, for a family without generators()/discriminators() (the family interface)
_CYCLEGAN_G = {"AB": "G_AB", "BA": "G_BA"}
_CYCLEGAN_D = {"AB": "D_B", "BA": "D_A"}  # the discriminator that judges that direction's output


class InitFromError(UserError):
    """model.init_from names weights that cannot start this model (one line)."""


def build_model(model_cfg: DictConfig, resuming: bool = False) -> nn.Module:
    """Instantiate ``model_cfg`` and load the weights its ``init_from`` names, unless the run resumes from
    a checkpoint. (The module takes ``init_from`` as an argument only to record it in its hyper-parameters.)"""
    spec = model_cfg.get(KEY)
    model = hydra.utils.instantiate(model_cfg)
    if spec and resuming:
        log.info("model.%s=%s is not used: the resumed checkpoint holds the weights", KEY, spec)
    elif spec:
        init_weights(model, str(spec))
    return model


def _networks(model: nn.Module, kind: str) -> dict[str, nn.Module]:
    """direction -> the model's generator (kind "G") or discriminator ("D")."""
    family = getattr(model, "generators" if kind == "G" else "discriminators", None)
    if callable(family):
        return dict(family())
    names = _CYCLEGAN_G if kind == "G" else _CYCLEGAN_D
    return {d: getattr(model, n) for d, n in names.items() if isinstance(getattr(model, n, None), nn.Module)}


def _attribute_name(model: nn.Module, net: nn.Module) -> str:
    return next(name for name, child in model.named_children() if child is net)


def _load(model: nn.Module, net: nn.Module, state: Mapping[str, torch.Tensor], spec: str) -> None:
    name = _attribute_name(model, net)
    try:
        load_reference_weights(net, state)  # strict; one-line diagnosis (first key, both shapes, likely cause)
    except ValueError as exc:
        detail = str(exc).split(": ", 1)[-1]  # drop the "<state dict>" label
        raise InitFromError(f"model.{KEY}={spec} does not fit this run's {name}: {detail}; match the file's "
                            f"architecture (model.gen, model.ngf, ...) or start from scratch with "
                            f"model.{KEY}=null") from None


def init_weights(model: nn.Module, spec: str) -> list[str]:
    """Load the weights ``spec`` names into ``model`` (see the module doc); returns the networks started."""
    target, direction = parse_spec(spec, default_direction="AB")
    has_suffix = parse_spec(spec, default_direction="BA")[1] == direction  # else the default decided
    path = resolve_pretrained(target)
    if not path.is_file():
        raise InitFromError(f"model.{KEY}={spec}: no such file")
    generators, discriminators = _networks(model, "G"), _networks(model, "D")
    obj = safe_load(path)
    started = []
    if is_training_checkpoint(obj):
        directions = [direction] if has_suffix else [d for d in ("AB", "BA") if d in generators]
        loaded = load_generators(path) if not has_suffix else {direction: load_generator(path, direction)}
        for d in directions:
            if d not in generators:
                raise InitFromError(f"model.{KEY}={spec}: this model has no {d} generator")
            _load(model, generators[d], loaded[d].state_dict(), spec)
            started.append(_attribute_name(model, generators[d]))
            D = discriminators.get(d)
            prefix = f"{_attribute_name(model, D)}." if D is not None else None
            state = {k[len(prefix):]: v for k, v in obj["state_dict"].items() if prefix and k.startswith(prefix)}
            if state:  # a file without this discriminator leaves it as initialised
                _load(model, D, state, spec)
                started.append(prefix[:-1])
    else:
        if not has_suffix:
            raise InitFromError(f"model.{KEY}={spec} holds one generator: say which one it starts, "
                                f"e.g. model.{KEY}={spec}:BA (B -> A; A = paintings, B = photos in the bundled data)")
        if direction not in generators:
            raise InitFromError(f"model.{KEY}={spec}: this model has no {direction} generator")
        _load(model, generators[direction], load_generator(path, direction).state_dict(), spec)
        started.append(_attribute_name(model, generators[direction]))
    log.info("model.%s=%s: %s start from its weights%s", KEY, spec, ", ".join(started),
             "" if len(started) >= 4 else "; the other networks start as initialised")
    return started
