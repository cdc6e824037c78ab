"""Load trained generators for inference, safely.

Three kinds of file are understood, all read with ``torch.load(..., weights_only=True)``:

* a Lightning training checkpoint (``.ckpt``): the generator is rebuilt from
  ``hyper_parameters`` and its weights taken from ``state_dict["G_AB.*"]`` / ``["G_BA.*"]``;
* a generator exported by :mod:`cyclegan.inference.export` (``{"format": "cyclegan-generator", ...}``);
* a state dict released by the official CycleGAN code (``latest_net_G_A.pth``); the
  architecture is then given by ``gen`` / ``gen_kwargs`` (default ``resnet_9blocks``).

A file that cannot be read with ``weights_only=True`` (a pickle holding arbitrary Python
objects) is refused: unpickling it could run arbitrary code.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from cyclegan.errors import MissingFileError, UserError, first_line

__all__ = [
    "CheckpointError",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "safe_load",
    "load_generator",
    "load_generators",
    "build_from_spec",
    "generator_spec",
]

EXPORT_FORMAT = "cyclegan-generator"
EXPORT_VERSION = 1
DIRECTIONS = ("AB", "BA")

# hyper_parameters key of the LightningModule -> build_generator keyword
_HPARAM_TO_KWARG = {
    "ngf": "ngf",
    "n_blocks": "n_blocks",
    "unet_depth": "depth",
    "norm": "norm",
    "dropout": "dropout",
    "in_channels": "in_channels",
    "out_channels": "out_channels",
    "input_nc": "in_channels",
    "output_nc": "out_channels",
}


class CheckpointError(UserError, ValueError):
    """A checkpoint/generator file that exists but cannot be used (one-line message)."""


def _build_generator(name: str, **kwargs: Any) -> nn.Module:
    from cyclegan.models import build_generator  # lazy: keep this module light to import

    return build_generator(name, **kwargs)


def _load_reference(net: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    try:
        from cyclegan.models import load_reference_weights
    except ImportError:  # pragma: no cover - models package without the helper
        net.load_state_dict(state_dict)
        return
    load_reference_weights(net, state_dict)


def safe_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with user-facing errors.

    Raises FileNotFoundError (naming the path) or CheckpointError (one line) when the file
    is not a plain tensors/containers pickle.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"no such file: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, expected a checkpoint file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - classify below
        msg = str(exc)
        if "weights_only" in msg or "GLOBAL" in msg or "Unsupported global" in msg:
            m = re.search(r"GLOBAL ([\w.]+)", msg)
            what = f" (it references {m.group(1)})" if m else ""
            raise CheckpointError(
                f"refusing to load {path}: not a plain weights file{what}; unpickling it would "
                "need arbitrary code execution (we only load with weights_only=True). If you "
                "trust the file, re-save its tensors as a state dict, e.g. torch.save(torch.load(p, "
                "weights_only=False)['state_dict'], 'weights.pt')"
            ) from None
        first = msg.strip().splitlines()[0] if msg.strip() else ""
        raise CheckpointError(
            f"cannot read {path} as a PyTorch file ({type(exc).__name__}: {first})"
        ) from None


def _strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Entries under ``prefix`` with it removed (and torch.compile's ``_orig_mod.`` dropped)."""
    clean = ((k.replace("_orig_mod.", ""), v) for k, v in state_dict.items())
    return {k[len(prefix):]: v for k, v in clean if k.startswith(prefix)}


def _normalize_direction(direction: str) -> str:
    d = str(direction).upper().replace("->", "").replace("2", "").replace("_", "")
    if d not in DIRECTIONS:
        raise CheckpointError(f"direction must be 'AB' or 'BA', got {direction!r}")
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


def generator_spec(hparams: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, build_generator kwargs) from a LightningModule's ``hyper_parameters``."""
    name = hparams.get("gen") or hparams.get("generator") or hparams.get("netG")
    if not isinstance(name, str):
        raise CheckpointError("checkpoint hyper_parameters has no generator name ('gen')")
    kwargs = {kw: hparams[hp] for hp, kw in _HPARAM_TO_KWARG.items() if hparams.get(hp) is not None}
    return name, kwargs


def build_from_spec(name: str, gen_kwargs: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                    *, reference: bool = False, source: str = "") -> nn.Module:
    """Build generator ``name`` and load ``state_dict`` into it (strict); eval mode."""
    where = f"{source}: " if source else ""
    try:
        net = _build_generator(name, **dict(gen_kwargs))
    except (ValueError, TypeError, KeyError) as exc:
        first = first_line(exc)
        raise CheckpointError(f"{where}cannot build generator {name!r} {dict(gen_kwargs)}: {first}") from None
    try:
        if reference:
            _load_reference(net, state_dict)
        else:
            net.load_state_dict(state_dict)
    except (RuntimeError, KeyError, ValueError) as exc:
        first = first_line(exc)
        raise CheckpointError(
            f"{where}weights do not fit generator {name!r} {dict(gen_kwargs)} ({first})"
        ) from None
    net.eval()
    net.requires_grad_(False)
    return net


def _from_lightning(ckpt: Mapping[str, Any], direction: str, path: Path) -> nn.Module:
    hparams = ckpt.get("hyper_parameters") or {}
    name, kwargs = generator_spec(hparams)
    prefix = f"G_{direction}."
    sd = _strip_prefix(ckpt["state_dict"], prefix)
    if not sd:
        raise CheckpointError(f"{path}: no '{prefix}*' weights in the checkpoint's state_dict")
    return build_from_spec(name, kwargs, sd, source=str(path))


def _from_export(obj: Mapping[str, Any], path: Path) -> nn.Module:
    version = obj.get("version")
    if version != EXPORT_VERSION:
        raise CheckpointError(f"{path}: unsupported {EXPORT_FORMAT} version {version!r} (expected {EXPORT_VERSION})")
    return build_from_spec(obj["gen"], obj.get("gen_kwargs") or {}, obj["state_dict"], source=str(path))


def load_generator(path: str | os.PathLike, direction: str = "AB", map_location: Any = "cpu",
                   gen: str | None = None, **gen_kwargs: Any) -> nn.Module:
    """Load one generator (eval mode, no grad) from a .ckpt, an exported file or a reference .pth.

    ``direction`` ("AB" or "BA") picks G_AB / G_BA of a training checkpoint (ignored for
    single-generator files). ``gen`` / ``gen_kwargs`` give the architecture of a bare state
    dict (default ``resnet_9blocks``); for a .ckpt they override the stored hyper-parameters.
    TorchScript files (see :func:`cyclegan.inference.export.load_exported`) are accepted too.
    """
    path = Path(path)
    direction = _normalize_direction(direction)
    if path.exists() and path.is_file() and _is_torchscript(path):
        from cyclegan.inference.export import load_exported

        return load_exported(path, map_location=map_location)
    obj = safe_load(path, map_location)
    kind = _kind(obj)
    if kind == "lightning":
        if gen is not None or gen_kwargs:
            name, kwargs = generator_spec(obj.get("hyper_parameters") or {})
            kwargs.update(gen_kwargs)
            sd = _strip_prefix(obj["state_dict"], f"G_{direction}.")
            if not sd:
                raise CheckpointError(f"{path}: no 'G_{direction}.*' weights in the checkpoint's state_dict")
            return build_from_spec(gen or name, kwargs, sd, source=str(path))
        return _from_lightning(obj, direction, path)
    if kind == "export":
        return _from_export(obj, path)
    if kind in ("state_dict", "wrapped_state_dict"):
        sd = obj if kind == "state_dict" else obj["state_dict"]
        return build_from_spec(gen or "resnet_9blocks", gen_kwargs, sd, reference=True, source=str(path))
    raise CheckpointError(
        f"{path}: not a Lightning checkpoint, an exported generator or a generator state dict"
    )


def load_generators(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, nn.Module]:
    """Both generators of a Lightning training checkpoint: ``{"AB": G_AB, "BA": G_BA}``."""
    path = Path(path)
    obj = safe_load(path, map_location)
    if _kind(obj) != "lightning":
        raise CheckpointError(f"{path}: not a Lightning training checkpoint (it holds one generator at most)")
    return {d: _from_lightning(obj, d, path) for d in DIRECTIONS}


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files holding ``<name>/code/`` (torch.save ones do not)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any("/code/" in n for n in zf.namelist()[:200])
    except (zipfile.BadZipFile, OSError):
        return False


def lcm_multiple(modules) -> int:
    m = 1
    for g in modules:
        m = math.lcm(m, int(getattr(g, "size_multiple", 1) or 1))
    return m
