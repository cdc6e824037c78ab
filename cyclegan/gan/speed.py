"""Speed switches for the CycleGAN networks: channels_last, torch.compile, fused Adam, CPU-autocast padding.

(``torch.compile`` itself, shared with inference and evaluation, is :mod:`cyclegan.models.compile`.)

``CycleGAN`` applies them in ``configure_model`` (``model.channels_last``, ``model.compile``)
and ``configure_optimizers`` (``model.fused_adam``); the helpers live here so the benchmark
(`python -m cyclegan.tools.bench`) and tests use exactly the same code path.

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

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.models.compile import compile_in_place, compile_options
from cyclegan.models.spec import NETWORKS

log = logging.getLogger(__name__)

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
    affine) and state-dict keys, so it replaces the module in place. On a CPU it is ATen's group
    norm with one channel per group (the same statistics, within fp32 rounding of instance norm).
    """

    def __init__(self, source: nn.InstanceNorm2d):
        super().__init__()
        self.num_features, self.eps, self.affine = source.num_features, source.eps, source.affine
        if source.affine:
            self.weight, self.bias = source.weight, source.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            # group norm with one channel per group is instance norm; ATen's CPU kernel keeps channels_last and
            # takes bf16 with fp32 statistics: one op instead of the six below and their fp32 copies
            return F.group_norm(x, self.num_features, self.weight if self.affine else None,
                                self.bias if self.affine else None, self.eps)
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=(2, 3), keepdim=True, correction=0)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"


def _fold_in_fp32(grad: torch.Tensor, rows: int, cols: int, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """``reflection_pad2d``'s backward computed in fp32 for an input of ``rows`` x ``cols``."""
    shape_of_input = grad.new_zeros((), dtype=torch.float32).expand(*grad.shape[:-2], rows, cols)  # only its shape is read
    return torch.ops.aten.reflection_pad2d_backward(grad.float(), shape_of_input, padding)


def fold_reflection_grad(grad: torch.Tensor, rows: int, cols: int, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """The gradient of a reflection pad's input, as CPU autocast's fp32 path computes it (the border contributions
    added in fp32, rounded once to ``grad``'s dtype), converting only the border strips to fp32.

    An input pixel that no padded pixel mirrors gets its own gradient unchanged (a copy). The others lie in strips
    along the edges (``pad + 1`` rows or columns each); each strip is the reflection backward of a smaller problem
    (its own rows with the same padding on its side), whose kernel adds each pixel's contributions in the same
    order as the whole one, so the result is bit-identical to folding the whole gradient in fp32.
    """
    left, right, top, bottom = padding
    # input rows / columns that mirrored pixels add to: the pad plus the edge row itself, on each padded side
    t_rows, b_rows, l_cols, r_cols = (side + 1 if side else 0 for side in (top, bottom, left, right))
    if rows < t_rows + b_rows or cols < l_cols + r_cols:  # strips would overlap: fold it all
        return _fold_in_fp32(grad, rows, cols, padding).to(grad.dtype)
    out = grad[..., top:top + rows, left:left + cols].clone()
    if top:
        out[..., :t_rows, :] = _fold_in_fp32(grad[..., :top + t_rows, :], t_rows, cols, (left, right, top, 0))
    if bottom:
        out[..., rows - b_rows:, :] = _fold_in_fp32(grad[..., -(bottom + b_rows):, :], b_rows, cols,
                                                    (left, right, 0, bottom))
    middle = rows - t_rows - b_rows  # rows between the strips: only their columns are mirrored
    if middle > 0 and (left or right):
        band = grad[..., top + t_rows:top + t_rows + middle, :]
        if left:
            out[..., t_rows:t_rows + middle, :l_cols] = _fold_in_fp32(band[..., :left + l_cols], middle, l_cols,
                                                                      (left, 0, 0, 0))
        if right:
            out[..., t_rows:t_rows + middle, cols - r_cols:] = _fold_in_fp32(band[..., -(right + r_cols):], middle,
                                                                             r_cols, (0, right, 0, 0))
    return out


class _PadInInputDtype(torch.autograd.Function):
    """Reflection padding in the input's dtype, its gradient folded in fp32 and rounded once: the numbers
    CPU autocast gives, without its casts (see :class:`AutocastFreeReflectionPad2d`)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
        ctx.padding, ctx.size = padding, (x.shape[-2], x.shape[-1])
        with torch.autocast("cpu", enabled=False):
            return torch.ops.aten.reflection_pad2d(x, padding)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return fold_reflection_grad(grad, *ctx.size, ctx.padding), None


class AutocastFreeReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` that pads a bf16/fp16 tensor in its own dtype under CPU autocast.

    CPU autocast lists ``reflection_pad2d`` as an fp32 op (CUDA's does not): in a bf16 step every
    padded conv input was cast bf16 -> fp32, padded in fp32, and cast back to bf16 by the conv,
    two full-size copies per pad forward. Padding only copies values, so padding in bf16 gives the
    conv the same input bit for bit; the backward folds the border gradients in fp32 and rounds once,
    exactly as the autocast path did, converting only the border strips (:func:`fold_reflection_grad`). Results are therefore identical (tests/gan/test_speed_cpu.py),
    in every precision; outside CPU autocast this is plain ``nn.ReflectionPad2d``. No parameters:
    state-dict keys are unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16) and x.dim() == 4
                and torch.is_autocast_enabled("cpu")):
            return _PadInInputDtype.apply(x, tuple(self.padding))
        return super().forward(x)


def replace_reflection_pads(module: nn.Module) -> int:
    """Swap every ``nn.ReflectionPad2d`` in ``module`` for :class:`AutocastFreeReflectionPad2d` (in place)."""
    count = 0
    for name, child in list(module.named_children()):
        if type(child) is nn.ReflectionPad2d:
            setattr(module, name, AutocastFreeReflectionPad2d(child.padding))
            count += 1
        else:
            count += replace_reflection_pads(child)
    return count


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


def networks_to_compile(model: nn.Module, gan_mode: str | None = None,
                        names: Sequence[str] = NETWORKS) -> list[str]:
    """Names of the networks (among ``names``, a family's attribute names) that ``model.compile`` applies to.

    WGAN-GP differentiates the discriminator twice (the gradient penalty needs
    ``create_graph=True``), which compiled autograd graphs do not support, so its
    discriminators stay eager.
    """
    names = [n for n in names if isinstance(getattr(model, n, None), nn.Module)]
    if gan_mode == "wgangp":
        names = [n for n in names if not n.startswith("D")]  # D_A, D_B; CUT's D
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
                   gan_mode: str | None = None, names: Sequence[str] = NETWORKS) -> list[str]:
    """Apply channels_last and torch.compile to ``model``'s networks ``names`` (default: CycleGAN's four);
    returns the compiled names. Reflection padding is always made autocast-free (exact in every precision;
    fewer casts under CPU bf16)."""
    for name in names:
        if isinstance(getattr(model, name, None), nn.Module):
            replace_reflection_pads(getattr(model, name))
    if channels_last:
        for name in names:
            net = getattr(model, name, None)
            if isinstance(net, nn.Module):
                replace_instance_norms(net)  # else every norm layer converts back to NCHW
                to_channels_last(net)
    options = compile_options(compile)
    if options is None:
        return []
    compiled = networks_to_compile(model, gan_mode, names)
    skipped = sorted(set(n for n in names if hasattr(model, n)) - set(compiled))
    if skipped:
        log.warning("model.compile: %s stay eager (gan_mode=wgangp needs double backward)", ", ".join(skipped))
    compile_in_place((getattr(model, n) for n in compiled), options)
    log.info(compile_notice(compiled, _device_type(model)))
    return compiled


def _device_type(model: nn.Module) -> str:
    return next((p.device.type for p in model.parameters()), "cpu")


def compile_notice(names: list[str], device_type: str) -> str:
    """What the user waits for while torch.compile works: the first steps compile, the progress bar stays at 0."""
    took = ("minutes on a CPU (146 s for the painter preset's networks at 128 px on 2 quiet cores; "
            "compiled training rarely pays off on a CPU: docs/SPEED.md)" if device_type == "cpu"
            else "about 80 s on an H100 (docs/SPEED.md)")
    return (f"model.compile: {', '.join(names)} compile during the first training steps, with the progress bar at 0 % "
            f"meanwhile: {took}")
