"""torch.compile of networks, for training, evaluation and inference alike.

``model.compile`` (and ``--compile`` / ``compile=``) takes false/true, a mode name or a mapping of
``torch.compile`` arguments (:func:`compile_options`). Networks are compiled *in place*
(``nn.Module.compile``): class, attributes and state-dict keys stay as they are. Inference and
evaluation add ``auto`` (compile on a CPU for enough images) and :func:`eager_fallback` (a machine
that cannot compile runs eagerly).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_OFF = {"false", "off", "none", "no", "0", ""}
_ON = {"true", "on", "yes", "1"}


def compile_options(spec: Any) -> dict | None:
    """``model.compile`` -> keyword arguments of ``torch.compile``, or None when off.

    Accepts false/true, a mode name (``default``, ``reduce-overhead``, ``max-autotune``,
    ``max-autotune-no-cudagraphs``), or a mapping of ``torch.compile`` arguments
    (e.g. ``{backend: aot_eager}`` or ``{mode: max-autotune-no-cudagraphs, dynamic: false}``).
    """
    if spec is None or spec is False:
        return None
    if spec is True:
        return {}
    if isinstance(spec, Mapping):
        return dict(spec)
    text = str(spec).strip().lower()
    if text in _OFF:
        return None
    if text in _ON:
        return {}
    if text in COMPILE_MODES:
        return {} if text == "default" else {"mode": text}
    raise ValueError(
        f"model.compile={spec!r} is not understood; use false, true, one of {', '.join(COMPILE_MODES)}, "
        "or a mapping of torch.compile arguments such as {backend: aot_eager}"
    )


def is_compiled(module: nn.Module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None


def compile_in_place(modules: Iterable[nn.Module], options: dict) -> None:
    """``module.compile(**options)`` for each module not compiled yet (idempotent)."""
    for module in modules:
        if not is_compiled(module):
            module.compile(**options)


# Below this many images compiling costs more than it saves on a CPU (about a minute of compilation
# on 2 cores, then a full-size generator runs 1.2-1.7x faster; docs/SPEED.md).
COMPILE_AUTO_MIN_IMAGES = 256


def auto_compile(spec: Any, device: torch.device, n_images: int) -> Any:
    """``auto`` -> compile for inference on a CPU with at least ``COMPILE_AUTO_MIN_IMAGES`` images, not
    on a GPU (eager GPU inference gets through thousands of images in seconds, less than compiling
    takes); anything else is returned as given (``model.compile`` values)."""
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        return device.type == "cpu" and n_images >= COMPILE_AUTO_MIN_IMAGES
    return spec


def compile_for_inference(modules: Iterable[nn.Module], spec: Any, dynamic: bool | None = False) -> bool:
    """Compile ``modules`` in place for inference (``spec`` as ``model.compile``); True when compiled.

    ``dynamic=False`` (unless ``spec`` says otherwise) suits callers that feed one batch shape (they
    pad the last batch): each network compiles once; ``None`` lets torch generalise after a second
    shape (images of many sizes). Compilation happens at the first call: make the calls inside
    :func:`eager_fallback`.
    """
    options = compile_options(spec)
    if options is None:
        return False
    options.setdefault("dynamic", dynamic)
    compile_in_place(modules, options)
    return True


@contextlib.contextmanager
def eager_fallback() -> Iterator[None]:
    """Inside this block a compiled network whose compilation fails (no C++ compiler on a CPU
    machine, an operator inductor cannot handle) runs eagerly after one warning instead of raising:
    compiling is a speed-up, never a reason for an evaluation or a translation to fail."""
    with torch._dynamo.config.patch(suppress_errors=True):
        yield


def cpu_has_amx() -> bool:
    """Whether this machine's CPU has AMX tiles (Intel Sapphire Rapids and later), where oneDNN picks
    other bf16 kernels than on AVX512-BF16 CPUs; False when it cannot be told."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, but the one torch itself uses
    if probe is not None:
        try:
            return bool(probe())
        except Exception:  # an older build or an unusual platform: read the flags instead
            pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return any(line.startswith("flags") and " amx_tile" in line for line in f)
    except OSError:
        return False
