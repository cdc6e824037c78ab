"""train.py end to end on the bundled sample: checkpoint, image grids, loss curves."""

import subprocess
import sys
from pathlib import Path

import torch

from cyclegan.training.run import train

ROOT = Path(__file__).resolve().parents[2]


def test_train_leaves_checkpoint_grids_and_curves(tiny_cfg, tmp_path):
    cfg = tiny_cfg("trainer.max_steps=4", "callbacks.image_grid.every_n_steps=2", "callbacks.loss_curves.every_n_steps=1")
    metrics = train(cfg)
    assert "train/G_loss_step" in metrics or "train/G_loss_epoch" in metrics
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4
    assert any(k.startswith("G_AB.") for k in ckpt["state_dict"])
    assert sorted(p.name for p in (tmp_path / "images").glob("*.png")) == ["step_0000002.png", "step_0000004.png"]
    assert (tmp_path / "loss_curves.png").stat().st_size > 0
    assert (tmp_path / "csv" / "metrics.csv").read_text().count("train/D_A_step") == 1


def test_train_py_command_line(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "train.py", "data.image_size=32", "data.load_size=36", "data.val_size=2",
           "model.ngf=4", "model.ndf=4", "model.n_blocks=1", "trainer=cpu", "trainer.max_steps=2",
           f"hydra.run.dir={run_dir}"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
