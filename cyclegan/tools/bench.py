"""Throughput benchmark: `python -m cyclegan.tools.bench` (GPU) or `python -m cyclegan.tools.bench --device cpu`.

In one process on one device it times, for each config,

- training steps of the real ``CycleGAN`` LightningModule under a Lightning ``Trainer`` (the
  same ``training_step``, pools, manual optimization and speed switches as ``train.py``) on
  synthetic batches already on the device: image pairs/s, ms/step and peak device memory;
  ``--families cyclegan cut fastcut`` times each model family (``train.py model=<family>``, its
  conf/model/<family>.yaml) per config, at the same sizes;
- generator inference (images/s);
- the data pipeline (``UnpairedDataModule`` decoding + augmenting JPEGs from a folder with
  N workers): image pairs/s it can deliver, to compare with the step rate;
- with ``--zip-photos N``: the Kaggle submission zip of N synthetic 256x256 photos end to end
  (decode, translate, encode, zip), wall time and images/s;
- with ``--callbacks``: the per-step cost of the default callbacks (conf/callbacks/default.yaml)
  against a bare step of the first config (``--callbacks-each``: one row per callback);

Peak memory is the allocator's peak on a GPU and the process's peak resident set on a CPU (Linux).
It prints a table with each config's ratio to the reference-equivalent step (``x ref``: the ``ref``
row, eager, fp32, batch 1, plain Adam, the reference's model settings whatever ``--model`` says; run
first unless ``--no-reference``), so "x the reference" reads the same on every CPU and GPU, and to the
physical limit (peak TFLOP/s over the FLOPs of one step, counted with ``torch.utils.flop_counter`` on
the first row's step).

A config is ``+``-joined tokens: ``ref`` (the reference-equivalent step), ``fp32`` | ``bf16`` | ``fp16`` (precision), ``cl``
(channels_last), ``compile`` or ``compile=<mode>``, ``b<N>`` (batch size), ``nofused``
(plain Adam), ``fused`` (fused Adam, the CPU too), ``log1`` (a CSV logger writing every step, as train.py's default does).
``--profile CONFIG`` runs torch.profiler over a few steps of that config and prints the top
kernels and the time per kernel family (norm, pad, conv, optimizer, ...).

Examples::

    python -m cyclegan.tools.bench                                   # the H100 table in docs/SPEED.md
    python -m cyclegan.tools.bench --device cpu                      # small sizes, CPU table
    python -m cyclegan.tools.bench --configs ref bf16+cl+compile+b16 --steps 50
    python -m cyclegan.tools.bench --device cpu --image-size 128 --ngf 32 --ndf 64 --n-blocks 6 --configs ref bf16+b4 \
        --model upsample=resize residual_output=true lambda_identity=0 lambda_cycle=0.25 --no-inference   # the painter
    python -m cyclegan.tools.bench --device cuda --zip-photos 7038                # + the Kaggle zip
    python -m cyclegan.tools.bench --device cpu --configs fp32+b1 --callbacks --no-inference --data-workers
    python -m cyclegan.tools.bench --device cpu --configs fp32+b1 --families cyclegan cut fastcut --no-inference
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
import yaml

from cyclegan.tools.bench_callbacks import bench_callbacks
from cyclegan.tools.bench_common import Config, Result, number_text
from cyclegan.tools.bench_io import bench_data, bench_inference, bench_kaggle_zip, write_jpegs
from cyclegan.tools.bench_training import FAMILIES, bench_training

GPU_CONFIGS = [
    "ref",  # the reference-equivalent step (eager, fp32, batch 1, plain Adam, the reference's settings)
    "bf16+b1", "bf16+cl+b1", "bf16+cl+compile+b1",
    "fp32+b16", "bf16+b16", "bf16+cl+b4", "bf16+cl+b16",
    "bf16+cl+compile+b4", "bf16+cl+compile+b16",
    "bf16+cl+compile+b16+log1",
]
CPU_CONFIGS = ["ref", "fp32+b1", "bf16+b1", "fp32+cl+b1", "fp32+compile+b1", "fp32+b4"]


def table(results: list[Result], baseline: Result | None, limit: float | None) -> str:
    head = f"{'config':34s} {'batch':>5s} {'pairs/s':>9s} {'ms/step':>8s} {'x ref':>8s} {'% limit':>8s} {'peak MiB':>9s} {'warm-up s':>9s}"
    lines = [head, "-" * len(head)]
    for r in results:
        if r.error:
            lines.append(f"{r.config:34s} {r.batch:5d}  FAILED: {r.error}")
            continue
        training = not r.config.startswith(("G_AB", "data", "Kaggle")) and not r.extra.get("callbacks_row")
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
    p.add_argument("--configs", nargs="+", help="training configs (default: by device); 'ref' = the reference-equivalent step")
    p.add_argument("--no-reference", action="store_true",
                   help="do not add the reference-equivalent row (ratios are then to the first config)")
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
    p.add_argument("--zip-photos", type=int, help="Kaggle zip of N synthetic 256x256 photos (default 7038 on a GPU, "
                                                  "0 = skip on a CPU)")
    p.add_argument("--callbacks", action="store_true",
                   help="time the first config bare and with the default callbacks (their per-step overhead)")
    p.add_argument("--callbacks-each", action="store_true", help="with --callbacks: also each callback alone")
    p.add_argument("--repeats", type=int, default=3, help="with --callbacks: alternating runs of each variant")
    p.add_argument("--json", type=Path, help="write all numbers here")
    p.add_argument("--families", nargs="+", default=["cyclegan"], choices=FAMILIES, metavar="FAMILY",
                   help=f"model families of the training rows, one row each per config: {', '.join(FAMILIES)} "
                        "(as train.py model=FAMILY; default cyclegan)")
    p.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE",
                   help="model arguments for the training rows, as model.KEY in train.py "
                        "(e.g. lambda_identity=0 upsample=resize diffaugment=color,translation,cutout)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (as train.py's cpu_threads)")
    args = p.parse_args(argv)
    args.model = parse_model_args(args.model)
    cuda = args.device.startswith("cuda")
    defaults = dict(image_size=256, ngf=64, ndf=64, n_blocks=9, warmup=10, steps=30, inference_batch=16,
                    peak_tflops=800.0, configs=GPU_CONFIGS, data_workers=[0, 4, 8], zip_photos=7038) if cuda else \
        dict(image_size=64, ngf=16, ndf=16, n_blocks=3, warmup=3, steps=10, inference_batch=4,
             peak_tflops=None, configs=CPU_CONFIGS, data_workers=[0, 2], zip_photos=0)
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
    listed_first = configs[0] if configs else None  # what --callbacks times
    if not args.no_reference and not any(c.reference for c in configs):
        configs.insert(0, Config.parse("ref"))
    profiled = set(args.profile or [])
    t_begin = time.perf_counter()
    when = time.strftime("%Y-%m-%d %H:%M")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"cyclegan.tools.bench {when} on {name}; torch {torch.__version__}; {args.image_size}px ngf={args.ngf} "
          f"ndf={args.ndf} n_blocks={args.n_blocks}; warmup {args.warmup}, {args.steps} timed steps; "
          f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')} "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'unset')}"
          + (f"; model {args.model}" if args.model else ""), flush=True)

    results: list[Result] = []
    # the reference-equivalent row is CycleGAN's step; every other config runs once per family
    runs = [(cfg, family) for cfg in configs for family in (("cyclegan",) if cfg.reference else args.families)]
    for i, (cfg, family) in enumerate(runs):
        row = cfg.name if args.families == ["cyclegan"] else f"{family} {cfg.name}"
        if time.perf_counter() - t_begin > args.time_budget:
            results.append(Result(row, cfg.batch, error="skipped: --time-budget spent"))
            continue
        r = bench_training(cfg, args, device, count_flops=(i == 0), profile=cfg.name in profiled, name=row,
                           family=family)
        results.append(r)
        peak = f"peak {number_text(r.peak_mib)} MiB" if math.isfinite(r.peak_mib) else "peak memory n/a here"
        print(f"  {row}: {r.pairs_per_s:.1f} pairs/s, {peak}, warm-up {r.warmup_s:.1f} s"
              + (f"  [{r.error}]" if r.error else ""), flush=True)
        if "profile" in r.extra:
            print(profile_report(row, r.extra["profile"]), flush=True)

    overheads: list[str] = []
    if args.callbacks and listed_first:
        rows, overheads = bench_callbacks(listed_first, args, device, repeats=args.repeats, each=args.callbacks_each)
        for row in rows:
            row.extra["callbacks_row"] = True
            print(f"  {row.config}: {row.ms_per_step:.2f} ms/step {row.error}", flush=True)
        results += rows

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

    if args.zip_photos:
        with tempfile.TemporaryDirectory(prefix="cyclegan-bench-zip-") as tmp:
            write_jpegs(Path(tmp) / "photos", args.zip_photos, 256, 3)
            for bf16 in (False, True) if device.type == "cuda" else (False,):
                results.append(bench_kaggle_zip(args, device, Path(tmp) / "photos", Path(tmp) / "images.zip", bf16))
                print(f"  {results[-1].config}: {results[-1].extra.get('wall_s', float('nan')):.1f} s "
                      f"{results[-1].error}", flush=True)

    first = results[0] if results and not results[0].error else None
    # the ratios' denominator: the reference-equivalent row (none if it failed), else the first row (--no-reference)
    references = [r for r, (c, _) in zip(results, runs) if c.reference]
    baseline = (references[0] if not references[0].error else None) if references else first
    flops = first.extra.get("flops_per_pair") if first else None
    limit = args.peak_tflops * 1e12 / flops if flops and args.peak_tflops else None
    print()
    if flops:
        print(f"one training step = {flops / 1e9:.1f} GFLOP per image pair (counted on the first row)"
              + (f"; at {args.peak_tflops:.0f} TFLOP/s the limit is {limit:.0f} pairs/s" if limit else ""))
    print("inference and zip rows: images/s in the pairs/s column; data rows: pairs/s the loader delivers; "
          f"peak MiB: {'allocated on the GPU' if device.type == 'cuda' else 'peak resident set of the process'}")
    if references:
        print("x ref: pairs/s over the reference-equivalent row 'ref' (eager, fp32, batch 1, plain Adam, the reference's "
              "model settings: --model does not apply to it)")
    print(table(results, baseline, limit))
    if overheads:
        print("\nper-step overhead of the default callbacks (median of alternating runs):")
        print("\n".join(f"  {line}" for line in overheads))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"date": when, "device": name, "torch": torch.__version__,
                                         "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                         "limit_pairs_per_s": limit, "callbacks_overhead": overheads,
                                         "results": [asdict(r) for r in results]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
