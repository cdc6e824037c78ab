"""Training steps of a model family's real LightningModule (CycleGAN, CUT, FastCUT) under a Lightning Trainer,
timed; FLOPs and a profile on request."""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.loggers import CSVLogger

from cyclegan.gan.module import CycleGAN
from cyclegan.tools.bench_common import Config, DeviceBatches, Result, peak_mib, reset_device, sync


def _timer_callback(args, device, result: Result, count_flops: bool, profile: bool):
    class StepTimer(pl.Callback):
        """Times steps [warmup, warmup + steps); optionally counts one step's FLOPs / profiles the tail."""

        def __init__(self):
            self.t_start = time.perf_counter()
            self.flops = None
            self.profiler = None
            self._flop_mode = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == args.warmup:
                sync(device)
                self.t0 = time.perf_counter()
                result.warmup_s = self.t0 - self.t_start
            if count_flops and batch_idx == 1:
                from torch.utils.flop_counter import FlopCounterMode

                self._flop_mode = FlopCounterMode(display=False)
                self._flop_mode.__enter__()
            if profile and batch_idx == args.warmup + args.steps:
                self.profiler = make_profiler(device)
                self.profiler.__enter__()
                sync(device)
                self.p0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if self._flop_mode is not None:
                self._flop_mode.__exit__(None, None, None)
                self.flops = self._flop_mode.get_total_flops()
                self._flop_mode = None
            if batch_idx == args.warmup + args.steps - 1:
                sync(device)
                self.t1 = time.perf_counter()
            if self.profiler is not None and batch_idx == trainer.max_steps - 1:
                sync(device)
                self.profile_wall_s = time.perf_counter() - self.p0
                self.profiler.__exit__(None, None, None)

    return StepTimer()


def make_profiler(device: torch.device):
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    return profile(activities=activities, record_shapes=False)


FAMILIES = ("cyclegan", "cut", "fastcut")  # conf/model/<family>.yaml


def build_model(family: str, **kwargs) -> pl.LightningModule:
    """The model of ``train.py model=<family>``: CycleGAN with its defaults, or the keys of
    conf/model/<family>.yaml (read as train.py composes them); ``kwargs`` on top."""
    if family == "cyclegan":
        return CycleGAN(**{"pool_size": 50, **kwargs})
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(Path(__file__).resolve().parents[2] / "conf"), version_base="1.3"):
        model = compose("train", overrides=[f"model={family}", "data=folders"]).model  # no data preset
    GlobalHydra.instance().clear()
    return instantiate(model, **kwargs)


def bench_training(cfg: Config, args, device: torch.device, count_flops: bool = False, profile: bool = False,
                   callbacks: Sequence[pl.Callback] = (), name: str | None = None, family: str = "cyclegan") -> Result:
    """Time ``args.steps`` training steps of ``cfg`` after ``args.warmup``; ``callbacks`` run beside
    the timer (the callbacks-overhead rows), ``name`` labels the row (default: the config), ``family``
    is the model (``train.py model=<family>``)."""
    result = Result(name or cfg.name, cfg.batch)
    reset_device(device)
    torch.manual_seed(0)
    options = {} if cfg.reference else getattr(args, "model", {})  # the reference row keeps the reference's losses
    model = build_model(family, **{**dict(ngf=args.ngf, ndf=args.ndf, n_blocks=args.n_blocks), **options,
                                   "lr_policy": "constant", "channels_last": cfg.channels_last, "compile": cfg.compile,
                                   "fused_adam": cfg.fused_adam})
    profile_steps = args.profile_steps if profile else 0
    total = args.warmup + args.steps + profile_steps
    data = torch.utils.data.DataLoader(DeviceBatches(cfg.batch, args.image_size, device, total), batch_size=None)
    timer = _timer_callback(args, device, result, count_flops, profile)
    logger = False
    if cfg.log_every_step:
        logger = CSVLogger(tempfile.mkdtemp(prefix="cyclegan-bench-"), name="bench")
    trainer = pl.Trainer(
        accelerator=device.type, devices=1, precision=cfg.precision, max_steps=total, max_epochs=1,
        logger=logger, log_every_n_steps=1,
        # Lightning refuses a checkpoint or progress-bar callback when these are off
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, benchmark=True,
        callbacks=[timer, *callbacks],
    )
    try:
        with warnings.catch_warnings():
            # timing training steps only: the module's validation_step is unused on purpose
            warnings.filterwarnings("ignore", message=r"You defined a `validation_step` but have no `val_dataloader`")
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
            trainer.fit(model, train_dataloaders=data)
        if not result.error:  # else the time budget ran out before the timed steps were done
            elapsed = timer.t1 - timer.t0
            result.pairs_per_s = args.steps * cfg.batch / elapsed
            result.ms_per_step = 1000 * elapsed / args.steps
            result.peak_mib = peak_mib(device)
            if timer.flops:
                result.extra["flops_per_pair"] = timer.flops / cfg.batch
            if profile:
                result.extra["profile"] = summarize_profile(timer.profiler, timer.profile_wall_s, device, args)
            losses = {k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith("_step")}
            result.extra["finite_losses"] = all(np.isfinite(v) for v in losses.values())
    except Exception as e:  # a config that cannot run here (e.g. no compiler) must not hide the others
        result.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    del trainer, model, data
    reset_device(device)
    return result


KERNEL_FAMILIES = [  # first match wins; names are cuDNN / ATen / Triton kernel names
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("reflection pad", ("reflection", "pad")),
    ("instance/batch norm", ("norm", "welford", "batch_norm", "bn_")),
    ("conv (cuDNN/GEMM)", ("conv", "xmma", "gemm", "cutlass", "sm90", "sm80", "implicit", "dgrad", "wgrad", "cudnn")),
    ("layout/copy", ("nchw", "nhwc", "copy", "transpose", "cat")),
    ("triton fused", ("triton",)),
]


def summarize_profile(prof, wall_s: float, device: torch.device, args) -> dict:
    """Top kernels and the share of device time per kernel family, plus how busy the device was."""
    events = prof.key_averages()
    device_events = []  # (name, self time in us, calls): kernels on CUDA, operators on the CPU
    for ev in events:
        if device.type == "cuda":
            t = getattr(ev, "self_device_time_total", None)
            if t is None:
                t = getattr(ev, "self_cuda_time_total", 0)
            keep = str(getattr(ev, "device_type", "")).endswith("CUDA")
        else:
            t, keep = ev.self_cpu_time_total, True
        if t and keep:
            device_events.append((ev.key, t, ev.count))
    device_events.sort(key=lambda e: -e[1])
    total_us = sum(t for _, t, _ in device_events)
    families: dict[str, float] = {}
    for name, t, _ in device_events:
        low = name.lower()
        fam = next((f for f, keys in KERNEL_FAMILIES if any(k in low for k in keys)), "other elementwise")
        families[fam] = families.get(fam, 0.0) + t
    launches = sum(c for _, _, c in device_events)
    return {
        "steps": args.profile_steps,
        "wall_ms_per_step": 1000 * wall_s / args.profile_steps,
        "kernel_ms_per_step": total_us / 1000 / args.profile_steps,
        "device_busy": (total_us / 1e6) / wall_s if wall_s else float("nan"),
        "kernels_per_step": launches / args.profile_steps,
        "families_ms_per_step": {k: v / 1000 / args.profile_steps for k, v in sorted(families.items(), key=lambda kv: -kv[1])},
        "top_kernels": [(n[:90], t / 1000 / args.profile_steps, c // args.profile_steps) for n, t, c in device_events[:12]],
    }
