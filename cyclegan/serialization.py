"""Reading the tensor files a user names (checkpoints, exported generators, reference weights), safely.

:func:`safe_load` is the one ``torch.load`` for such files: always ``weights_only=True`` (only
tensors and plain containers are unpickled, so no code in the file runs), with one-line errors.
TorchScript archives are programs, not weights: their code runs when they are loaded.
:func:`is_torchscript` recognises them so that they are refused with a clear message; they are
loaded only where the user asks for it explicitly (:mod:`cyclegan.inference.checkpoint`).
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from cyclegan.errors import MissingFileError, UserError, first_line

__all__ = ["CheckpointError", "is_torchscript", "torchscript_refusal", "safe_load"]

# Top-level modules whose globals an honest weights file may hold (a Lightning checkpoint's
# AttributeDict, a numpy scalar, an OmegaConf node): weights_only refuses them only because
# torch does not allow-list them, so re-saving the tensors is sound advice. Any other global
# (os.system, posix.system, builtins.eval, subprocess.*) is what a malicious pickle uses.
_BENIGN_GLOBAL_MODULES = {"torch", "numpy", "collections", "pytorch_lightning", "lightning",
                          "lightning_fabric", "omegaconf", "pathlib", "typing", "_codecs", "datetime"}


class CheckpointError(UserError, ValueError):
    """A checkpoint/generator file that exists but cannot be used (one-line message)."""


def is_torchscript(path: str | os.PathLike) -> bool:
    """TorchScript archives are zip files holding ``<name>/code/`` (torch.save ones do not)."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any("/code/" in n for n in zf.namelist()[:200])
    except (zipfile.BadZipFile, OSError):
        return False


def torchscript_refusal(path: str | os.PathLike, how_to_allow: str = "") -> str:
    """The one-line refusal for a TorchScript archive given where weights were expected."""
    allow = f"; if you trust it, {how_to_allow}" if how_to_allow else ""
    return (f"refusing to load {path}: it is a TorchScript archive, a program whose code runs when it is "
            f"loaded, not a weights file{allow}")


def _unpickling_refusal(path: Path, msg: str) -> str:
    m = re.search(r"GLOBAL ([\w.]+)", msg)
    name = m.group(1) if m else ""
    what = f" (it references {name})" if name else ""
    head = (f"refusing to load {path}: not a plain weights file{what}; unpickling it would need arbitrary "
            "code execution (we only load with weights_only=True)")
    if name and name.split(".")[0] not in _BENIGN_GLOBAL_MODULES:
        return head + "; this is how a malicious file runs commands: do not load it"
    return (head + ". If you trust the file, re-save its tensors as a state dict, e.g. "
            "torch.save(torch.load(p, weights_only=False)['state_dict'], 'weights.pt')")


def safe_load(path: str | os.PathLike, map_location: Any = "cpu", *, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` with user-facing errors.

    ``mmap=True`` maps the file instead of reading it: a caller that reads a few entries of a large
    checkpoint (its global step) then costs milliseconds.

    Raises MissingFileError (naming the path) or CheckpointError (one line) when the file is a
    folder, a TorchScript archive or not a plain tensors/containers pickle.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"no such file: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, expected a checkpoint file")
    if is_torchscript(path):  # torch.load would hand it to torch.jit.load (or fail with advice to)
        raise CheckpointError(torchscript_refusal(path))
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - classify below
        msg = str(exc)
        if "weights_only" in msg or "GLOBAL" in msg or "Unsupported global" in msg:
            raise CheckpointError(_unpickling_refusal(path, msg)) from None
        first = first_line(exc) if msg.strip() else ""
        raise CheckpointError(f"cannot read {path} as a PyTorch file ({type(exc).__name__}: {first})") from None
