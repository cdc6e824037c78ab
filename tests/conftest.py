"""Shared test helpers: compose the real configs under conf/ with Hydra's compose API, sized tiny."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from torch.utils.data import Dataset
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

import cyclegan.config.resolvers  # noqa: F401  (registers resolvers)

import torch

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
