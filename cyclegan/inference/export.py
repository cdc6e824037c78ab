"""Export a single generator for deployment (loading it back: :mod:`cyclegan.inference.checkpoint`).

Formats:

* ``state_dict`` (``.pt``): ``{"format": "cyclegan-generator", "version": 1, "gen": name,
  "gen_kwargs": {...}, "size_multiple": m, "state_dict": {...}}`` -- plain tensors and
  containers, loadable with ``torch.load(weights_only=True)`` and by
  :func:`cyclegan.inference.checkpoint.load_generator`;
* ``ts`` (TorchScript, ``.ts``): traced on CPU, dynamic batch/height/width, metadata in the
  archive's ``extra/cyclegan.json``. A TorchScript file is a program: the loader runs it only when
  the user passes ``--allow-torchscript`` (``allow_torchscript=True``), whatever the file's name;
* ``onnx`` (``.onnx``): ``torch.onnx.export`` (dynamo exporter, legacy exporter as fallback),
  input ``image`` / output ``translated``, dynamic axes batch/height/width; metadata in the
  model's ``metadata_props``.

Inputs are NCHW float in [-1, 1], height and width multiples of ``size_multiple`` (the
exported graphs do not pad; :mod:`cyclegan.inference.translate` does that for any image size).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cyclegan.common.errors import first_line
from cyclegan.common.files import atomic_write
from cyclegan.inference.checkpoint import EXPORT_FORMAT, EXPORT_VERSION, TS_META, CheckpointError, size_multiple_of
from cyclegan.inference.write_errors import reporting_write_errors, without_temp_names
from cyclegan.models import network_spec

__all__ = [
    "FORMATS",
    "export_generator",
    "export_state_dict",
    "export_torchscript",
    "export_onnx",
]

FORMATS = ("state_dict", "half", "ts", "onnx")
_FORMAT_ALIASES = {
    "state_dict": "state_dict", "pt": "state_dict", "pth": "state_dict",
    "half": "half", "fp16": "half",
    "ts": "ts", "torchscript": "ts", "jit": "ts",
    "onnx": "onnx",
}

_SUFFIXES = {"state_dict": ".pt", "half": ".pt", "ts": ".ts", "onnx": ".onnx"}


def _spec(generator: nn.Module, gen: str | None, gen_kwargs: dict | None) -> tuple[str, dict]:
    spec = network_spec(generator)  # how the registry built it
    name = gen or (spec["name"] if spec else None)
    kwargs = dict(gen_kwargs) if gen_kwargs is not None else (spec["options"] if spec else None)
    if name is None or kwargs is None:
        raise CheckpointError(
            "cannot export this module as a state dict: its architecture is unknown "
            "(load it with cyclegan.inference.checkpoint.load_generator, or pass gen= and gen_kwargs=); "
            "chains of generators export to 'ts' or 'onnx' only"
        )
    return name, kwargs


def _meta(generator: nn.Module) -> dict[str, Any]:
    meta: dict[str, Any] = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
                            "size_multiple": size_multiple_of(generator)}
    spec = network_spec(generator)
    if spec:
        meta["gen"], meta["gen_kwargs"] = spec["name"], spec["options"]
    return meta


def export_state_dict(generator: nn.Module, path: str | os.PathLike, *, gen: str | None = None,
                      gen_kwargs: dict | None = None, half: bool = False) -> Path:
    """Write the generator's weights + how to rebuild it (weights_only-loadable); ``half``: its floating
    weights in float16 (half the file; loading copies them into a float32 network)."""
    name, kwargs = _spec(generator, gen, gen_kwargs)
    path = Path(path)
    _make_parent(path)
    obj = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "gen": name,
        "gen_kwargs": kwargs,
        "size_multiple": size_multiple_of(generator),
        "state_dict": {k: _stored(v, half) for k, v in generator.state_dict().items()},
    }
    if getattr(generator, "cyclegan_direction", None):  # which way it translates (evaluate.py reads it)
        obj["direction"] = generator.cyclegan_direction
    with reporting_write_errors(path, torch_writer=True), atomic_write(path) as tmp:
        torch.save(obj, tmp)
    return path


def _make_parent(path: Path) -> None:
    """Create the output's folder first, so that a path that cannot be written fails before any work."""
    with reporting_write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)


def _stored(tensor: torch.Tensor, half: bool) -> torch.Tensor:
    tensor = tensor.detach().cpu().contiguous()
    return tensor.half() if half and tensor.is_floating_point() else tensor


def _min_size(generator: nn.Module) -> int:
    m = size_multiple_of(generator)
    members = getattr(generator, "generators", None) or [generator]
    lo = max(int(getattr(g, "min_size", 1) or 1) for g in members)
    lo = max(lo, int(getattr(generator, "min_size", 1) or 1))
    return -(-lo // m) * m


def _example_shapes(generator: nn.Module) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two different non-square sizes; >= 2 x size_multiple so that no feature map is 1 px
    (tracers specialize on size-1 dims)."""
    m = size_multiple_of(generator)
    base = max(m * max(2, -(-64 // m)), _min_size(generator))
    return (base, base + m), (base + 2 * m, base)


@contextlib.contextmanager
def _quiet_torch_logs():
    """The dynamo exporter logs failed attempts (we fall back) at ERROR level; keep them quiet."""
    names = ["torch"] + [n for n in logging.root.manager.loggerDict if n.startswith("torch")]
    saved = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.CRITICAL + 1)
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


@contextlib.contextmanager
def _cpu_eval_copy(generator: nn.Module):
    """Export on CPU in fp32/eval without disturbing the caller's module."""
    was_training = generator.training
    params = list(generator.parameters()) + list(generator.buffers())
    device = params[0].device if params else torch.device("cpu")
    generator.eval()
    try:
        if device.type != "cpu":
            generator.to("cpu")
        yield generator
    finally:
        if device.type != "cpu":
            generator.to(device)
        generator.train(was_training)


def export_torchscript(generator: nn.Module, path: str | os.PathLike) -> Path:
    """Trace (falling back to scripting) with dynamic batch/height/width and save."""
    path = Path(path)
    _make_parent(path)
    (h1, w1), (h2, w2) = _example_shapes(generator)
    with _cpu_eval_copy(generator) as g, torch.no_grad():
        x1 = torch.rand(1, 3, h1, w1) * 2 - 1
        x2 = torch.rand(2, 3, h2, w2) * 2 - 1
        ref2 = g(x2)
        module = None
        errors = []
        for how in ("trace", "script"):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cand = (torch.jit.trace(g, x1, check_trace=False) if how == "trace"
                            else torch.jit.script(g))
                out2 = cand(x2)
                if out2.shape == ref2.shape and torch.allclose(out2, ref2, atol=1e-4, rtol=1e-4):
                    module = cand
                    break
                errors.append(f"{how}: output differs from eager at another input size")
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{how}: {first_line(exc)}")
        if module is None:
            raise CheckpointError("TorchScript export failed (" + "; ".join(errors) + ")")
        with reporting_write_errors(path, torch_writer=True), atomic_write(path) as tmp:
            torch.jit.save(module, str(tmp), _extra_files={TS_META: json.dumps(_meta(g))})
    return path


def export_onnx(generator: nn.Module, path: str | os.PathLike, *, opset: int | None = None,
                dynamo: bool | None = None) -> Path:
    """ONNX with dynamic batch/height/width (``image`` -> ``translated``).

    ``dynamo=None`` tries the dynamo exporter (torch's default) and falls back to the legacy
    TorchScript-based exporter; True/False forces one.
    """
    path = Path(path)
    _make_parent(path)
    (h1, w1), _ = _example_shapes(generator)
    lo = _min_size(generator)
    meta = _meta(generator)
    with reporting_write_errors(path), atomic_write(path, suffix=".onnx") as tmp:  # the exporters pick the format by extension
        errors = []
        with _cpu_eval_copy(generator) as g, torch.no_grad():
            x = torch.rand(1, 3, h1, w1) * 2 - 1
            attempts = [True, False] if dynamo is None else [bool(dynamo)]
            done = False
            for use_dynamo in attempts:
                try:
                    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_torch_logs():
                        warnings.simplefilter("ignore")
                        kwargs: dict[str, Any] = dict(input_names=["image"], output_names=["translated"])
                        if opset is not None:
                            kwargs["opset_version"] = opset
                        if use_dynamo:
                            D = torch.export.Dim
                            torch.onnx.export(g, (x,), str(tmp), dynamo=True, external_data=False,
                                              dynamic_shapes=({0: D("batch"), 2: D("height", min=lo),
                                                               3: D("width", min=lo)},),
                                              verbose=False, **kwargs)
                        else:
                            axes = {0: "batch", 2: "height", 3: "width"}
                            torch.onnx.export(g, (x,), str(tmp), dynamo=False,
                                              dynamic_axes={"image": axes, "translated": axes}, **kwargs)
                    done = True
                    meta["exporter"] = "dynamo" if use_dynamo else "legacy"
                    break
                except OSError:  # the file cannot be written: the other exporter would fail the same way
                    raise
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{'dynamo' if use_dynamo else 'legacy'}: {without_temp_names(first_line(exc))}")
                    with contextlib.suppress(OSError):
                        tmp.unlink()
            if not done:
                raise CheckpointError("ONNX export failed (" + "; ".join(errors) + ")")
        try:  # attach metadata when the onnx package is around (it is, for torch.onnx.export)
            import onnx

            model = onnx.load(str(tmp))
            for key, value in (("cyclegan", json.dumps(meta)), ("size_multiple", str(meta["size_multiple"]))):
                prop = model.metadata_props.add()
                prop.key, prop.value = key, value
            onnx.save(model, str(tmp))
        except ImportError:  # pragma: no cover
            pass
    return path


def export_generator(generator: nn.Module, path: str | os.PathLike, format: str = "state_dict", **kwargs: Any) -> Path:
    """Export in ``format`` ("state_dict" | "ts" | "onnx"; aliases pt, torchscript)."""
    fmt = _FORMAT_ALIASES.get(str(format).lower())
    if fmt is None:
        raise CheckpointError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if Path(path).is_dir():
        raise CheckpointError(f"cannot export to {path}: it is a folder; give the file to write, e.g. "
                              f"{Path(path) / ('generator' + _SUFFIXES[fmt])}")
    if fmt == "half":
        return export_state_dict(generator, path, half=True, **kwargs)
    fn = {"state_dict": export_state_dict, "ts": export_torchscript, "onnx": export_onnx}[fmt]
    return fn(generator, path, **kwargs)
