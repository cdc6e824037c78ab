"""A run stopped by `trainer.max_steps` on the last batch of an epoch resumes at the next epoch
(cyclegan/training/resume.py, start_after_finished_epoch).

Lightning takes such a checkpoint, under max_steps, for a restart inside the epoch end it already went
through: it ran the end again, counted the epoch twice and stepped the LR once more, so the resumed
run of a 2-epoch schedule stopped at once ("nothing was trained ... (epoch 2)"). A run that really is
finished is still refused before any of its files is touched.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from conftest import TINY, compose_config
from cyclegan.training.resume_checkpoint import NothingTrained, read_checkpoint
from cyclegan.training.run import train

# 2 steps per epoch, one constant-LR epoch then one decay epoch; no KID (not under test)
TWO_EPOCHS = [*TINY, "data.epoch_length=2", "model.n_epochs=1", "model.n_epochs_decay=1", "callbacks.val_kid=null",
              "callbacks.progress_bar.refresh_rate=0"]


def rows(run: Path, column: str) -> list[tuple[int, int, float]]:
    """(step, epoch, value) of each metrics.csv row that has ``column``."""
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return [(int(r["step"]), int(r["epoch"]), float(r[column])) for r in csv.DictReader(f) if r.get(column)]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def scheduler_lrs(run: Path) -> list[list[float]]:
    return [s["_last_lr"] for s in read_checkpoint(run / "checkpoints" / "last.ckpt")["lr_schedulers"]]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def stopped(outputs) -> Path:
    """The first epoch stopped by max_steps=2 on its last batch: a copy, kept as it was."""
    run = outputs / "run"
    train(compose_config(run, *TWO_EPOCHS, "trainer.max_steps=2"))
    shutil.copytree(run, outputs / "stopped")
    return outputs / "stopped"


@pytest.fixture(scope="module")
def resumed(outputs, stopped) -> Path:
    """That run resumed in place with ckpt_path=last and max_steps=4."""
    run = outputs / "run"
    train(compose_config(run, *TWO_EPOCHS, "trainer.max_steps=4", "ckpt_path=last"))
    return run


@pytest.fixture(scope="module")
def uninterrupted(outputs) -> Path:
    run = outputs / "uninterrupted"
    train(compose_config(run, *TWO_EPOCHS, "trainer.max_steps=4"))
    return run


def test_resumed_run_trains_the_decay_epoch_with_contiguous_steps(resumed):
    logged = rows(resumed, "train/G_loss_step")
    assert [(step, epoch) for step, epoch, _ in logged] == [(0, 0), (1, 0), (2, 1), (3, 1)]
    checkpoint = read_checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert (checkpoint["global_step"], checkpoint["epoch"]) == (4, 1)


def test_resumed_run_matches_the_uninterrupted_one(resumed, uninterrupted):
    assert rows(resumed, "train/lr") == rows(uninterrupted, "train/lr")  # the decay epoch's LR, stepped once
    assert rows(resumed, "train/lr")[2][2] == pytest.approx(rows(resumed, "train/lr")[0][2] / 2)
    assert scheduler_lrs(resumed) == scheduler_lrs(uninterrupted)
    for column in ("train/G_loss_step", "train/D_A_step", "train/G_loss_epoch", "val/cycle_A"):
        got, expected = rows(resumed, column), rows(uninterrupted, column)
        assert [r[:2] for r in got] == [r[:2] for r in expected], column
        assert [r[2] for r in got] == pytest.approx([r[2] for r in expected], rel=1e-4, abs=1e-6), column


@pytest.mark.parametrize("what, overrides", [
    ("all epochs done", ["trainer.max_steps=6"]),
    ("max_steps already reached", ["trainer.max_steps=4"]),
])
def test_a_finished_run_is_refused_and_left_as_it_was(uninterrupted, what, overrides):
    run = uninterrupted
    before = snapshot(run)
    with pytest.raises(NothingTrained, match="left as it was"):
        train(compose_config(run, *TWO_EPOCHS, *overrides, "ckpt_path=last"))
    assert snapshot(run) == before, what


def test_a_run_stopped_by_max_steps_is_refused_when_max_steps_is_not_raised(stopped, tmp_path):
    run = tmp_path / "stopped"
    shutil.copytree(stopped, run)
    before = snapshot(run)
    with pytest.raises(NothingTrained, match="step 2"):
        train(compose_config(run, *TWO_EPOCHS, "trainer.max_steps=2", "ckpt_path=last"))
    assert snapshot(run) == before


def test_a_longer_schedule_resumed_under_max_steps_keeps_every_epoch_and_its_lr(tmp_path):
    # 3 epochs: the double-counted epoch did not stop this one, it silently dropped an epoch and decayed the LR early
    three_epochs = [*TWO_EPOCHS, "model.n_epochs=2"]
    run, uninterrupted = tmp_path / "run", tmp_path / "uninterrupted"
    train(compose_config(run, *three_epochs, "trainer.max_steps=2"))
    train(compose_config(run, *three_epochs, "trainer.max_steps=6", "ckpt_path=last"))
    train(compose_config(uninterrupted, *three_epochs, "trainer.max_steps=6"))
    assert [r[:2] for r in rows(run, "train/lr")] == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2)]
    assert rows(run, "train/lr") == rows(uninterrupted, "train/lr")
