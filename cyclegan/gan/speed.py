"""Speed switches for the CycleGAN networks: channels_last, torch.compile and fused Adam.

``CycleGAN`` applies them in ``configure_model`` (``model.channels_last``, ``model.compile``)
and ``configure_optimizers`` (``model.fused_adam``); the helpers live here so the benchmark
(`python -m cyclegan.bench`) and tests use exactly the same code path.

Two rules keep checkpoints and Lightning's manual optimization working unchanged:

- ``torch.compile`` is applied with ``nn.Module.compile()`` *in place*: the module keeps its
  class, attributes and parameters, so ``state_dict`` keys stay ``G_AB.model.1.weight`` (no
  ``_orig_mod.`` prefix), ``toggle_optimizer`` still flips the same parameters'
  ``requires_grad`` (a compiled graph guards on it and recompiles once per state), and a
  checkpoint saved by a compiled run loads into a plain model and vice versa.
- channels_last converts the parameters' strides, not their shapes or names; ``.to(device)``
  and ``load_state_dict`` preserve it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

NETWORKS = ("G_AB", "G_BA", "D_A", "D_B")
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


def to_channels_last(module: nn.Module) -> nn.Module:
    """Convert 4-D parameters/buffers to channels_last (NHWC strides) in place; returns ``module``.

    On CUDA, cuDNN's NHWC convolution kernels use the tensor cores without the NCHW<->NHWC
    transposes it otherwise inserts around each conv; inputs should be channels_last too
    (:func:`channels_last_input`), later activations follow the weights' format.
    """
    return module.to(memory_format=torch.channels_last)


def channels_last_input(x: torch.Tensor) -> torch.Tensor:
    """4-D tensors -> channels_last (a no-op when already so); other tensors unchanged."""
    if isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point():
        return x.contiguous(memory_format=torch.channels_last)
    return x


class LayoutFreeInstanceNorm2d(nn.Module):
    """``nn.InstanceNorm2d`` (no running stats) computed with a reduction over H and W.

    ATen's instance norm reshapes its input to ``(1, N*C, H, W)`` and runs batch norm, which
    needs NCHW memory: under channels_last every norm layer copies its input to NCHW and returns
    NCHW, so each following conv converts back (on an H100 at batch 16 these copies were the
    largest item of an eager bf16 step). This version works in whatever layout it gets, keeps the
    statistics in fp32 under autocast, and has the same parameters (``weight``/``bias`` when
    affine) and state-dict keys, so it replaces the module in place.
    """

    def __init__(self, source: nn.InstanceNorm2d):
        super().__init__()
        self.num_features, self.eps, self.affine = source.num_features, source.eps, source.affine
        if source.affine:
            self.weight, self.bias = source.weight, source.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=(2, 3), keepdim=True, correction=0)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"


def replace_instance_norms(module: nn.Module) -> int:
    """Swap every ``nn.InstanceNorm2d`` without running stats for :class:`LayoutFreeInstanceNorm2d`."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.InstanceNorm2d) and not child.track_running_stats:
            setattr(module, name, LayoutFreeInstanceNorm2d(child))
            count += 1
        else:
            count += replace_instance_norms(child)
    return count


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


def networks_to_compile(model: nn.Module, gan_mode: str | None = None) -> list[str]:
    """Names of the networks that ``model.compile`` applies to.

    WGAN-GP differentiates the discriminator twice (the gradient penalty needs
    ``create_graph=True``), which compiled autograd graphs do not support, so its
    discriminators stay eager.
    """
    names = [n for n in NETWORKS if isinstance(getattr(model, n, None), nn.Module)]
    if gan_mode == "wgangp":
        names = [n for n in names if not n.startswith("D_")]
    return names


_ACCELERATORS = ("cuda", "xpu", "mps")


def _fused_devices() -> tuple[str, ...]:
    try:  # the device types torch has fused optimizer kernels for (CPU too since torch 2.4)
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        return tuple(_get_fused_kernels_supported_devices())
    except ImportError:  # pragma: no cover
        return _ACCELERATORS


def fused_adam_available(params: Iterable[torch.Tensor], devices: tuple[str, ...] = _ACCELERATORS) -> bool:
    """True when every parameter is floating point and on one of ``devices``."""
    params = list(params)
    return bool(params) and all(p.is_floating_point() and p.device.type in devices for p in params)


def adam_kwargs(params: Iterable[torch.Tensor], fused: bool | None) -> dict:
    """Keyword arguments for ``torch.optim.Adam``: one fused kernel per step instead of
    dozens of foreach launches, and no host sync for the fp16 loss scaler's inf check.

    ``fused=None`` picks it when all parameters live on a GPU; ``True`` insists (any device
    torch has a fused kernel for, the CPU included).
    """
    params = list(params)
    if fused is None:
        return {"fused": True} if fused_adam_available(params) else {}
    if fused and not fused_adam_available(params, _fused_devices()):
        devices = sorted({p.device.type for p in params})
        raise ValueError(
            f"model.fused_adam=true: torch has no fused Adam for parameters on {', '.join(devices)}; "
            "set model.fused_adam=null (auto) or false"
        )
    return {"fused": True} if fused else {}


def apply_speedups(model: nn.Module, channels_last: bool = False, compile: Any = False,
                   gan_mode: str | None = None) -> list[str]:
    """Apply channels_last and torch.compile to ``model``'s four networks; returns the compiled names."""
    if channels_last:
        for name in NETWORKS:
            net = getattr(model, name, None)
            if isinstance(net, nn.Module):
                replace_instance_norms(net)  # else every norm layer converts back to NCHW
                to_channels_last(net)
    options = compile_options(compile)
    if options is None:
        return []
    names = networks_to_compile(model, gan_mode)
    skipped = sorted(set(n for n in NETWORKS if hasattr(model, n)) - set(names))
    if skipped:
        log.warning("model.compile: %s stay eager (gan_mode=wgangp needs double backward)", ", ".join(skipped))
    compile_in_place((getattr(model, n) for n in names), options)
    return names
