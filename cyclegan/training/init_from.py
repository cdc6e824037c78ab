"""``model.init_from``: start a new training from given weights (fine-tuning) instead of random ones.

``model.init_from=SPEC`` where SPEC is anything the one loader (:func:`cyclegan.inference.checkpoint.load_networks`)
reads, with an optional direction suffix as in ``translate --ckpt``:

* a training checkpoint ``run/checkpoints/last.ckpt``: its generators, and the discriminators it holds;
  ``last.ckpt:BA`` takes that direction only (its generator and the discriminator judging its output);
* a lone generator: the bundled painter ``pretrained:photo2monet_cpu`` (its model card says BA), an exported
  ``painter.pt``, a reference ``latest_net_G_A.pth`` (``:AB`` or ``:BA`` says which generator it starts when
  the file does not). The other networks start as usual (random, or the identity with ``model.residual_output``).

The model's architecture (``model.gen``, ``model.ngf``, ...) must match the file's: weights that do not fit are
one line naming the network, the first mismatching key and both shapes. A resumed run (``ckpt_path=...``) takes
its weights from the checkpoint and ignores ``init_from``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import hydra
import torch
from omegaconf import DictConfig
from torch import nn

from cyclegan.common.errors import UserError
from cyclegan.inference.chain import parse_spec
from cyclegan.inference.checkpoint import CheckpointError, load_networks
from cyclegan.common.serialization import state_dict_mismatch

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


def _load(model: nn.Module, net: nn.Module, state: Mapping[str, torch.Tensor], spec: str) -> str:
    name = _attribute_name(model, net)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise InitFromError(f"model.{KEY}={spec} does not fit this run's {name}: {state_dict_mismatch(exc)}; match "
                            f"the file's architecture (model.gen, model.ngf, ...) or start from scratch with "
                            f"model.{KEY}=null") from None
    return name


def init_weights(model: nn.Module, spec: str) -> list[str]:
    """Load the weights ``spec`` names into ``model`` (see the module doc); returns the networks started."""
    target, direction = parse_spec(spec, default_direction="AB")
    if parse_spec(spec, default_direction="BA")[1] != direction:
        direction = None  # no suffix: the default decided, so the file says (or all it holds)
    try:
        loaded = load_networks(str(target), direction=direction)
    except UserError as exc:  # a missing file, an unreadable one, a lone generator whose direction nothing says
        asks_direction = isinstance(exc, CheckpointError) and not direction and "direction" in str(exc)
        hint = f" (here as a suffix: model.{KEY}={spec}:BA or :AB)" if asks_direction else ""
        raise InitFromError(f"model.{KEY}={spec}: {exc}{hint}") from None
    generators, discriminators = _networks(model, "G"), _networks(model, "D")
    wanted = [direction] if direction else sorted(loaded.generators)
    started = []
    for d in wanted:
        if d not in loaded.generators or d not in generators:
            whose = "the file" if d not in loaded.generators else "this model"
            raise InitFromError(f"model.{KEY}={spec}: {whose} has no {d} generator")
        started.append(_load(model, generators[d], loaded.generators[d].state_dict(), spec))
        if d in loaded.discriminators and d in discriminators:  # a file without one leaves it as initialised
            started.append(_load(model, discriminators[d], loaded.discriminators[d].state_dict(), spec))
    log.info("model.%s=%s: %s start from its weights%s", KEY, spec, ", ".join(started),
             "" if len(started) >= len(generators) + len(discriminators) else "; the others as initialised")
    return started
