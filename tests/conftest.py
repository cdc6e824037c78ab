"""Shared test helpers: compose the real configs under conf/ with Hydra's compose API, sized tiny; the
fixtures and builders that several test modules use (fake checkpoints, random images, the CLI runner)."""

from __future__ import annotations

import os
import runpy
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import cyclegan.config.resolvers  # noqa: F401  (registers resolvers)
from cyclegan.data import UnpairedDataModule
from cyclegan.models import build_generator

# Tiny CPU models run many times faster on one thread than on two competing ones (2-core CI).
torch.set_num_threads(1)

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")

# Overrides that make any training config run in seconds on a CPU.
TINY = [
    "data=sample",
    "data.image_size=32",
    "data.load_size=36",
    "data.num_workers=0",
    "data.val_size=2",
    "model.ngf=4",
    "model.ndf=4",
    "model.n_blocks=1",
    "trainer=cpu",
    "trainer.max_steps=2",
    "trainer.limit_val_batches=1",
    "trainer.enable_model_summary=false",
    "callbacks.val_kid.inception=tiny",  # the real Inception costs seconds per run; tested in test_metrics
]


def compose_config(output_dir: str | Path, *overrides: str, config_name: str = "train") -> DictConfig:
    """Compose conf/<config_name>.yaml with overrides; the Hydra run dir is replaced by `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture
def tiny_cfg(tmp_path):
    """`tiny_cfg(*extra_overrides)` -> a composed train config writing under tmp_path."""

    def make(*overrides: str, config_name: str = "train") -> DictConfig:
        return compose_config(tmp_path, *TINY, *overrides, config_name=config_name)

    return make


class RandomPairs(Dataset):
    """`n` reproducible pairs of random [-1, 1] images (item i is the same on every call)."""

    def __init__(self, n=8, size=32):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"A": torch.rand(3, self.size, self.size, generator=g) * 2 - 1,
                "B": torch.rand(3, self.size, self.size, generator=g) * 2 - 1}

# ----------------------------------------------------------------------------- shared by several test modules
ROOT = Path(__file__).resolve().parents[1]
TINY_RESNET = ("resnet", {"ngf": 4, "n_blocks": 1})


@pytest.fixture(scope="module", autouse=True)
def single_threaded_torch():
    """One intra-op thread: tiny CPU models gain nothing from two, and on a busy machine two
    threads spin against other processes and make a tiny run tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# TINY for the command line, without the validation KID unless a test needs it.
TINY_CLI = [*(o for o in TINY if not o.startswith("callbacks.val_kid")), "data.epoch_length=2",
            "callbacks.progress_bar.refresh_rate=0", "~callbacks.val_kid"]

# The tiny CycleGAN the module-level tests build directly (CycleGAN(**TINY_MODEL)).
TINY_MODEL = dict(ngf=4, ndf=4, n_blocks=1, d_layers=2)


def tiny_with(*overrides: str) -> list[str]:
    """TINY with ``overrides`` replacing TINY's entries for the same key or group."""
    keys = {o.split("=")[0] for o in overrides}
    return [o for o in TINY if o.split("=")[0] not in keys] + list(overrides)


def tiny_fit(root: Path, model: pl.LightningModule, callbacks: list, max_steps: int, ckpt_path=None) -> pl.Trainer:
    """Fit ``model`` on random pairs for ``max_steps`` on the CPU, without loggers or checkpoints."""
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         default_root_dir=str(root), callbacks=callbacks)
    trainer.fit(model, DataLoader(RandomPairs(), batch_size=2), ckpt_path=ckpt_path, weights_only=True)
    return trainer


def write_image(path: Path, size=(40, 30), mode="RGB", fmt=None, color=(200, 100, 50), **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).convert(mode).save(path, format=fmt, **kw)
    return path


def folders_dm(dir_a: Path, dir_b: Path, **kw):
    """A tiny folders-source datamodule over ``dir_a`` / ``dir_b`` (main process, 16 px)."""
    base = dict(name="f", source="folders", dir_a=str(dir_a), dir_b=str(dir_b), image_size=16, load_size=20,
                batch_size=1, num_workers=0, pin_memory=False, persistent_workers=False, val_size=0)
    base.update(kw)
    return UnpairedDataModule(**base)


def run_train_py(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """`python train.py *args` in a child process (exit code, stdout and stderr as a user sees them)."""
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def run_cli(*args: str) -> None:
    """`python train.py *args`, in this process (as __main__, so Hydra finds conf/ beside the file)."""
    GlobalHydra.instance().clear()
    argv = sys.argv
    sys.argv = [str(ROOT / "train.py"), *args]
    try:
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()


def make_ckpt(path, name="resnet", kw=None, seed=0):
    """A fake Lightning checkpoint: hyper_parameters + G_AB/G_BA/D_A/D_B state dicts."""
    kw = dict(TINY_RESNET[1] if kw is None else kw)
    torch.manual_seed(seed)
    g_ab = build_generator(name, **kw).eval()
    g_ba = build_generator(name, **kw).eval()
    sd = {f"G_AB.{k}": v for k, v in g_ab.state_dict().items()}
    sd.update({f"G_BA.{k}": v for k, v in g_ba.state_dict().items()})
    sd.update({"D_A.model.0.weight": torch.zeros(2, 3, 4, 4), "D_B.model.0.weight": torch.zeros(2, 3, 4, 4)})
    hp = {"gen": name, "ngf": kw.get("ngf", 64), "n_blocks": kw.get("n_blocks", 9), "unet_depth": kw.get("depth", 8),
          "norm": "instance", "dropout": False, "lr": 2e-4, "lambda_cyc": 10.0, "disc": "basic"}
    torch.save({"state_dict": sd, "hyper_parameters": hp, "epoch": 1, "global_step": 10,
                "pytorch-lightning_version": "2.6.0"}, path)
    return g_ab, g_ba


def state_dict_listing(path) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) rows of a reference listing file (``key<TAB>(shape)``, ``#`` comments)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape = line.split("\t")
            rows.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    return rows


def rand_img(h, w, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    ch = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    a = rng.integers(0, 256, (h, w, ch), dtype=np.uint8)
    return Image.fromarray(a[..., 0] if ch == 1 else a, mode)


@pytest.fixture()
def photos(tmp_path):
    """A folder holding one 16x16 photo, ``p.png`` (the input of a translation or comparison)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rand_img(16, 16).save(folder / "p.png")
    return folder


class RunsACommand:
    """Unpickling it would run a shell command that touches ``marker`` (a malicious checkpoint's payload)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ----------------------------------------------------------------------------- reading an offline W&B run
def _wandb_records(path: Path):
    """Records of a `run-<id>.wandb` file: a 7-byte header, then LevelDB-log chunks in 32 KiB blocks
    (4-byte checksum, 2-byte length, 1-byte type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2  # slow to import: only the W&B tests need it

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, parts = 7, []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # zero padding up to the block's end
            pos += block - pos % block
            continue
        parts.append(data[pos + 7:pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


def wandb_run_records(run_dir: Path) -> dict:
    """What the offline W&B run(s) under `run_dir`/wandb recorded: the run record, config (key -> JSON),
    history keys and the media files. With several runs (a resumed one), the newest."""
    import wandb

    wandb.teardown()  # the wandb-core service writes the log asynchronously: wait until it has flushed
    logs = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    assert logs, f"no offline W&B run under {run_dir}/wandb"
    out = {"run": None, "config": {}, "history_keys": set(), "artifacts": [], "path": logs[-1]}
    for record in _wandb_records(logs[-1]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
        elif kind == "config":
            out["config"].update({item.key: item.value_json for item in record.config.update})
        elif kind == "artifact":
            out["artifacts"].append((record.artifact.type, [entry.path for entry in record.artifact.manifest.contents]))
        elif kind == "history":
            out["history_keys"] |= {item.key or "/".join(item.nested_key) for item in record.history.item}
    out["media"] = sorted(p.name for p in logs[-1].parent.glob("files/media/images/**/*.png"))
    return out
