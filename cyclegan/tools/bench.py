"""Throughput benchmark: `python -m cyclegan.tools.bench` (GPU) or `python -m cyclegan.tools.bench --device cpu`.

In one process on one device it times, for each config,

- training steps of the real ``CycleGAN`` LightningModule under a Lightning ``Trainer`` (the
  same ``training_step``, pools, manual optimization and speed switches as ``train.py``) on
  synthetic batches already on the device: image pairs/s, ms/step and peak device memory;
- generator inference (images/s);
- the data pipeline (``UnpairedDataModule`` decoding + augmenting JPEGs from a folder with
  N workers): image pairs/s it can deliver, to compare with the step rate;

and prints a table with each config's ratio to the first one (the naive baseline: eager,
fp32, batch 1, plain Adam) and to the physical limit (peak TFLOP/s over the FLOPs of one
step, counted with ``torch.utils.flop_counter`` on the baseline's step).

A config is ``+``-joined tokens: ``fp32`` | ``bf16`` | ``fp16`` (precision), ``cl``
(channels_last), ``compile`` or ``compile=<mode>``, ``b<N>`` (batch size), ``nofused``
(plain Adam), ``log1`` (a CSV logger writing every step, as train.py's default does).
``--profile CONFIG`` runs torch.profiler over a few steps of that config and prints the top
kernels and the time per kernel family (norm, pad, conv, optimizer, ...).

Examples::

    python -m cyclegan.tools.bench                                   # the H100 table in docs/SPEED.md
    python -m cyclegan.tools.bench --device cpu                      # small sizes, CPU table
    python -m cyclegan.tools.bench --configs fp32+b1+nofused bf16+cl+compile+b16 --steps 50

The one-call GPU suite built on these functions (training, inference, Kaggle zip, a timed Monet run;
docs/SPEED.md) is ``python -m cyclegan.tools.gpu_suite``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from cyclegan.data import UnpairedDataModule
from cyclegan.gan.module import CycleGAN
from cyclegan.gan.speed import replace_instance_norms
from cyclegan.models import build_generator

PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}
COMPILE_BACKENDS = ("aot_eager", "eager")
GPU_CONFIGS = [
    "fp32+b1+nofused",  # naive baseline: the reference's step (eager, fp32, batch 1)
    "bf16+b1", "bf16+cl+b1", "bf16+cl+compile+b1",
    "fp32+b16", "bf16+b16", "bf16+cl+b4", "bf16+cl+b16",
    "bf16+cl+compile+b4", "bf16+cl+compile+b16",
    "bf16+cl+compile+b16+log1",
]
CPU_CONFIGS = ["fp32+b1+nofused", "fp32+b1", "bf16+b1", "fp32+cl+b1", "fp32+compile+b1", "fp32+b4"]


@dataclass
class Config:
    name: str
    precision: str = "32-true"
    channels_last: bool = False
    compile: bool | str = False
    batch: int = 1
    fused_adam: bool | None = None
    log_every_step: bool = False

    @classmethod
    def parse(cls, text: str) -> Config:
        cfg = cls(name=text)
        for token in text.split("+"):
            if token in PRECISIONS:
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
            elif token == "log1":
                cfg.log_every_step = True
            else:
                raise SystemExit(f"bench: unknown token {token!r} in config {text!r}; tokens: "
                                 "fp32 bf16 fp16 cl compile compile=<mode> b<N> nofused log1")
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


# ---------------------------------------------------------------------------------------- helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_device(device: torch.device) -> None:
    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def number_text(value: float, width: int = 0, digits: int = 0) -> str:
    """A report cell; "n/a" for what was not measured (peak memory on a CPU, the ratios of inference rows)."""
    return f"{value:{width}.{digits}f}" if math.isfinite(value) else f"{'n/a':>{width}s}"


def peak_mib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")


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


def _timer_callback(args, device, result: Result, count_flops: bool, profile: bool):
    import pytorch_lightning as pl

    class StepTimer(pl.Callback):
        """Times steps [warmup, warmup + steps); optionally counts one step's FLOPs / profiles the tail."""

        def __init__(self):
            self.t_start = time.perf_counter()
            self.flops = None
            self.profiler = None
            self._flop_mode = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            deadline = getattr(args, "deadline", None)  # a time budget (gpu suite): stop between steps
            timing = batch_idx < args.warmup + args.steps
            if deadline is not None and timing and time.perf_counter() > deadline and not trainer.should_stop:
                result.error = f"stopped by the time budget after {batch_idx} of {trainer.max_steps} steps"
                trainer.should_stop = True
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


# ---------------------------------------------------------------------------------------- training
def bench_training(cfg: Config, args, device: torch.device, count_flops: bool = False, profile: bool = False) -> Result:
    import pytorch_lightning as pl

    result = Result(cfg.name, cfg.batch)
    reset_device(device)
    torch.manual_seed(0)
    model = CycleGAN(**{**dict(ngf=args.ngf, ndf=args.ndf, n_blocks=args.n_blocks, pool_size=50), **getattr(args, "model", {}),
                        "lr_policy": "constant", "channels_last": cfg.channels_last, "compile": cfg.compile,
                        "fused_adam": cfg.fused_adam})
    profile_steps = args.profile_steps if profile else 0
    total = args.warmup + args.steps + profile_steps
    data = torch.utils.data.DataLoader(DeviceBatches(cfg.batch, args.image_size, device, total), batch_size=None)
    timer = _timer_callback(args, device, result, count_flops, profile)
    logger = False
    if cfg.log_every_step:
        from pytorch_lightning.loggers import CSVLogger

        logger = CSVLogger(tempfile.mkdtemp(prefix="cyclegan-bench-"), name="bench")
    trainer = pl.Trainer(
        accelerator=device.type, devices=1, precision=cfg.precision, max_steps=total, max_epochs=1,
        logger=logger, log_every_n_steps=1, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, benchmark=True,
        callbacks=[timer],
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


# ---------------------------------------------------------------------------------------- inference
def bench_inference(args, device: torch.device, bf16: bool, channels_last: bool, compile: bool | dict,
                    batch: int) -> Result:
    """Generator forward passes; ``compile``: True, or ``torch.compile`` keyword arguments."""
    name = f"G_AB inference {'bf16' if bf16 else 'fp32'}{'+cl' if channels_last else ''}{'+compile' if compile else ''}"
    result = Result(name, batch)
    reset_device(device)
    try:
        net = build_generator("resnet", ngf=args.ngf, n_blocks=args.n_blocks).to(device).eval()
        x = smooth_images(batch, args.image_size, 7, device)
        if channels_last:  # with the layout-free instance norm, as training's model.channels_last
            replace_instance_norms(net)
            net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        if compile:
            net.compile(**(compile if isinstance(compile, dict) else {}))
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
        t_start = time.perf_counter()
        with torch.inference_mode(), autocast:
            for _ in range(args.warmup):
                net(x)
            sync(device)
            result.warmup_s = time.perf_counter() - t_start
            t0 = time.perf_counter()
            for _ in range(args.steps):
                y = net(x)
            sync(device)
            elapsed = time.perf_counter() - t0
        result.extra["finite_losses"] = bool(torch.isfinite(y).all())
        result.pairs_per_s = args.steps * batch / elapsed
        result.ms_per_step = 1000 * elapsed / args.steps
        result.peak_mib = peak_mib(device)
    except Exception as e:
        result.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    reset_device(device)
    return result


# ---------------------------------------------------------------------------------------- data pipeline
def write_jpegs(folder: Path, n: int, size: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        low = rng.random((4, 4, 3)) * 255
        img = Image.fromarray(low.astype(np.uint8)).resize((size, size), Image.BICUBIC)
        arr = np.asarray(img).astype(np.int16) + rng.integers(-20, 20, (size, size, 3))
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(folder / f"{i:04d}.jpg", quality=90)


def bench_data(args, workers: int, cache: bool, data_dir: Path) -> Result:
    result = Result(f"data pipeline, {workers} workers{' + cache_images' if cache else ''}", args.data_batch)
    dm = UnpairedDataModule(name="bench", source="folders", dir_a=str(data_dir / "A"), dir_b=str(data_dir / "B"),
                            image_size=args.image_size, load_size=int(args.image_size * 286 / 256),
                            batch_size=args.data_batch, num_workers=workers, persistent_workers=False,
                            val_size=0, cache_images=cache, epoch_length=args.data_batch * args.data_batches)
    t_start = time.perf_counter()
    dm.setup("fit")
    loader = dm.train_dataloader()
    n = 0
    it = iter(loader)
    next(it)  # worker start-up and the cache fill are not part of the rate
    result.warmup_s = time.perf_counter() - t_start
    t0 = time.perf_counter()
    for batch in it:
        n += batch["A"].size(0)
    result.pairs_per_s = n / (time.perf_counter() - t0)
    return result


# ---------------------------------------------------------------------------------------- report
def table(results: list[Result], baseline: Result | None, limit: float | None) -> str:
    head = f"{'config':34s} {'batch':>5s} {'pairs/s':>9s} {'ms/step':>8s} {'x naive':>8s} {'% limit':>8s} {'peak MiB':>9s} {'warm-up s':>9s}"
    lines = [head, "-" * len(head)]
    for r in results:
        if r.error:
            lines.append(f"{r.config:34s} {r.batch:5d}  FAILED: {r.error}")
            continue
        training = not r.config.startswith(("G_AB", "data"))
        ratio = r.pairs_per_s / baseline.pairs_per_s if baseline and training else float("nan")
        of_limit = 100 * r.pairs_per_s / limit if limit and training else float("nan")
        nan = r.extra.get("finite_losses") is False
        lines.append(f"{r.config:34s} {r.batch:5d} {r.pairs_per_s:9.1f} {r.ms_per_step:8.2f} "
                     f"{number_text(ratio, 8, 2)} {number_text(of_limit, 8, 1)} {number_text(r.peak_mib, 9)} "
                     f"{number_text(r.warmup_s, 9, 1)}{'  NaN!' if nan else ''}")
    return "\n".join(lines)


def profile_report(name: str, prof: dict) -> str:
    lines = [f"profile of {name}: {prof['wall_ms_per_step']:.1f} ms/step wall, {prof['kernel_ms_per_step']:.1f} ms/step "
             f"of kernels (device busy {100 * prof['device_busy']:.0f}%), {prof['kernels_per_step']:.0f} kernels/step"]
    lines += [f"  {fam:22s} {ms:8.2f} ms/step" for fam, ms in prof["families_ms_per_step"].items()]
    lines.append("  top kernels (ms/step, launches/step):")
    lines += [f"    {ms:7.2f} {count:5d}  {kname}" for kname, ms, count in prof["top_kernels"]]
    return "\n".join(lines)


def parse_model_args(items: list[str]) -> dict:
    """``["lambda_identity=0", "upsample=resize"]`` -> ``{"lambda_identity": 0, "upsample": "resize"}``
    (values read as YAML scalars, as Hydra does)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"bench: --model takes KEY=VALUE items, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cyclegan.tools.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--configs", nargs="+", help="training configs, first = baseline (default: by device)")
    p.add_argument("--image-size", type=int)
    p.add_argument("--ngf", type=int)
    p.add_argument("--ndf", type=int, help="unused by the generators; the discriminators' width")
    p.add_argument("--n-blocks", type=int)
    p.add_argument("--warmup", type=int, help="untimed steps first (compilation, cuDNN autotuning)")
    p.add_argument("--steps", type=int, help="timed steps")
    p.add_argument("--profile", nargs="*", default=None, help="configs to profile (default with no value: none)")
    p.add_argument("--profile-steps", type=int, default=3)
    p.add_argument("--inference-batch", type=int)
    p.add_argument("--no-inference", action="store_true")
    p.add_argument("--no-inference-compile", action="store_true", help="skip the compiled generators")
    p.add_argument("--data-workers", type=int, nargs="*", help="data pipeline: worker counts to try (empty: skip)")
    p.add_argument("--data-images", type=int, default=64, help="synthetic JPEGs per domain for the data pipeline")
    p.add_argument("--data-batch", type=int, default=16)
    p.add_argument("--data-batches", type=int, default=30, help="batches read per data-pipeline measurement")
    p.add_argument("--peak-tflops", type=float, help="device bf16 peak for the 'limit' column (H100: ~800 measured)")
    p.add_argument("--time-budget", type=float, default=float("inf"), help="seconds; skip configs started after it")
    p.add_argument("--json", type=Path, help="write all numbers here")
    p.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE",
                   help="CycleGAN arguments for the training rows, as model.KEY in train.py "
                        "(e.g. lambda_identity=0 upsample=resize diffaugment=color,translation,cutout)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (as train.py's cpu_threads)")
    args = p.parse_args(argv)
    args.model = parse_model_args(args.model)
    cuda = args.device.startswith("cuda")
    defaults = dict(image_size=256, ngf=64, ndf=64, n_blocks=9, warmup=10, steps=30, inference_batch=16,
                    peak_tflops=800.0, configs=GPU_CONFIGS, data_workers=[0, 4, 8]) if cuda else \
        dict(image_size=64, ngf=16, ndf=16, n_blocks=3, warmup=3, steps=10, inference_batch=4,
             peak_tflops=None, configs=CPU_CONFIGS, data_workers=[0, 2])
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench: --device cuda but torch sees no CUDA device; use --device cpu", file=sys.stderr)
        return 2
    import pytorch_lightning  # noqa: F401  (configures its loggers on import; quiet them after)

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(does not have many workers|LightningModule.configure_model|"
                                              "Precision bf16-mixed is not supported|tensor cores).*")
    configs = [Config.parse(c) for c in args.configs]
    profiled = set(args.profile or [])
    t_begin = time.perf_counter()
    when = time.strftime("%Y-%m-%d %H:%M")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"cyclegan.tools.bench {when} on {name}; torch {torch.__version__}; {args.image_size}px ngf={args.ngf} "
          f"ndf={args.ndf} n_blocks={args.n_blocks}; warmup {args.warmup}, {args.steps} timed steps; "
          f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
          + (f"; model {args.model}" if args.model else ""), flush=True)

    results: list[Result] = []
    for i, cfg in enumerate(configs):
        if time.perf_counter() - t_begin > args.time_budget:
            results.append(Result(cfg.name, cfg.batch, error="skipped: --time-budget spent"))
            continue
        r = bench_training(cfg, args, device, count_flops=(i == 0), profile=cfg.name in profiled)
        results.append(r)
        peak = f"peak {number_text(r.peak_mib)} MiB" if math.isfinite(r.peak_mib) else "peak memory n/a on a CPU"
        print(f"  {cfg.name}: {r.pairs_per_s:.1f} pairs/s, {peak}, warm-up {r.warmup_s:.1f} s"
              + (f"  [{r.error}]" if r.error else ""), flush=True)
        if "profile" in r.extra:
            print(profile_report(cfg.name, r.extra["profile"]), flush=True)

    if not args.no_inference:
        b = args.inference_batch
        gpu = device.type == "cuda"
        # (bf16, channels_last, compile, batch): bf16 and compile pay off for full-size generators on
        # CPUs too (AVX512-BF16/AMX); channels_last only on a GPU
        variants = [(False, False, False, 1), (False, False, False, b), (True, False, False, b), (True, gpu, False, b)]
        if not args.no_inference_compile:
            variants += [(False, False, True, b), (True, False, True, b)]
        variants = list(dict.fromkeys(variants))  # on a CPU the third and fourth coincide
        for bf16, cl, comp, batch in variants:
            if time.perf_counter() - t_begin > args.time_budget:
                break
            results.append(bench_inference(args, device, bf16, cl, comp, batch))
            print(f"  {results[-1].config} b{batch}: {results[-1].pairs_per_s:.1f} images/s {results[-1].error}", flush=True)

    if args.data_workers:
        with tempfile.TemporaryDirectory(prefix="cyclegan-bench-data-") as tmp:
            size = int(args.image_size * 286 / 256)  # like the Berkeley sets: images near load_size
            write_jpegs(Path(tmp) / "A", args.data_images, size, 1)
            write_jpegs(Path(tmp) / "B", args.data_images, size, 2)
            runs = [(w, False) for w in args.data_workers] + [(max(args.data_workers), True)]
            for w, cache in runs:
                if time.perf_counter() - t_begin > args.time_budget:
                    break
                results.append(bench_data(args, w, cache, Path(tmp)))
                print(f"  {results[-1].config}: {results[-1].pairs_per_s:.1f} pairs/s", flush=True)

    baseline = results[0] if results and not results[0].error else None
    flops = baseline.extra.get("flops_per_pair") if baseline else None
    limit = args.peak_tflops * 1e12 / flops if flops and args.peak_tflops else None
    print()
    if flops:
        print(f"one training step = {flops / 1e9:.1f} GFLOP per image pair (counted on the baseline)"
              + (f"; at {args.peak_tflops:.0f} TFLOP/s the limit is {limit:.0f} pairs/s" if limit else ""))
    print("inference rows: images/s in the pairs/s column; data rows: pairs/s the loader delivers")
    print(table(results, baseline, limit))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"date": when, "device": name, "torch": torch.__version__,
                                         "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                         "limit_pairs_per_s": limit, "results": [asdict(r) for r in results]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
