"""Inference, the data pipeline and the Kaggle zip, timed: images/s a trained model turns out, pairs/s the loader feeds."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cyclegan.data import UnpairedDataModule
from cyclegan.gan.speed import replace_instance_norms
from cyclegan.inference.kaggle import make_kaggle_zip
from cyclegan.models import build_generator
from cyclegan.tools.bench_common import Result, peak_mib, reset_device, smooth_images, sync


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




def bench_kaggle_zip(args, device: torch.device, photo_dir: Path, zip_path: Path, bf16: bool) -> Result:
    """The Kaggle submission end to end (:func:`make_kaggle_zip`: decode, translate, encode, zip) on the
    photos in ``photo_dir``, with an untrained generator of the benchmark's size: images/s and wall time."""
    count = len(list(photo_dir.iterdir()))
    result = Result(f"Kaggle zip of {count} photos{' bf16' if bf16 else ''}", args.inference_batch)
    reset_device(device)
    try:
        net = build_generator("resnet", ngf=args.ngf, n_blocks=args.n_blocks)
        t0 = time.perf_counter()
        make_kaggle_zip(net, photo_dir, zip_path, min_count=count, max_count=count, device=device, bf16=bf16,
                        batch_size=args.inference_batch, progress=False)
        sync(device)
        elapsed = time.perf_counter() - t0
        result.pairs_per_s = count / elapsed
        result.ms_per_step = 1000 * elapsed / count
        result.peak_mib = peak_mib(device)
        result.extra["wall_s"] = elapsed
    except Exception as e:  # noqa: BLE001 - reported in its row
        result.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    reset_device(device)
    return result
