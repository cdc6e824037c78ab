"""The one loader of trained generators for inference: checkpoints, exports, reference weights.

Three kinds of file are understood, all read with ``torch.load(..., weights_only=True)``
(:func:`cyclegan.common.serialization.safe_load`):

* a Lightning training checkpoint (``.ckpt``) of any model family: the generator of a direction is
  rebuilt from ``checkpoint["generators"][direction]`` (its registry spec and state-dict prefix; a CUT
  checkpoint has the one direction it trained), or, in older CycleGAN checkpoints without that entry,
  from ``hyper_parameters`` with its weights under ``state_dict["G_AB.*"]`` / ``["G_BA.*"]``;
* a generator exported by :mod:`cyclegan.inference.export` (``{"format": "cyclegan-generator", ...}``);
* a state dict released by the official CycleGAN code (``latest_net_G_A.pth``); the
  architecture is then given by ``gen`` / ``gen_kwargs`` (default ``resnet_9blocks``).

A file that cannot be read with ``weights_only=True`` (a pickle holding arbitrary Python
objects) is refused: unpickling it could run arbitrary code.

TorchScript archives (``--export ts``) are programs: loading one runs its code. They are loaded
only when the user asks for it explicitly, ``allow_torchscript=True`` (``--allow-torchscript`` on
the command line), and a warning then says that the file's code will run. Neither a file's name
(``*.ts``) nor its content counts as consent: without the flag every TorchScript file is refused
in one line.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from cyclegan.common.directions import DIRECTIONS, as_direction
from cyclegan.common.errors import MissingFileError, first_line
from cyclegan.inference.pretrained import card_direction, resolve as resolve_pretrained
from cyclegan.models import build_discriminator, build_generator, load_reference_weights
from cyclegan.models.reference import OFFICIAL_WEIGHTS
from cyclegan.models.spec import discriminator_args, generator_args
from cyclegan.common.serialization import (
    CheckpointError, is_torchscript, safe_load, state_dict_mismatch, torchscript_refusal,
)

__all__ = [
    "CheckpointError",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "safe_load",
    "load_generator",
    "load_generators",
    "load_networks",
    "LoadedNetworks",
    "load_exported",
    "load_torchscript",
    "build_from_spec",
    "generator_spec",
    "is_training_checkpoint",
]

log = logging.getLogger(__name__)

EXPORT_FORMAT = "cyclegan-generator"
EXPORT_VERSION = 1
ALLOW_TORCHSCRIPT_HINT = "pass --allow-torchscript (allow_torchscript=True)"
TS_META = "cyclegan.json"  # the metadata entry that export_torchscript writes into the archive

def _strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Entries under ``prefix`` with it removed (and torch.compile's ``_orig_mod.`` dropped)."""
    clean = ((k.replace("_orig_mod.", ""), v) for k, v in state_dict.items())
    return {k[len(prefix):]: v for k, v in clean if k.startswith(prefix)}


def _normalize_direction(direction: str) -> str:
    d = as_direction(direction)
    if d is None:
        raise CheckpointError(f"direction must be 'AB' or 'BA' (or A2B/B2A), got {direction!r}")
    return d


def _kind(obj: Any) -> str:
    if isinstance(obj, Mapping):
        if obj.get("format") == EXPORT_FORMAT:
            return "export"
        if "state_dict" in obj and ("hyper_parameters" in obj or "pytorch-lightning_version" in obj):
            return "lightning"
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return "state_dict"
        if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
            return "wrapped_state_dict"
    return "unknown"


def is_training_checkpoint(obj: Any) -> bool:
    """Whether a loaded file is a Lightning training checkpoint (both generators, discriminators, ...)."""
    return _kind(obj) == "lightning"


def generator_spec(hparams: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, build_generator kwargs) from a LightningModule's ``hyper_parameters``."""
    name, kwargs = generator_args(hparams, default=None)
    if not isinstance(name, str):
        raise CheckpointError("checkpoint hyper_parameters has no generator name ('gen')")
    return name, kwargs


def build_from_spec(name: str, gen_kwargs: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                    *, reference: bool = False, source: str = "") -> nn.Module:
    """Build generator ``name`` and load ``state_dict`` into it (strict); eval mode."""
    where = f"{source}: " if source else ""
    try:
        net = build_generator(name, **dict(gen_kwargs))
    except (ValueError, TypeError, KeyError) as exc:
        first = first_line(exc)
        raise CheckpointError(f"{where}cannot build generator {name!r} {dict(gen_kwargs)}: {first}") from None
    try:
        if reference:
            load_reference_weights(net, state_dict)
        else:
            net.load_state_dict(state_dict)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{where}weights do not fit generator {name!r} {dict(gen_kwargs)} ({state_dict_mismatch(exc)})"
        ) from None
    net.eval()
    net.requires_grad_(False)
    return net


def _missing_direction(path: Path, direction: str, have: list[str]) -> CheckpointError:
    other = have[0] if len(have) == 1 else ", ".join(have)
    return CheckpointError(
        f"{path} has a generator for {other} only (a one-direction model such as CUT), not for {direction}: "
        f"ask for {other} ({path}:{other}, --direction {other}), or use a checkpoint trained with "
        f"model.direction={direction}"
    )


def _lightning_generator(ckpt: Mapping[str, Any], direction: str, path: Path) -> tuple[str, dict, dict]:
    """``(name, build kwargs, state dict)`` of a training checkpoint's ``direction`` generator.

    A checkpoint names its generators in ``checkpoint["generators"]`` (every model family writes it,
    cyclegan/gan/family.py): ``{direction: {"prefix", "spec": {"name", "options"}}}``. Older CycleGAN
    checkpoints lack it: their generators are ``G_AB.`` / ``G_BA.``, built from ``hyper_parameters``.
    """
    entries = ckpt.get("generators")
    if isinstance(entries, Mapping) and entries:
        entry = entries.get(direction)
        if entry is None:
            raise _missing_direction(path, direction, sorted(entries))
        prefix, spec = entry["prefix"], entry.get("spec") or {}
        name, kwargs = spec.get("name"), dict(spec.get("options") or {})
        if not isinstance(name, str):  # a generator from outside the registry: its family's hyper_parameters
            name, kwargs = generator_spec(ckpt.get("hyper_parameters") or {})
    else:
        prefix = f"G_{direction}."
        name, kwargs = generator_spec(ckpt.get("hyper_parameters") or {})
    sd = _strip_prefix(ckpt["state_dict"], prefix)
    if not sd:
        raise CheckpointError(f"{path}: no '{prefix}*' weights in the checkpoint's state_dict")
    return name, kwargs, sd


def _from_lightning(ckpt: Mapping[str, Any], direction: str, path: Path, **overrides: Any) -> nn.Module:
    name, kwargs, sd = _lightning_generator(ckpt, direction, path)
    gen = overrides.pop("gen", None)
    return _translating(build_from_spec(gen or name, {**kwargs, **overrides}, sd, source=str(path)), direction)


def _translating(net: nn.Module, direction: str | None) -> nn.Module:
    """Remember which way ``net`` translates: an export writes it, so evaluate.py needs no direction=."""
    if direction is not None:
        net.cyclegan_direction = direction
    return net


def _from_export(obj: Mapping[str, Any], path: Path) -> nn.Module:
    version = obj.get("version")
    if version != EXPORT_VERSION:
        raise CheckpointError(f"{path}: unsupported {EXPORT_FORMAT} version {version!r} (expected {EXPORT_VERSION})")
    net = build_from_spec(obj["gen"], obj.get("gen_kwargs") or {}, obj["state_dict"], source=str(path))
    return _translating(net, as_direction(obj.get("direction")) if obj.get("direction") else None)


def load_torchscript(path: str | os.PathLike, map_location: Any = "cpu") -> nn.Module:
    """Load a TorchScript generator (its code runs: call this only for files the user trusts).

    Returns an eval-mode module with an int ``size_multiple`` (from the archive's metadata).
    """
    extra = {TS_META: ""}
    try:
        module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
        meta = json.loads(extra[TS_META] or "{}")
    except (RuntimeError, ValueError) as exc:  # a damaged archive, or one torch cannot read
        raise CheckpointError(f"cannot load {path} as TorchScript ({first_line(exc)})") from None
    module.eval()
    module.size_multiple = int(meta.get("size_multiple", 1))
    return module


def load_generator(path: str | os.PathLike, direction: str | None = "AB", map_location: Any = "cpu",
                   gen: str | None = None, *, allow_torchscript: bool = False, state_dict_gen: str | None = None,
                   **gen_kwargs: Any) -> nn.Module:
    """Load one generator (eval mode, no grad) from a .ckpt, an exported file or a reference .pth.

    ``direction`` ("AB" or "BA") picks G_AB / G_BA of a training checkpoint (ignored for
    single-generator files); None: the one direction a one-direction checkpoint (CUT) has, else AB. ``gen`` / ``gen_kwargs`` give the architecture of a bare state
    dict (default ``resnet_9blocks``); for a .ckpt they override the stored hyper-parameters.
    ``state_dict_gen``: the architecture of a bare state dict only (``--gen``: a checkpoint in the
    same chain keeps its own). TorchScript files are loaded only with ``allow_torchscript=True``
    (whatever their name; a warning says that their code runs); without it they are refused.
    """
    path = resolve_pretrained(path)  # ``pretrained:<name>``: a generator bundled with the package
    direction = _normalize_direction(direction) if direction is not None else None
    if path.suffix.lower() == ".pth" and not path.exists():  # the official code's name for its weights
        raise MissingFileError(f"no such file: {path}; {OFFICIAL_WEIGHTS}")
    if is_torchscript(path):
        if not allow_torchscript:
            raise CheckpointError(torchscript_refusal(path, ALLOW_TORCHSCRIPT_HINT))
        log.warning("loading TorchScript %s: the code in this file runs (--allow-torchscript)", path)
        return load_torchscript(path, map_location=map_location)
    obj = safe_load(path, map_location)
    kind = _kind(obj)
    if kind == "lightning":  # gen / gen_kwargs, when given, override what the checkpoint stores
        if direction is None:  # not asked for: the one direction a one-direction model (CUT) has, else AB
            have = lightning_directions(obj)
            direction = have[0] if len(have) == 1 else "AB"
        return _from_lightning(obj, direction, path, **({"gen": gen} if gen else {}), **gen_kwargs)
    if kind == "export":
        return _from_export(obj, path)
    if kind in ("state_dict", "wrapped_state_dict"):
        sd = obj if kind == "state_dict" else obj["state_dict"]
        arch = gen or state_dict_gen or "resnet_9blocks"
        return build_from_spec(arch, gen_kwargs, sd, reference=True, source=str(path))
    raise CheckpointError(
        f"{path}: not a Lightning checkpoint, an exported generator or a generator state dict"
    )


def load_exported(path: str | os.PathLike, map_location: Any = "cpu", *, allow_torchscript: bool = False) -> nn.Module:
    """Load a generator written by :func:`cyclegan.inference.export.export_state_dict` or
    :func:`~cyclegan.inference.export.export_torchscript` (the TorchScript rule of :func:`load_generator`).

    Returns an eval-mode module with an int ``size_multiple`` attribute. (ONNX files are run
    with onnxruntime, not loaded back into torch.)
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx" and path.exists():
        raise CheckpointError(f"{path}: ONNX models are run with onnxruntime, not loaded into torch")
    return load_generator(path, map_location=map_location, allow_torchscript=allow_torchscript)


def load_generators(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, nn.Module]:
    """The generators of a Lightning training checkpoint by direction: ``{"AB": G_AB, "BA": G_BA}`` for
    CycleGAN, the one trained direction for a one-direction family such as CUT."""
    path = Path(path)
    obj = safe_load(path, map_location)
    if _kind(obj) != "lightning":
        raise CheckpointError(f"{path}: not a Lightning training checkpoint (it holds one generator at most)")
    return {d: _from_lightning(obj, d, path) for d in lightning_directions(obj)}


def lcm_multiple(modules) -> int:
    m = 1
    for g in modules:
        m = math.lcm(m, int(getattr(g, "size_multiple", 1) or 1))
    return m


def size_multiple_of(generator: nn.Module) -> int:
    """What a generator's (or a chain's) input height and width must be multiples of."""
    members = getattr(generator, "generators", None)
    if members is not None and getattr(generator, "size_multiple", None) is None:
        return lcm_multiple(members)
    return int(getattr(generator, "size_multiple", 1) or 1)


# ----------------------------------------------------------------------------------------------------------
# every network of a file, by direction (evaluation reads checkpoints through this)
# ----------------------------------------------------------------------------------------------------------

# CycleGAN's discriminators by the direction whose OUTPUT each one judges: D_B sees A -> B translations.
CYCLEGAN_DISCRIMINATORS = {"AB": "D_B.", "BA": "D_A."}


@dataclass
class LoadedNetworks:
    """What one file holds, by translation direction (:func:`load_networks`)."""

    generators: dict[str, nn.Module]  # direction -> the generator that translates that way
    discriminators: dict[str, nn.Module] = field(default_factory=dict)  # direction -> D judging its output
    hparams: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None
    global_step: int | None = None
    kind: str = "lightning"  # lightning | export | state_dict | torchscript


def lightning_directions(ckpt: Mapping[str, Any]) -> list[str]:
    """The directions a training checkpoint translates: its ``generators`` entry (every model family
    writes one), else CycleGAN's two."""
    entry = ckpt.get("generators")
    return [d for d in DIRECTIONS if d in entry] if isinstance(entry, Mapping) else list(DIRECTIONS)


def _lightning_discriminators(ckpt: Mapping[str, Any], path: Path) -> dict[str, nn.Module]:
    """``{direction: D}`` of a training checkpoint: its ``discriminators`` entry ({direction: {"prefix",
    "spec"}}, as every model family writes it), else CycleGAN's D_B / D_A; a D without a registry spec is
    built from ``hyper_parameters``. A direction without weights under its prefix has no discriminator
    (its D accuracy is then not applicable)."""
    entry = ckpt.get("discriminators")
    entries = ({d: e for d, e in entry.items() if isinstance(e, Mapping) and "prefix" in e}
               if isinstance(entry, Mapping) else {d: {"prefix": p} for d, p in CYCLEGAN_DISCRIMINATORS.items()})
    out = {}
    for direction, e in entries.items():
        sd = _strip_prefix(ckpt["state_dict"], e["prefix"])
        if not sd:
            continue
        spec = e.get("spec") or {}
        name, kwargs = ((spec["name"], dict(spec.get("options") or {})) if isinstance(spec.get("name"), str)
                        else discriminator_args(ckpt.get("hyper_parameters") or {}))
        try:
            net = build_discriminator(name, **kwargs)
            net.load_state_dict(sd)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: the '{e['prefix']}*' weights do not fit discriminator {name!r} {kwargs} "
                                  f"({state_dict_mismatch(exc)})") from None
        out[direction] = net.eval().requires_grad_(False)
    return out


def load_networks(path: str | os.PathLike, direction: str | None = None, map_location: Any = "cpu", *,
                  allow_torchscript: bool = False) -> LoadedNetworks:
    """Every network a file holds, read once: a training checkpoint gives its generators and
    discriminators by direction; a lone generator (``pretrained:NAME``, an export, a bare state dict,
    named TorchScript) gives ``{direction: G}``, the direction being ``direction`` when given, else what
    the file (an export's ``direction`` entry) or the bundled generator's model card says. A lone
    generator whose direction nothing names is refused in one line asking for it.
    """
    spec = path
    path = resolve_pretrained(path)
    if is_torchscript(path):
        kind, own = "torchscript", None
        G = load_generator(path, map_location=map_location, allow_torchscript=allow_torchscript)
    else:
        obj = safe_load(path, map_location)
        kind = _kind(obj)
        if kind == "lightning":
            return LoadedNetworks(
                generators={d: _from_lightning(obj, d, path) for d in lightning_directions(obj)},
                discriminators=_lightning_discriminators(obj, path),
                hparams=dict(obj.get("hyper_parameters") or {}),
                epoch=obj.get("epoch"), global_step=obj.get("global_step"))
        if kind == "export":
            G = _from_export(obj, path)
            own = getattr(G, "cyclegan_direction", None)
        elif kind in ("state_dict", "wrapped_state_dict"):
            sd = obj if kind == "state_dict" else obj["state_dict"]
            G, own = build_from_spec("resnet_9blocks", {}, sd, reference=True, source=str(path)), None
        else:
            raise CheckpointError(f"{path}: not a Lightning checkpoint, an exported generator or a generator state dict")
    chosen = direction or own or card_direction(spec)
    if chosen is None:
        raise CheckpointError(f"{spec}: one generator, and nothing says which way it translates: "
                              "pass direction=AB (domain A -> B of the data) or direction=BA")
    return LoadedNetworks(generators={_normalize_direction(chosen): G}, kind=kind)
