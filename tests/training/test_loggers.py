"""CSV, TensorBoard and W&B (offline) log the same scalars; TensorBoard and W&B get the image grids;
the loss-curve PNG is drawn from the logged values; logger groups compose alone and together."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import TINY, compose_config, wandb_run_records
from cyclegan.common.loggers import instantiate_group
from cyclegan.training.run import train

SCALARS = {"train/G_loss_step", "train/D_A_step", "train/D_B_step", "train/cycle_A_step", "train/lr",
           "train/G_loss_epoch", "val/cycle_A", "val/cycle_B", "val/kid"}


# ----------------------------------------------------------------------------- one run, three loggers
@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("loggers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_DIR", str(out / "wandb_dir"))
        mp.setenv("WANDB_PROJECT", "cyclegan-tests")
        cfg = compose_config(out, *TINY, "logger=many", "logger.wandb.log_model=true", "trainer.max_steps=4",
                             "data.epoch_length=2",
                             "callbacks.image_grid.every_n_steps=2", "callbacks.loss_curves.every_n_steps=1",
                             "callbacks.val_kid.inception=tiny", "callbacks.val_kid.num_images=2")
        train(cfg)
    return out


def test_csv_tensorboard_and_wandb_log_the_same_scalars(logged_run):
    with open(logged_run / "csv" / "metrics.csv", newline="") as f:
        csv_keys = set(next(csv.reader(f)))
    events = EventAccumulator(str(next((logged_run / "tensorboard").glob("events.out.tfevents.*"))),
                              size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    wandb_run = wandb_run_records(logged_run)
    assert SCALARS <= csv_keys
    assert SCALARS <= set(events.Tags()["scalars"])
    assert SCALARS <= wandb_run["history_keys"]
    # the same values: the per-step generator loss, as CSV and TensorBoard saw it
    with open(logged_run / "csv" / "metrics.csv", newline="") as f:
        csv_g = [float(r["train/G_loss_step"]) for r in csv.DictReader(f) if r["train/G_loss_step"]]
    assert [e.value for e in events.Scalars("train/G_loss_step")] == pytest.approx(csv_g)
    assert len(csv_g) == 4


def test_image_grids_reach_tensorboard_wandb_and_the_run_folder(logged_run):
    events = EventAccumulator(str(next((logged_run / "tensorboard").glob("events.out.tfevents.*"))),
                              size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Images("train/images")] == [2, 4]
    wandb_run = wandb_run_records(logged_run)
    assert "train/images/_type" in wandb_run["history_keys"] and len(wandb_run["media"]) == 2
    assert sorted(p.name for p in (logged_run / "images").glob("*.png")) == ["step_0000002.png", "step_0000004.png"]


def test_wandb_run_has_the_config_overrides_and_project_from_the_environment(logged_run):
    wandb_run = wandb_run_records(logged_run)
    assert wandb_run["run"].project == "cyclegan-tests"
    assert wandb_run["run"].display_name == "sample_resnet"  # run_name
    assert json.loads(wandb_run["config"]["model"])["ngf"] == 4
    assert json.loads(wandb_run["config"]["overrides"]) == []  # composed without Hydra's command line
    # the checkpoint remembers the run, so a resumed run continues it (test_resume.py)
    ckpt = torch.load(logged_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["wandb_run_id"] == wandb_run["run"].run_id
    # logger.wandb.log_model=true: the checkpoint goes up as a model artifact at the end
    assert ("model", ["model.ckpt"]) in wandb_run["artifacts"]


def test_loss_curve_png_is_drawn_from_the_logged_values(logged_run):
    assert (logged_run / "loss_curves.png").stat().st_size > 0
    ckpt = torch.load(logged_run / "checkpoints" / "last.ckpt", weights_only=True)
    history = next(v for k, v in ckpt["callbacks"].items() if k.startswith("LossCurvePlot"))["history"]
    with open(logged_run / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for term in ("G_loss", "D_A", "cycle_B"):
        logged = [float(r[f"train/{term}_step"]) for r in rows if r[f"train/{term}_step"]]
        assert [value for _, value in history[term]] == pytest.approx(logged)


# ----------------------------------------------------------------------------- composition
def test_logger_lists_compose_and_instantiate(tmp_path):
    cfg = compose_config(tmp_path, "logger=[csv,tensorboard]")
    loggers = instantiate_group(cfg.logger)
    assert [type(lg).__name__ for lg in loggers] == ["CSVLogger", "TensorBoardLogger"]
    assert compose_config(tmp_path, "logger=none").logger in (None, {})


def test_wandb_entity_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_ENTITY", "my-team")
    cfg = compose_config(tmp_path, "logger=wandb")
    assert cfg.logger.wandb.entity == "my-team" and cfg.logger.wandb.id is None
