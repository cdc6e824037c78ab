"""Reading the tensor files a user names (checkpoints, exported generators, reference weights), safely.

:func:`safe_load` is the one ``torch.load`` for such files: always ``weights_only=True`` (only
tensors and plain containers are unpickled, so no code in the file runs), with one-line errors.
TorchScript archives are programs, not weights: their code runs when they are loaded.
:func:`is_torchscript` recognises them so that they are refused with a clear message; they are
loaded only where the user asks for it explicitly (:mod:`cyclegan.inference.checkpoint`).
"""

from __future__ import annotations

import itertools
import os
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from cyclegan.common.errors import MissingFileError, UserError, first_line

__all__ = ["CheckpointError", "is_torchscript", "torchscript_refusal", "pickle_globals", "safe_load",
           "state_dict_mismatch"]

# Globals an honest weights file may hold that torch.load(weights_only=True) still refuses (a
# Lightning checkpoint's AttributeDict, a numpy array, a date, a path, an OmegaConf node). Exact
# names: a whole module is never trusted (numpy.testing has ``runstring``, torch has ``hub.load``).
_HARMLESS_GLOBALS = {
    "datetime.datetime", "datetime.date", "datetime.time", "datetime.timedelta", "datetime.timezone",
    "collections.defaultdict", "collections.deque",
    "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath",
    "numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "pytorch_lightning.utilities.parsing.AttributeDict", "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict", "lightning.pytorch.utilities.parsing.AttributeDict",
    "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig", "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata", "omegaconf.nodes.AnyNode", "typing.Any", "builtins.dict", "builtins.list",
    "copyreg._reconstructor", "builtins.object",
}
# Classes (CamelCase names) of these modules are data types: unpickling one builds it without calling code.
_HARMLESS_CLASS_MODULES = ("numpy.dtypes", "torch.nn.modules.", "omegaconf.nodes")


class CheckpointError(UserError, ValueError):
    """A checkpoint/generator file that exists but cannot be used (one-line message)."""


def _is_torchscript_entry(name: str) -> bool:
    # torch.jit.save writes <archive>/constants.pkl and the program under <archive>/code/;
    # torch.save writes neither (data.pkl, data/<n>, version, byteorder).
    parts = name.split("/")
    return len(parts) >= 2 and (parts[-1] == "constants.pkl" or "code" in parts[1:-1])


def is_torchscript(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript archive, judged by the zip's whole central directory.

    Every entry is looked at, wherever it stands (padding entries in front hide nothing).
    """
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any(_is_torchscript_entry(info.filename) for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def torchscript_refusal(path: str | os.PathLike, how_to_allow: str = "") -> str:
    """The one-line refusal for a TorchScript archive given where weights were expected."""
    allow = f"; if you trust it, {how_to_allow}" if how_to_allow else ""
    return (f"refusing to load {path}: it is a TorchScript archive, a program whose code runs when it is "
            f"loaded, not a weights file{allow}")


# ----------------------------------------------------------------------------- pickle globals
_STRING_OPS = {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_MAX_OPCODES = 2_000_000  # a refusal message is not worth more reading than this


def _globals_in(stream) -> list[str]:
    """``module.name`` of every GLOBAL / INST / STACK_GLOBAL in one pickle, read without unpickling.

    STACK_GLOBAL takes its two names from the stack: the strings pushed last (directly or from
    the memo) are tracked, which is how pickle itself writes them.
    """
    found: list[str] = []
    recent: list[object] = []
    memo: dict[object, object] = {}
    for n, (op, arg, _) in enumerate(pickletools.genops(stream)):
        if n > _MAX_OPCODES or op.name == "STOP":
            break
        if op.name in ("GLOBAL", "INST"):
            found.append(str(arg).replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            if len(recent) >= 2 and all(isinstance(v, str) for v in recent[-2:]):
                found.append(f"{recent[-2]}.{recent[-1]}")
            else:
                found.append("(a global named indirectly)")
        if op.name in _STRING_OPS:
            recent.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
        elif op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            memo[len(memo) if op.name == "MEMOIZE" else arg] = recent[-1] if recent else None
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            recent.append(memo.get(arg))
        elif op.name not in ("FRAME", "PROTO"):
            recent.append(None)
        del recent[:-4]
    return found


def pickle_globals(path: str | os.PathLike) -> list[str]:
    """The globals (``module.name``) the pickle in a torch file references, without unpickling it.

    Reads ``<archive>/data.pkl`` of a zip file, or the leading pickles of a legacy torch.save file.
    Best effort: what cannot be parsed is left out.
    """
    found: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.filename.endswith("data.pkl"):
                        with zf.open(info) as stream:
                            found += _globals_in(stream)
        else:
            with open(path, "rb") as stream:
                for _ in range(4):  # magic number, protocol, sys info, the object (then raw storages)
                    found += _globals_in(stream)
    except Exception:  # noqa: BLE001 - a damaged pickle: keep what was read
        pass
    return list(dict.fromkeys(found))


def _torch_allowed_globals() -> set[str]:
    try:
        from torch import _weights_only_unpickler

        return set(_weights_only_unpickler._get_allowed_globals()) | {
            f"{g.__module__}.{g.__qualname__}" for g in torch.serialization.get_safe_globals() if hasattr(g, "__qualname__")}
    except Exception:  # noqa: BLE001 - a private API: without it every global is judged below
        return set()


def _harmless(name: str) -> bool:
    module, _, attr = name.rpartition(".")
    return name in _HARMLESS_GLOBALS or (
        attr[:1].isupper() and any(module == m.rstrip(".") or module.startswith(m) for m in _HARMLESS_CLASS_MODULES))


def _unpickling_refusal(path: Path, msg: str) -> str:
    """Name the global(s) that stopped the load; advice only for harmless data types, never to unpickle."""
    allowed = _torch_allowed_globals()
    refused = [g for g in pickle_globals(path) if g not in allowed]
    if not refused:
        m = re.search(r"GLOBAL ([\w.]+)", msg)
        refused = [m.group(1)] if m else []
    head = f"refusing to load {path}: not a plain weights file"
    dangerous = [g for g in refused if not _harmless(g)]
    if dangerous:
        names = ", ".join(dangerous[:3]) + (f" (+{len(dangerous) - 3} more)" if len(dangerous) > 3 else "")
        return (f"{head}: unpickling it would call {names}, which no weights file holds: this is how a malicious "
                "file runs arbitrary code; do not load it (read with weights_only=True, nothing ran)")
    if refused:
        names = ", ".join(refused[:5]) + (", ..." if len(refused) > 5 else "")
        return (f"{head}: it holds {names}, which torch.load(weights_only=True) does not unpickle; if you made "
                f"the file, allow just that type: with torch.serialization.safe_globals([{names}]): "
                "torch.load(p, weights_only=True), and save the tensors you need")
    if "Unsupported operand" in msg:  # only torch-allowed globals, but a pickle protocol its safe loader lacks
        return (f"refusing to load {path}: torch.load(weights_only=True) cannot read it ({_torch_reason(msg)}: a "
                "newer pickle protocol); have it saved again with torch.save's default protocol")
    return (f"{head}: torch.load(weights_only=True) refused it ({_torch_reason(msg)}); "
            "unpickling it could run arbitrary code, so it is not loaded")


def _torch_reason(msg: str) -> str:
    for line in msg.splitlines():
        line = line.strip()
        if line and ("error" in line.lower() or "unsupported" in line.lower()) and "weights_only" not in line:
            return line.removeprefix("WeightsUnpickler error:").strip()[:200] or "no reason given"
    return "no reason given"


def _folder_given(path: Path) -> str:
    """A folder where a checkpoint file was expected: say so, and name the checkpoints it holds."""
    # only where train.py puts them (a run folder, its checkpoints/): a folder like / is not searched
    found = [str(p) for p in itertools.islice(sorted((*path.glob("*.ckpt"), *path.glob("checkpoints/*.ckpt"))), 3)]
    hint = (f"checkpoints in it: {', '.join(found)}" if found
            else "give the file itself, e.g. <run>/checkpoints/last.ckpt")
    return f"{path} is a folder, not a checkpoint file; {hint}"


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
        raise CheckpointError(_folder_given(path))
    if is_torchscript(path):  # torch.load would hand it to torch.jit.load (or fail with advice to)
        raise CheckpointError(torchscript_refusal(path))
    try:
        with warnings.catch_warnings():  # torch's note on protocol-4 pickles: the refusal below says more
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - classify below
        msg = str(exc)
        if "weights_only" in msg or "GLOBAL" in msg or "Unsupported global" in msg:
            raise CheckpointError(_unpickling_refusal(path, msg)) from None
        first = first_line(exc) if msg.strip() else ""
        raise CheckpointError(f"cannot read {path} as a PyTorch file ({type(exc).__name__}: {first})") from None


_SIZE_MISMATCH = re.compile(r"size mismatch for ([^:]+): copying a param with shape torch\.Size\((\[[^\]]*\])\) "
                            r"from checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)")
_KEYS = re.compile(r"(Missing|Unexpected) key\(s\) in state_dict: (.+)")


def state_dict_mismatch(exc: BaseException) -> str:
    """``load_state_dict``'s multi-line error as one line that names the first key and both shapes.

    torch's first line ("Error(s) in loading state_dict for X:") names neither; the details follow.
    """
    text = str(exc)
    sizes = _SIZE_MISMATCH.findall(text)
    if sizes:
        key, stored, wanted = sizes[0]
        more = f" (+{len(sizes) - 1} more)" if len(sizes) > 1 else ""
        return f"{key} has shape {stored} in the file but {wanted} in the network{more}"
    for kind, keys in _KEYS.findall(text):
        names = [k.strip().strip('"') for k in keys.rstrip(". ").split(",")]
        more = f" (+{len(names) - 1} more)" if len(names) > 1 else ""
        return f"{kind.lower()} key {names[0]}{more}"
    return first_line(exc)
