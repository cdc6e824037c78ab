"""What every part of the benchmark shares: configs, result rows, device clocks and memory, synthetic images."""

from __future__ import annotations

import contextlib
import gc
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}
COMPILE_BACKENDS = ("aot_eager", "eager")


@dataclass
class Config:
    name: str
    precision: str = "32-true"
    channels_last: bool = False
    compile: bool | str = False
    batch: int = 1
    fused_adam: bool | None = None
    log_every_step: bool = False
    reference: bool = False  # the reference's model settings: --model options do not apply

    @classmethod
    def parse(cls, text: str) -> Config:
        cfg = cls(name=text)
        for token in text.split("+"):
            if token == "ref":  # the reference-equivalent step: fp32, batch 1, plain Adam, the reference's settings
                cfg.reference, cfg.fused_adam = True, False
            elif token in PRECISIONS:
                cfg.precision = PRECISIONS[token]
            elif token == "cl":
                cfg.channels_last = True
            elif token == "compile":
                cfg.compile = True
            elif token.startswith("compile="):
                mode = token.split("=", 1)[1]
                # a backend instead of a mode: aot_eager/eager compile in seconds on a CPU (dry runs)
                cfg.compile = {"backend": mode} if mode in COMPILE_BACKENDS else mode
            elif token.startswith("b") and token[1:].isdigit():
                cfg.batch = int(token[1:])
            elif token == "nofused":
                cfg.fused_adam = False
            elif token == "fused":  # insist on fused Adam (the CPU too: torch >= 2.4)
                cfg.fused_adam = True
            elif token == "log1":
                cfg.log_every_step = True
            else:
                raise SystemExit(f"bench: unknown token {token!r} in config {text!r}; tokens: "
                                 "ref fp32 bf16 fp16 cl compile compile=<mode> b<N> nofused fused log1")
        return cfg


@dataclass
class Result:
    config: str
    batch: int
    pairs_per_s: float = float("nan")
    ms_per_step: float = float("nan")
    peak_mib: float = float("nan")
    warmup_s: float = float("nan")
    error: str = ""
    extra: dict = field(default_factory=dict)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_device(device: torch.device) -> None:
    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    reset_peak_memory(device)


def number_text(value: float, width: int = 0, digits: int = 0) -> str:
    """A report cell; "n/a" for what was not measured (peak memory on a CPU, the ratios of inference rows)."""
    return f"{value:{width}.{digits}f}" if math.isfinite(value) else f"{'n/a':>{width}s}"


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: the device allocator's on a GPU, the process's resident set (Linux) on a CPU."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # Linux: "5" resets VmHWM, the peak resident set size
        Path("/proc/self/clear_refs").write_text("5")


def peak_mib(device: torch.device) -> float:
    """Peak memory since :func:`reset_peak_memory`: allocated on the GPU, or the process's peak
    resident set (VmHWM) on a CPU; NaN where neither can be read."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return float("nan")


def smooth_images(n: int, size: int, seed: int, device: torch.device) -> torch.Tensor:
    """Image-like tensors in [-1, 1] (low-frequency colour fields plus noise; never zeros)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    x = x + 0.1 * torch.randn(n, 3, size, size, generator=g)
    return x.clamp(-1, 1).to(device)


class DeviceBatches(torch.utils.data.Dataset):
    """``length`` batches cycling over a few pre-built ones that already live on the device."""

    def __init__(self, batch: int, size: int, device: torch.device, length: int, distinct: int = 4):
        self.batches = [{"A": smooth_images(batch, size, 2 * i, device), "B": smooth_images(batch, size, 2 * i + 1, device)}
                        for i in range(distinct)]
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        return self.batches[i % len(self.batches)]
