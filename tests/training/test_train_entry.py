"""train.py end to end on the bundled sample: checkpoint, image grids, loss curves."""

import torch

from conftest import TINY_CLI, run_train_py
from cyclegan.training.run import train


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
    result = run_train_py(*TINY_CLI, f"hydra.run.dir={run_dir}", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()


def test_a_run_shorter_than_an_epoch_and_the_intervals_still_plots_and_says_why_no_objective(tiny_cfg, tmp_path,
                                                                                            caplog):
    # 2 steps of a 26-step epoch, image grids every 100 steps, loss points every 50: nothing was due
    cfg = tiny_cfg("callbacks.image_grid.every_n_steps=100", "callbacks.loss_curves.every_n_steps=50")
    with caplog.at_level("INFO"):
        metrics = train(cfg)
    assert [p.name for p in (tmp_path / "images").glob("*.png")] == ["step_0000002.png"]  # the final grid
    assert (tmp_path / "loss_curves.png").stat().st_size > 0
    assert metrics["objective"] == metrics["train/G_loss_epoch"]  # the fallback, with the reason below
    message = next(r.getMessage() for r in caplog.records if "optimized_metric=val/kid was not logged" in r.getMessage())
    assert "validation interval was not reached" in message and "trainer.max_steps=2" in message
    assert "is callbacks.val_kid on" not in message


def test_the_missing_objective_names_an_absent_callback_or_validation_that_is_off(tiny_cfg):
    from cyclegan.training.run import missing_metric_reason

    assert missing_metric_reason({}, "val/kid", tiny_cfg("~callbacks.val_kid")) == "callbacks.val_kid is off"
    assert "limit_val_batches=0" in missing_metric_reason({}, "val/kid", tiny_cfg("trainer.limit_val_batches=0"))
    assert "val/cycle_A" in missing_metric_reason({"val/cycle_A": 0.1}, "val/kid", tiny_cfg())
