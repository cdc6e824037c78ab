"""The one-call GPU suite: every GPU figure of the speed and quality targets in one run of under 10 minutes.

``python -m cyclegan.tools.gpu_suite --suite gpu --data .gpu --out DIR`` (docs/SPEED.md has the exact device call)
runs, in this order, each stage under its own time budget so that a slow stage cannot eat the rest:

0. ``ceilings``: the GPU's bf16 matrix rate and copy bandwidth, measured (the physical limit's basis);
1. ``training``: training steps of the real module (``cyclegan.tools.bench.bench_training``): the naive
   baseline (fp32, batch 1, eager, plain Adam) and the fast configurations, in priority order; pairs/s,
   peak memory, ratio to the baseline and to the limit (bf16 rate / FLOPs of one step);
2. ``inference``: the generator alone, bf16 + channels_last, eager and compiled, large batches: images/s;
3. ``kaggle_zip``: ``python -m cyclegan.translate --kaggle-zip`` on 7,038 photos of 256x256 (the
   carried photos, replicated by links), wall time of the whole command;
4. ``monet_run``: ``train.py experiment=monet_10min`` with the fastest stable configuration of stage 1
   for what is left of the budget (``trainer.max_time``, ``lr_policy=linear_time``), then ``evaluate.py``
   on testB (BA) against the 250 Monet paintings, and a half-precision checkpoint of the four networks
   split into parts of at most 15 MiB (G_BA alone is 21.7 MiB in fp16, over the 16 MiB a returned
   file may have).

It writes ``DIR/gpu_suite.json`` after every stage (a killed run still returns what it measured),
``DIR/grid.jpg`` (8 test photos, their paintings and reconstructions) and ``DIR/eval_fp16.ckpt.part*``,
and prints a table of the targets last. The 87 MB Inception network does not fit the 64 MiB that a
device call carries, so on the GPU the evaluation runs with ``metrics.inception=tiny`` for SSIM, cycle
L1 and D accuracy only (its FID/KID are dropped); ``--finish-gpu DIR`` then evaluates the returned
checkpoint on the CPU with the real Inception and adds KID/FID/MiFID to the JSON.

``--dry-run`` runs the same code at tiny sizes (32 px, ngf 4, 2 timed steps, 16-photo zip, a training
of at most 20 s / 4 steps, 8 evaluated images); on a CPU the GPU-only parts (ceilings, CUDA graphs) are
recorded as skipped and ``compile`` uses the aot_eager backend (inductor's C++ build takes minutes on
2 cores). Without ``--data`` the dry run makes its own small synthetic dataset.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
from PIL import Image

from cyclegan.tools import bench
from cyclegan.errors import one_line
from cyclegan.evaluation.inception import fid_helper_weights_path
from cyclegan.tools.gpu_prepare import DATASET, PrepareError, prepare, repo_root
from cyclegan.inference.checkpoint import load_generator
from cyclegan.inference.export import export_state_dict
from cyclegan.models import build_generator
from cyclegan.serialization import safe_load

PART_BYTES = 15 * 2**20  # returned files may have 16 MiB
RESULT_FILE = "gpu_suite.json"
FINAL_FILE = "gpu_suite_final.json"
PARTS_NAME = "eval_fp16.ckpt"
# the targets: (key, label, comparison, threshold)
TARGETS = (
    ("train_best_pairs_per_s", "training, best config (pairs/s)", ">=", 200.0),
    ("train_b1_speedup", "training at batch 1, x naive", ">=", 3.0),
    ("inference_images_per_s", "generator inference (images/s)", ">=", 2000.0),
    ("kaggle_zip_seconds", "Kaggle zip of 7,038 photos (s)", "<", 20.0),
    ("kid_x1000", "KID x 1000 after the Monet run", "<=", 25.0),
    ("ssim", "SSIM(photo, painting)", ">=", 0.45),
)


@dataclass
class Plan:
    """Sizes and time budgets of one run; :func:`full_plan` (GPU) and :func:`dry_plan` (tiny, CPU)."""

    dry: bool = False
    image_size: int = 256
    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 9
    warmup: int = 10  # untimed steps per training config (compilation, cuDNN autotuning)
    steps: int = 20
    # priority order: what runs first when the stage budget is short. The b16 compiled config also fills
    # inductor's on-disk cache for the Monet run (same networks, same shapes).
    train_configs: tuple = ("fp32+b1+nofused", "bf16+cl+compile+b16", "bf16+cl+compile=reduce-overhead+b1",
                            "bf16+cl+b16", "bf16+cl+compile+b32")
    inference: tuple = ((False, 128), (True, 128), (True, 64))  # (compiled, batch), all bf16 + channels_last
    inference_warmup: int = 3
    inference_steps: int = 20
    zip_photos: int = 7038
    zip_size: int = 256
    train_seconds: int = 330  # the Monet run's trainer.max_time when the earlier stages kept to their budgets
    train_min_seconds: int = 60
    after_train_seconds: int = 75  # reserved behind the Monet run: evaluation, checkpoint parts, margin
    train_max_batch: int = 16  # monet_10min's batch; larger batches at its LR are untested
    train_default: str = "bf16+cl+compile+b16"
    train_compile: bool = True  # False: the Monet run drops the config's compile (dry run: ~13 s of CPU less)
    epoch_length: int = 16000  # pairs per epoch: few epoch ends (validation + a 340 MB checkpoint each)
    eval_images: int | None = None
    # evaluate.py's metrics.inception on the device: auto = the fid_helper network when installed there
    # (it is not carried: 87 MB), else tiny, whose FID/KID are dropped (SSIM, cycle L1, D accuracy stay)
    inception: str = "auto"
    budget: float = 575.0  # seconds for the whole suite (the device call's timeout is 600)
    stage_budgets: dict = field(default_factory=lambda: {"ceilings": 20, "training": 180, "inference": 45,
                                                         "kaggle_zip": 35})
    # expected seconds of one config, used to skip one that cannot finish inside what is left
    # (H100, 2026-11-22: ~80 s of compilation before the first compiled step, ~15 s for eager configs)
    estimates: dict = field(default_factory=lambda: {"train_eager": 20, "train_compile": 75,
                                                     "infer_eager": 5, "infer_compile": 25})
    train_overrides: tuple = ()
    eval_overrides: tuple = ()


def full_plan(**changes) -> Plan:
    return dataclasses.replace(Plan(), **changes)


def dry_plan(**changes) -> Plan:
    tiny = ("model.ngf=4", "model.ndf=4", "model.n_blocks=1", "data.image_size=32", "data.load_size=36",
            "data.num_workers=0", "data.val_size=2")
    plan = Plan(
        dry=True, image_size=32, ngf=4, ndf=4, n_blocks=1, warmup=1, steps=2,
        # one config per kind: naive, compiled (the Monet run picks it, less its compile), CUDA graphs
        train_configs=Plan.train_configs[:3],
        inference=((False, 8), (True, 8)), inference_warmup=1, inference_steps=2,
        zip_photos=16, train_seconds=20, train_min_seconds=5, after_train_seconds=20,
        train_max_batch=2, train_compile=False, epoch_length=4, eval_images=8, inception="tiny", budget=300.0,
        stage_budgets={"ceilings": 20, "training": 120, "inference": 60, "kaggle_zip": 60},
        estimates={k: 0 for k in ("train_eager", "train_compile", "infer_eager", "infer_compile")},
        train_overrides=(*tiny, "trainer.max_steps=4", "trainer.limit_val_batches=1",
                         "trainer.enable_model_summary=false"),
        eval_overrides=("data.image_size=32", "data.load_size=36", "data.num_workers=0"),
    )
    return dataclasses.replace(plan, **changes)


# ------------------------------------------------------------------------------------------- helpers
class Clock:
    """The suite's deadline and the current stage's."""

    def __init__(self, budget: float):
        self.t0 = time.perf_counter()
        self.end = self.t0 + budget
        self.stage_end = self.end

    def start_stage(self, seconds: float | None) -> None:
        now = time.perf_counter()
        self.stage_end = min(self.end, now + seconds) if seconds is not None else self.end

    def left(self) -> float:
        return self.end - time.perf_counter()

    def stage_left(self) -> float:
        return self.stage_end - time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def device_config(name: str, plan: Plan, device: torch.device) -> tuple[str | None, str]:
    """The config as it runs here (None + why when it cannot): CUDA graphs need a GPU; a dry run scales
    the batch down by 8 and, on a CPU, compiles with aot_eager."""
    tokens = name.split("+")
    if device.type != "cuda" and "compile=reduce-overhead" in tokens:
        return None, "skipped: GPU only (CUDA graphs)"
    if plan.dry:
        tokens = [f"b{max(1, int(t[1:]) // 8)}" if t.startswith("b") and t[1:].isdigit() else t for t in tokens]
        if device.type != "cuda":
            tokens = ["compile=aot_eager" if t == "compile" else t for t in tokens]
    return "+".join(tokens), ""


def hydra_overrides(cfg: bench.Config) -> list[str]:
    """A bench config as train.py overrides."""
    comp = cfg.compile
    if isinstance(comp, dict):
        comp_text = "{" + ",".join(f"{k}:{v}" for k, v in comp.items()) + "}"
    else:
        comp_text = str(comp).lower() if isinstance(comp, bool) else str(comp)
    return [f"trainer.precision={cfg.precision}", f"model.channels_last={str(cfg.channels_last).lower()}",
            f"model.compile={comp_text}", f"data.batch_size={cfg.batch}",
            f"model.fused_adam={'false' if cfg.fused_adam is False else 'null'}"]


def max_time(seconds: float) -> str:
    s = max(1, int(seconds))
    return f"00:{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def python_env() -> dict:
    env = dict(os.environ)
    root = str(repo_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no update check (the device machine is offline)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_logged(cmd: list[str], log_path: Path, timeout: float) -> dict:
    """Run ``cmd`` from the repository root with its output in ``log_path``; past ``timeout`` its process
    group gets SIGTERM (train.py then saves a checkpoint) and 20 s later SIGKILL."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timed_out = False
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=repo_root(), env=python_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                rc = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
    tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
    return {"command": " ".join(cmd[1:]), "rc": rc, "seconds": round(time.perf_counter() - t0, 2),
            "timed_out": timed_out, "tail": tail}


def write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_file(path: Path, out_dir: Path, part_bytes: int = PART_BYTES) -> list[dict]:
    parts = []
    with open(path, "rb") as f:
        for i, chunk in enumerate(iter(lambda: f.read(part_bytes), b"")):
            part = out_dir / f"{path.name}.part{i}"
            part.write_bytes(chunk)
            parts.append({"file": part.name, "bytes": len(chunk)})
    return parts


def join_parts(src_dir: Path, info: dict, dest: Path) -> Path:
    """Rebuild the checkpoint from its parts and check its size and sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        for part in info["parts"]:
            p = Path(src_dir) / part["file"]
            if not p.is_file():
                raise PrepareError(f"{p} is missing: fetch every file of the GPU run (files_at of the device call)")
            out.write(p.read_bytes())
    if dest.stat().st_size != info["bytes"] or sha256(dest) != info["sha256"]:
        raise PrepareError(f"{dest} does not match the GPU run's checkpoint (size or sha256): a part is damaged")
    return dest


def half_checkpoint(ckpt_path: Path, dest: Path) -> dict:
    """Write the four networks of a Lightning checkpoint in fp16 plus what evaluate.py needs to rebuild
    them, without optimizer states (evaluate.py and translate load it; the weights become fp32 again
    on loading); returns its epoch and global step."""
    ckpt = safe_load(ckpt_path, "cpu")
    state = {k: v.half() if torch.is_floating_point(v) else v for k, v in ckpt["state_dict"].items()}
    keep = {k: ckpt[k] for k in ("epoch", "global_step", "hyper_parameters", "pytorch-lightning_version") if k in ckpt}
    torch.save({**keep, "state_dict": state}, dest)
    return {"epoch": int(keep.get("epoch", -1)), "global_step": int(keep.get("global_step", 0))}


def synthetic_dataset(root: Path, size: int = 36) -> Path:
    """A tiny monet2photo-like folder for dry runs without prepared data."""
    base = root / DATASET
    for split, n, seed in (("trainA", 6, 1), ("testA", 4, 2), ("trainB", 8, 3), ("testB", 8, 4)):
        bench.write_jpegs(base / split, n, size, seed)
    return root


def replicate_photos(source: Path, dest: Path, count: int) -> Path:
    """``count`` photos in ``dest``: copies of the photos of ``source``, cycled.

    Copies, not links: the image lister lists each real file (inode) once, so linked repeats would not count."""
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise PrepareError(f"no photos in {source}")
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        src = files[i % len(files)]
        target = dest / f"{i:05d}_{src.name}"
        shutil.copyfile(src, target)
    return dest


# ------------------------------------------------------------------------------------------- stages
def stage_ceilings(device: torch.device, report: dict, clock: Clock) -> dict:
    if device.type != "cuda":
        return {"status": "skipped", "reason": "GPU only"}
    n = 8192
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    x = torch.randn(2**28, device=device, generator=g)  # 1 GiB of fp32
    y = torch.empty_like(x)

    def timed(fn, reps):
        for _ in range(3):
            fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000 / reps

    t_mm = timed(lambda: a @ b, 10)
    t_copy = timed(lambda: y.copy_(x), 10)
    del a, b, x, y
    torch.cuda.empty_cache()
    return {"status": "ok", "bf16_matmul_tflops": 2 * n**3 / t_mm / 1e12,
            "copy_tb_per_s": 2 * 2**30 / t_copy / 1e12, "matmul": f"{n}^3 bf16, random data, mean of 10 after 3"}


def stage_training(device: torch.device, plan: Plan, report: dict, clock: Clock) -> dict:
    args = SimpleNamespace(warmup=plan.warmup, steps=plan.steps, profile_steps=0, image_size=plan.image_size,
                           ngf=plan.ngf, ndf=plan.ndf, n_blocks=plan.n_blocks, deadline=clock.stage_end)
    rows = []
    for i, name in enumerate(plan.train_configs):
        ran_as, why = device_config(name, plan, device)
        row = {"config": name, "ran_as": ran_as}
        if ran_as is None:
            rows.append({**row, "error": why})
            continue
        cfg = bench.Config.parse(ran_as)
        need = plan.estimates["train_compile" if cfg.compile else "train_eager"]
        if clock.stage_left() < need:
            rows.append({**row, "batch": cfg.batch, "error": f"skipped: stage budget ({clock.stage_left():.0f} s "
                                                             f"left, ~{need} s needed)"})
            continue
        result = bench.bench_training(cfg, args, device, count_flops=(i == 0))
        rows.append({**dataclasses.asdict(result), **row})
        print(f"  training {ran_as}: {result.pairs_per_s:.1f} pairs/s, peak {result.peak_mib:.0f} MiB, "
              f"warm-up {result.warmup_s:.1f} s {result.error}", flush=True)
    base = rows[0] if rows and not rows[0].get("error") else None
    flops = base["extra"].get("flops_per_pair") if base else None
    tflops = report["stages"].get("ceilings", {}).get("bf16_matmul_tflops")
    limit = tflops * 1e12 / flops if flops and tflops else None
    for row in rows:
        if row.get("error") or not base:
            continue
        row["x_naive"] = row["pairs_per_s"] / base["pairs_per_s"]
        row["pct_of_limit"] = 100 * row["pairs_per_s"] / limit if limit else None
    return {"status": "ok", "configs": rows, "flops_per_pair": flops, "limit_pairs_per_s": limit}


def stage_inference(device: torch.device, plan: Plan, report: dict, clock: Clock) -> dict:
    args = SimpleNamespace(warmup=plan.inference_warmup, steps=plan.inference_steps, image_size=plan.image_size,
                           ngf=plan.ngf, n_blocks=plan.n_blocks)
    rows = []
    for compiled, batch in plan.inference:
        comp = ({"backend": "aot_eager"} if device.type != "cuda" else True) if compiled else False
        need = plan.estimates["infer_compile" if compiled else "infer_eager"]
        label = f"bf16+cl{('+compile' if comp is True else '+compile=aot_eager') if compiled else ''}+b{batch}"
        if clock.stage_left() < need:
            rows.append({"config": label, "batch": batch, "error": "skipped: stage budget"})
            continue
        result = bench.bench_inference(args, device, bf16=True, channels_last=True, compile=comp, batch=batch)
        rows.append({**dataclasses.asdict(result), "config": label, "images_per_s": result.pairs_per_s})
        print(f"  inference {label}: {result.pairs_per_s:.1f} images/s {result.error}", flush=True)
    return {"status": "ok", "configs": rows}


def stage_kaggle_zip(device: torch.device, plan: Plan, data_root: Path, work: Path, clock: Clock) -> dict:
    photos = replicate_photos(data_root / DATASET / "trainB", work / "zip_photos", plan.zip_photos)
    torch.manual_seed(0)  # the speed does not depend on the weights: a fresh generator of the full size
    gen = export_state_dict(build_generator("resnet", ngf=plan.ngf, n_blocks=plan.n_blocks), work / "G_random.pt")
    zip_path = work / "images.zip"
    cmd = [sys.executable, "-m", "cyclegan.translate", "--ckpt", str(gen), "--input", str(photos),
           "--kaggle-zip", str(zip_path), "--bf16", "--quiet",
           "--min-count", str(min(plan.zip_photos, 7000)), "--device", device.type]
    run = run_logged(cmd, work / "kaggle_zip.log", clock.stage_left())
    out = {"status": "ok" if run["rc"] == 0 else "failed", "photos": plan.zip_photos, "size": plan.zip_size,
           "wall_s": run["seconds"], **run}
    if run["rc"] == 0:
        with zipfile.ZipFile(zip_path) as zf:
            out["zip_entries"] = len(zf.namelist())
        out["zip_mib"] = zip_path.stat().st_size / 2**20
        out["images_per_s"] = plan.zip_photos / run["seconds"]
        if out["zip_entries"] != plan.zip_photos:
            out["status"] = "failed"
    print(f"  kaggle zip: {plan.zip_photos} photos in {run['seconds']:.1f} s (rc {run['rc']})", flush=True)
    return out


def pick_train_config(plan: Plan, training: dict, device: torch.device) -> tuple[str, str]:
    """The fastest stage-1 config with finite losses and a batch of at most ``plan.train_max_batch``."""
    ok = [r for r in training.get("configs", []) if not r.get("error") and r.get("extra", {}).get("finite_losses")
          and 1 < r["batch"] <= plan.train_max_batch and math.isfinite(r["pairs_per_s"])]
    if not ok:
        return device_config(plan.train_default, plan, device)[0], "default (no stage-1 config qualified)"
    best = max(ok, key=lambda r: r["pairs_per_s"])
    return best["ran_as"], f"fastest stable stage-1 config with batch <= {plan.train_max_batch}"


def evaluate_command(ckpt: Path, data_root: Path, out_dir: Path, plan: Plan, device: str, inception: str,
                     compile: str = "false", bf16: bool = False, cache: bool = False) -> list[str]:
    """evaluate.py on testB (BA) against trainA + testA, MiFID against trainA; ``cache``: keep the real
    images' features in the default feature cache (worth it on a CPU, where they cost a minute)."""
    cmd = [sys.executable, "evaluate.py", f"ckpt_path={ckpt}", "data=monet2photo", f"paths.data_dir={data_root}",
           "data.download=false", "metrics.directions=[BA]", "metrics.real_ref=train+test", "metrics.train_ref=true",
           f"metrics.inception={inception}", f"hydra.run.dir={out_dir}", "logger=none", f"device={device}",
           f"compile={compile}", f"bf16={str(bf16).lower()}", *plan.eval_overrides]
    if not cache:
        cmd.append("metrics.cache_dir=null")
    if plan.eval_images:
        cmd.append(f"metrics.max_images={plan.eval_images}")
    return cmd


def read_eval(out_dir: Path, inception: str) -> dict:
    """BA metrics of an evaluate.py run; with the tiny Inception only what does not depend on it."""
    scores = dict(json.loads((out_dir / "metrics.json").read_text())["BA"])
    if inception == "tiny":
        for key in ("fid", "kid_mean", "kid_std", "mifid", "memorization_distance", "memorization_distance_thr"):
            scores.pop(key, None)
        scores["note"] = "no Inception on the device: KID/FID/MiFID come from --finish-gpu on the CPU"
    if "kid_mean" in scores:
        scores["kid_x1000"] = 1000 * scores["kid_mean"]
    return scores


def device_inception() -> str:
    return "fid_helper" if fid_helper_weights_path() is not None else "tiny"


def stage_monet_run(device: torch.device, plan: Plan, data_root: Path, work: Path, out: Path, report: dict,
                    clock: Clock) -> dict:
    seconds = min(plan.train_seconds, clock.left() - plan.after_train_seconds)
    if seconds < plan.train_min_seconds:
        return {"status": "skipped", "reason": f"budget: {clock.left():.0f} s left"}
    config, why = pick_train_config(plan, report["stages"].get("training", {}), device)
    if not plan.train_compile:
        config = "+".join(t for t in config.split("+") if not t.startswith("compile"))
        why += ", without compile"
    cfg = bench.Config.parse(config)
    run_dir = work / "train"
    cmd = [sys.executable, "train.py", "experiment=monet_10min", f"paths.data_dir={data_root}", "data.download=false",
           f"hydra.run.dir={run_dir}", f"trainer.max_time={max_time(seconds)}", f"data.epoch_length={plan.epoch_length}",
           "callbacks.progress_bar.refresh_rate=0", "~callbacks.val_kid", "callbacks.image_grid.every_n_steps=500",
           *hydra_overrides(cfg), *plan.train_overrides]
    if device.type != "cuda":
        cmd += ["trainer.accelerator=cpu", "trainer.devices=1"]
    print(f"  monet run: {config} for {seconds:.0f} s ({why})", flush=True)
    train = run_logged(cmd, work / "train.log", clock.left() - plan.after_train_seconds + 30)
    result = {"status": "failed", "config": config, "why_config": why, "max_time_s": int(seconds), "train": train}
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        result["reason"] = "train.py left no checkpoints/last.ckpt"
        return result
    half = work / PARTS_NAME
    counters = half_checkpoint(ckpt, half)
    result.update(**counters, pairs_seen=counters["global_step"] * cfg.batch, wall_s=train["seconds"])
    result["checkpoint"] = {"bytes": half.stat().st_size, "sha256": sha256(half), "parts": split_file(half, out),
                            "what": "state_dict of G_AB, G_BA, D_A, D_B in fp16 + hyper_parameters"}
    result["status"] = "trained"
    _save_progress(report, "monet_run", result, out)

    inception = device_inception() if plan.inception == "auto" else plan.inception
    eval_dir = work / "eval"
    ev = run_logged(evaluate_command(ckpt, data_root, eval_dir, plan, device.type, inception),
                    work / "evaluate.log", max(1.0, clock.left() - 5))
    result["evaluate"] = ev
    if ev["rc"] == 0:
        result["metrics"] = read_eval(eval_dir, inception)
        result["inception"] = inception
        with Image.open(eval_dir / "samples.png") as im:  # rows: photo, painting, reconstruction
            im.convert("RGB").save(out / "grid.jpg", quality=85)
        result["status"] = "ok"
    print(f"  monet run: {result.get('pairs_seen', 0)} pairs in {train['seconds']:.0f} s, "
          f"evaluate rc {ev['rc']}", flush=True)
    return result


# ------------------------------------------------------------------------------------------- report
def _save_progress(report: dict, stage: str, result: dict, out: Path) -> None:
    report["stages"][stage] = result
    write_json(out / RESULT_FILE, report)


def target_values(report: dict) -> dict:
    stages = report.get("stages", {})
    train = [r for r in stages.get("training", {}).get("configs", []) if not r.get("error")]
    values: dict = {}
    if train:
        values["train_best_pairs_per_s"] = max(r["pairs_per_s"] for r in train)
        b1 = [r.get("x_naive") for r in train[1:] if r["batch"] == 1 and r.get("x_naive")]
        if b1 and train[0]["config"] == report["plan"]["train_configs"][0]:
            values["train_b1_speedup"] = max(b1)
    infer = [r["images_per_s"] for r in stages.get("inference", {}).get("configs", []) if not r.get("error")]
    if infer:
        values["inference_images_per_s"] = max(infer)
    z = stages.get("kaggle_zip", {})
    if z.get("status") == "ok":
        values["kaggle_zip_seconds"] = z["wall_s"]
    metrics = dict(stages.get("monet_run", {}).get("metrics", {}))
    metrics.update(report.get("finish", {}).get("metrics", {}))
    for key in ("kid_x1000", "ssim"):
        if key in metrics:
            values[key] = metrics[key]
    return values


def check_targets(report: dict) -> list[dict]:
    values = target_values(report)
    rows = []
    for key, label, op, threshold in TARGETS:
        v = values.get(key)
        met = None if v is None else (v >= threshold if op == ">=" else v <= threshold if op == "<=" else v < threshold)
        rows.append({"target": label, "key": key, "value": v, "need": f"{op} {threshold:g}", "met": met})
    return rows


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.3f}" if isinstance(v, float) and abs(v) < 10 else f"{v:.1f}" if isinstance(v, float) else str(v)


def table(report: dict) -> str:
    lines = []
    st = report["stages"]
    tr = st.get("training", {})
    if tr.get("configs"):
        lines.append(f"{'training config':38s} {'batch':>5s} {'pairs/s':>9s} {'x naive':>8s} {'% limit':>8s} "
                     f"{'peak MiB':>9s} {'warm-up s':>9s}")
        for r in tr["configs"]:
            name = r.get("ran_as") or r["config"]
            if r.get("error"):
                lines.append(f"{name:38s} {r.get('batch', ''):>5}  {r['error']}")
            else:
                lines.append(f"{name:38s} {r['batch']:5d} {r['pairs_per_s']:9.1f} {_fmt(r.get('x_naive')):>8s} "
                             f"{_fmt(r.get('pct_of_limit')):>8s} {_fmt(r['peak_mib']):>9s} {r['warmup_s']:9.1f}")
    for r in st.get("inference", {}).get("configs", []):
        extra = r["error"] if r.get("error") else f"{r['images_per_s']:.1f} images/s, peak {_fmt(r['peak_mib'])} MiB"
        lines.append(f"inference {r['config']:28s} {extra}")
    z = st.get("kaggle_zip", {})
    if z:
        lines.append(f"kaggle zip {z.get('photos', '')} photos: {z.get('status')} {_fmt(z.get('wall_s'))} s")
    m = st.get("monet_run", {})
    if m:
        lines.append(f"monet run {m.get('config', '')}: {m.get('status')} {m.get('pairs_seen', '-')} pairs in "
                     f"{_fmt(m.get('wall_s'))} s {m.get('reason', '')}")
    lines.append("")
    lines.append(f"{'target':40s} {'value':>10s} {'need':>10s}  met")
    for row in report.get("targets", []):
        met = "pending" if row["met"] is None else "yes" if row["met"] else "NO"
        lines.append(f"{row['target']:40s} {_fmt(row['value']):>10s} {row['need']:>10s}  {met}")
    if report.get("dry_run"):
        lines.append("(dry run: tiny sizes, the numbers say nothing about the targets)")
    return "\n".join(lines)


def run_suite(out: Path, data: Path | None, plan: Plan, device: torch.device, work: Path | None = None) -> dict:
    import pytorch_lightning  # noqa: F401  (configures its loggers on import; quieted below)

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(does not have many workers|LightningModule.configure_model|"
                                              "Precision bf16-mixed is not supported|tensor cores).*")
    clock = Clock(plan.budget)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(work or tempfile.mkdtemp(prefix="cyclegan-gpu-suite-"))
    work.mkdir(parents=True, exist_ok=True)
    if data is None:
        if not plan.dry:
            raise PrepareError("--data is required for a full run: python -m cyclegan.tools.gpu_suite --prepare-gpu first")
        data_root = synthetic_dataset(work / "data")
    else:
        data_root = Path(data) / "data" if (Path(data) / "data" / DATASET).is_dir() else Path(data)
        if not (data_root / DATASET).is_dir():
            raise PrepareError(f"{data} holds no {DATASET}/ (nor data/{DATASET}/): run --prepare-gpu first")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    report = {"suite": "gpu", "dry_run": plan.dry, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "device": name, "torch": torch.__version__, "cuda": torch.version.cuda, "data": str(data_root),
              "plan": dataclasses.asdict(plan), "stages": {}}
    print(f"gpu suite{' (dry run)' if plan.dry else ''} on {name}, torch {torch.__version__}; budget {plan.budget:.0f} s",
          flush=True)
    steps = (("ceilings", lambda: stage_ceilings(device, report, clock)),
             ("training", lambda: stage_training(device, plan, report, clock)),
             ("inference", lambda: stage_inference(device, plan, report, clock)),
             ("kaggle_zip", lambda: stage_kaggle_zip(device, plan, data_root, work, clock)),
             ("monet_run", lambda: stage_monet_run(device, plan, data_root, work, out, report, clock)))
    for stage, fn in steps:
        clock.start_stage(plan.stage_budgets.get(stage))
        t0 = time.perf_counter()
        print(f"[{clock.elapsed():5.0f} s] {stage}", flush=True)
        try:
            result = fn()
        except Exception as exc:  # one broken stage must not cost the others their numbers
            result = {"status": "failed", "error": f"{type(exc).__name__}: {str(exc).strip()[:300]}"}
            print(f"  {stage} failed: {result['error']}", flush=True)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        _save_progress(report, stage, result, out)
    report["seconds"] = round(clock.elapsed(), 1)
    report["targets"] = check_targets(report)
    report["returned_files"] = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.endswith(".tmp"))
    write_json(out / RESULT_FILE, report)
    print(table(report), flush=True)
    return report


def finish(gpu_dir: Path, data: Path, out: Path, bf16: bool = False, inception: str = "auto",
           device: str = "cpu") -> dict:
    """KID/FID/MiFID/SSIM of the GPU run's Monet model on this machine, from the returned parts."""
    report = json.loads((Path(gpu_dir) / RESULT_FILE).read_text())
    info = report.get("stages", {}).get("monet_run", {}).get("checkpoint")
    if not info:
        raise PrepareError(f"{gpu_dir}/{RESULT_FILE} has no checkpoint of the Monet run (stage monet_run did not train)")
    out.mkdir(parents=True, exist_ok=True)
    ckpt = join_parts(Path(gpu_dir), info, out / PARTS_NAME)
    data_root = Path(data) / "data" if (Path(data) / "data" / DATASET).is_dir() else Path(data)
    plan = Plan(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in report["plan"].items()})
    ev = run_logged(evaluate_command(ckpt, data_root, out / "eval", plan, device, inception, compile="auto",
                                     bf16=bf16, cache=True),
                    out / "evaluate.log", timeout=3600)
    if ev["rc"] != 0:
        raise PrepareError(f"evaluate.py failed (rc {ev['rc']}); see {out / 'evaluate.log'}: {' | '.join(ev['tail'])}")
    metrics = read_eval(out / "eval", inception)
    g_ba = load_generator(ckpt, direction="BA").half()
    exported = export_state_dict(g_ba, out / "G_BA_fp16.pt")
    report["finish"] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": device,
                        "bf16": bf16, "inception": inception, "metrics": metrics, "evaluate": ev,
                        "G_BA_fp16": {"file": exported.name, "bytes": exported.stat().st_size}}
    report["targets"] = check_targets(report)
    write_json(out / FINAL_FILE, report)
    print(table(report), flush=True)
    return report


# ------------------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cyclegan.tools.gpu_suite", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--suite", choices=["gpu"], help="run the GPU suite (stages 0-4)")
    mode.add_argument("--prepare-gpu", nargs="?", const=".gpu", metavar="DIR",
                      help="write wheels + images for the device call into DIR (default .gpu)")
    mode.add_argument("--finish-gpu", metavar="DIR", help="evaluate a returned GPU run on this machine")
    p.add_argument("--out", type=Path, help="--suite: folder for the JSON, grid and checkpoint parts; "
                                            "--finish-gpu: work folder (default outputs/gpu_suite_finish)")
    p.add_argument("--data", type=Path, help="the prepared folder (.gpu) or a folder holding monet2photo/")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes, GPU-only parts skipped on a CPU")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--work", type=Path, help="scratch folder (default: a new temporary folder)")
    p.add_argument("--budget", type=float, help="seconds for the whole suite (default 575; dry run 300)")
    p.add_argument("--train-seconds", type=int, help="the Monet run's trainer.max_time at most (default 330)")
    p.add_argument("--source", type=Path, default=Path("../shared/data"), help="--prepare-gpu: where monet2photo/ is")
    p.add_argument("--train-photos", type=int, default=2000, help="--prepare-gpu: trainB photos to carry")
    p.add_argument("--no-wheels", action="store_true", help="--prepare-gpu: images only")
    p.add_argument("--bf16", action="store_true", help="--finish-gpu: bf16 evaluation (about 2x faster on a CPU)")
    p.add_argument("--inception", default="auto", help="--finish-gpu: metrics.inception (default auto)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.prepare_gpu:
            manifest = prepare(Path(args.prepare_gpu), args.source, args.train_photos, wheels=not args.no_wheels)
            print(json.dumps(manifest, indent=1))
            print(f"carry total {manifest['carry_total_mib']} MiB of {manifest['carry_limit_mib']:.0f}: ok")
            return 0
        if args.finish_gpu:
            finish(Path(args.finish_gpu), args.data or Path(".gpu"), args.out or Path("outputs/gpu_suite_finish"),
                   bf16=args.bf16, inception=args.inception)
            return 0
        if args.out is None:
            print("python -m cyclegan.tools.gpu_suite: error: --suite gpu needs --out DIR", file=sys.stderr)
            return 2
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if not args.dry_run and device.type != "cuda":
            print("python -m cyclegan.tools.gpu_suite: error: --suite gpu needs a CUDA device; on a CPU add --dry-run",
                  file=sys.stderr)
            return 2
        changes = {k: v for k, v in (("budget", args.budget), ("train_seconds", args.train_seconds)) if v is not None}
        plan = dry_plan(**changes) if args.dry_run else full_plan(**changes)
        run_suite(args.out, args.data, plan, device, args.work)
        return 0
    except PrepareError as exc:
        print(f"python -m cyclegan.tools.gpu_suite: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
