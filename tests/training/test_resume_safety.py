"""Resume never loses progress or goes back in time (issue 12, section 2; issue 13, "Resume").

Every run here is the tiny CPU model on the bundled sample: 4 steps per epoch, a few epochs.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import os
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from conftest import TINY, compose_config, run_cli
from cyclegan.config.checks import ConfigError
from cyclegan.common.errors import exit_on_user_error
from cyclegan.training.preflight import check_resume_checkpoint, preflight_run
from cyclegan.training.nan_guard import TrainingDiverged
from cyclegan.training.resume_checkpoint import find_last_checkpoint
from cyclegan.training.shutdown import TrainingInterrupted
from cyclegan.training.run import resolve_ckpt_path, train

# 3 epochs of 4 steps, an end-of-epoch checkpoint after each, no validation KID (not under test)
QUICK = [*TINY, "data.epoch_length=4", "model.n_epochs=3", "model.n_epochs_decay=0", "trainer.max_steps=-1",
         "callbacks.val_kid=null", "callbacks.progress_bar.refresh_rate=0", "callbacks.loss_curves.every_n_steps=1"]
STARTS: dict[str, int] = {}  # output dir -> global step at which its fit started
INITIAL: dict[str, dict] = {}  # output dir -> the weights its fit started from


class RecordStart(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        STARTS[str(trainer.default_root_dir)] = trainer.global_step
        INITIAL[str(trainer.default_root_dir)] = {k: v.clone() for k, v in pl_module.state_dict().items()}


class CtrlC(pl.Callback):
    """Ctrl-C during the training step that brings the global step to `at`: the stop saves there."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.at - 1:
            signal.raise_signal(signal.SIGINT)  # handled synchronously, before this hook returns


class CtrlCAgainWhileSaving(pl.Callback):
    """The impatient user: Ctrl-C again while the first one's checkpoint is being built, and once more
    while Lightning cleans up after the stop."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        signal.raise_signal(signal.SIGINT)

    def on_exception(self, trainer, pl_module, exception):
        signal.raise_signal(signal.SIGINT)


def ctrl_c_at(step: int) -> list[str]:
    return ["+callbacks.ctrl_c._target_=test_resume_safety.CtrlC", f"+callbacks.ctrl_c.at={step}"]


RECORD_START = ["+callbacks.record_start._target_=test_resume_safety.RecordStart"]


@pytest.fixture(autouse=True)
def signal_handlers_restored():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


def step_of(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def fit_and_exit_code(cfg) -> int:
    """train() as train.py runs it: the exit status a user would see."""
    with pytest.raises(SystemExit) as exit_info, exit_on_user_error():
        train(cfg)
    return exit_info.value.code


def result_status(run: Path) -> str:
    return json.loads((run / "result.json").read_text())["status"]


# ----------------------------------------------------------------------------- `last` is the newest state
def test_last_is_the_newest_state_with_one_last_ckpt_after_an_early_interrupt_and_a_resume(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):  # before the first periodic checkpoint (step 4)
        train(compose_config(run, *QUICK, *ctrl_c_at(2)))
    train(compose_config(run, *QUICK, "ckpt_path=last", "trainer.max_steps=8"))  # resumed in place, finished
    lasts = sorted(p.name for p in (run / "checkpoints").glob("last*.ckpt"))
    assert lasts == ["last.ckpt"] and step_of(run / "checkpoints" / "last.ckpt") == 8
    train(compose_config(run, *QUICK, *RECORD_START, "ckpt_path=last"))  # the next `last` starts from there
    assert STARTS[str(run)] == 8 and step_of(run / "checkpoints" / "last.ckpt") == 12


def test_last_picks_the_highest_global_step_whatever_the_file_names(tmp_path):
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    for name, step in (("last.ckpt", 2), ("last-v1.ckpt", 8), ("epoch_000.ckpt", 4), ("broken.ckpt", None)):
        if step is None:
            (ckpts / name).write_bytes(b"PK\x03\x04 half a checkpoint")
        else:
            torch.save({"global_step": step}, ckpts / name)  # last-v1.ckpt: left by an older version
    assert find_last_checkpoint(tmp_path / "run") == ckpts / "last-v1.ckpt"


def test_ckpt_path_last_with_nothing_to_resume_is_one_line_saying_where_it_looked(tmp_path, caplog):
    run = tmp_path / "outputs" / "train" / "new_run"
    with caplog.at_level(logging.ERROR):
        assert fit_and_exit_code(compose_config(run, *QUICK, "ckpt_path=last")) == 2
    message = caplog.records[-1].getMessage()
    assert "no checkpoint to resume" in message and str(run / "checkpoints") in message and "\n" not in message
    with pytest.raises(Exception, match="no such file"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"), str(run))


# ----------------------------------------------------------------------------- nothing to train
def test_a_schedule_of_zero_steps_fails_before_start(tmp_path, caplog):
    run = tmp_path / "run"
    with caplog.at_level(logging.ERROR):
        assert fit_and_exit_code(compose_config(run, *TINY, "model.n_epochs=0", "model.n_epochs_decay=0")) == 2
    assert "trains nothing" in caplog.records[-1].getMessage()
    assert not (run / "checkpoints").exists() and not (run / "result.json").exists()  # refused: no run
    with pytest.raises(ConfigError, match="trainer.max_steps=0 trains nothing"):
        train(compose_config(run, *TINY, "trainer.max_steps=0"))


def test_resuming_a_finished_run_says_there_is_nothing_left_to_train(tmp_path, caplog):
    run = tmp_path / "run"
    train(compose_config(run, *QUICK, "model.n_epochs=1"))
    assert result_status(run) == "ok"
    with caplog.at_level(logging.ERROR):
        assert fit_and_exit_code(compose_config(run, *QUICK, "model.n_epochs=1", "ckpt_path=last")) == 2
    message = caplog.records[-1].getMessage()
    assert "nothing was trained" in message and "step 4" in message and "trainer.max_epochs=1" in message
    assert result_status(run) == "ok"  # the finished run's record is untouched


# ----------------------------------------------------------------------------- metrics history
def logged_steps(metrics_csv: Path, column: str) -> list[int]:
    with open(metrics_csv, newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get(column)]


@pytest.mark.parametrize("where", ["in_place", "new_folder"])
def test_the_metrics_history_of_a_resumed_run_has_every_step_once(tmp_path, where):
    first = tmp_path / "first"
    with pytest.raises(TrainingInterrupted):
        train(compose_config(first, *QUICK, "model.n_epochs=2", *ctrl_c_at(6)))  # mid-epoch, after 1 checkpoint
    resumed = first if where == "in_place" else tmp_path / "resumed"
    train(compose_config(resumed, *QUICK, "model.n_epochs=2", f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}"))

    uninterrupted = tmp_path / "uninterrupted"
    train(compose_config(uninterrupted, *QUICK, "model.n_epochs=2"))
    for column in ("train/G_loss_step", "train/lr", "train/G_loss_epoch"):
        expected = logged_steps(uninterrupted / "csv" / "metrics.csv", column)
        assert logged_steps(resumed / "csv" / "metrics.csv", column) == expected, column
    assert logged_steps(resumed / "csv" / "metrics.csv", "train/G_loss_step") == list(range(8))
    # the loss-curve plot is drawn from the history kept in the checkpoint: every step once too
    state = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    history = next(v for k, v in state.items() if k.startswith("LossCurvePlot"))["history"]
    assert [step for step, _ in history["G_loss"]] == list(range(1, 9))


# ----------------------------------------------------------------------------- divergence
def test_the_emergency_checkpoint_holds_the_last_good_state_and_a_resume_may_lower_the_rate(tmp_path, caplog):
    # lr=1e30: the first update (from finite gradients) blows the weights up, the next step is NaN
    run = tmp_path / "run"
    exploding = [*QUICK, "model.lr_policy=constant", "model.lr=1e30", "model.n_epochs=1", "callbacks.nan_guard.keep_last_good=true"]
    with pytest.raises(TrainingDiverged) as e:
        train(compose_config(run, *exploding, *RECORD_START))
    initial = INITIAL[str(run)]
    ckpt = torch.load(e.value.checkpoint, weights_only=True)
    for name, value in ckpt["state_dict"].items():  # the weights before the update that exploded
        assert torch.equal(value, initial[name]), name
    assert all(not s["state"] for s in ckpt["optimizer_states"])  # Adam as before that update: no moments yet

    with caplog.at_level(logging.INFO):
        train(compose_config(run, *exploding, "model.lr=1e-4", "trainer.max_steps=4", f"ckpt_path={e.value.checkpoint}"))
    final = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == 4
    assert [s["param_groups"][0]["lr"] for s in final["optimizer_states"]] == pytest.approx([1e-4, 1e-4])
    assert all(torch.isfinite(v).all() for v in final["state_dict"].values())
    said = [r.getMessage() for r in caplog.records if "replaces the rate stored in the checkpoint" in r.getMessage()]
    assert len(said) == 2 and "model.lr=0.0001" in said[0] and "1e+30" in said[0]


# ----------------------------------------------------------------------------- interruption
def test_ctrl_c_again_while_stopping_still_saves_and_records_the_interruption(tmp_path):
    run = tmp_path / "run"
    cfg = compose_config(run, *QUICK, *ctrl_c_at(3), "+callbacks.again._target_=test_resume_safety.CtrlCAgainWhileSaving")
    assert fit_and_exit_code(cfg) == 130
    assert step_of(run / "checkpoints" / "last.ckpt") == 3
    assert result_status(run) == "interrupted"


def test_temporary_files_of_a_killed_save_are_removed_at_the_next_start(tmp_path):
    cfg = compose_config(tmp_path / "run", *QUICK)
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    stale = ckpts / ".last.ckpt.tmp-99999999"  # no such process: its writer was killed
    live = ckpts / f".last.ckpt.tmp-{os.getppid()}"  # a running process might still be writing this one
    for path in (stale, live):
        path.write_bytes(b"PK\x03\x04 half a checkpoint")
    preflight_run(cfg)
    assert not stale.exists() and live.exists()


# ----------------------------------------------------------------------------- full disk
def test_a_disk_that_fills_during_training_stops_with_one_line_naming_the_last_good_checkpoint(
        tmp_path, monkeypatch, caplog):
    import cyclegan.training.atomic_checkpoint as resume

    run, opened = tmp_path / "run", []

    class FullDisk(io.FileIO):
        """A checkpoint file on a disk that is full: every write fails as the kernel's would."""

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def open_checkpoint(path, mode="r", *args, **kwargs):
        opened.append(path)
        if len(opened) > 2:  # epoch 0 saved epoch_000.ckpt and last.ckpt; then the disk is full
            return FullDisk(path, mode)
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(resume, "open", open_checkpoint, raising=False)  # AtomicCheckpointIO's open()
    with caplog.at_level(logging.ERROR):
        assert fit_and_exit_code(compose_config(run, *QUICK)) == 2
    monkeypatch.undo()
    message = caplog.records[-1].getMessage()
    last = run / "checkpoints" / "last.ckpt"
    assert "disk is full" in message and f"ckpt_path={last}" in message and "\n" not in message
    check_resume_checkpoint(last)  # loads, and is the state of the end of epoch 0
    assert step_of(last) == 4 and not list((run / "checkpoints").glob(".*tmp*"))


# ----------------------------------------------------------------------------- resume in place keeps its config
def test_resume_in_place_reuses_the_runs_stored_configuration(tmp_path):
    run = tmp_path / "run"
    first = [*TINY, "logger=none", "data.epoch_length=2", "model.n_epochs=1", "model.n_epochs_decay=2",
             "callbacks.val_kid=null", "trainer.max_steps=2"]  # stops after the first of 3 epochs
    run_cli(*first, f"hydra.run.dir={run}")
    # none of those overrides again, except a longer run: the stored values must be used
    run_cli("ckpt_path=last", f"hydra.run.dir={run}", "trainer.max_steps=4")
    used = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert (used.data.epoch_length, used.model.n_epochs_decay, used.model.ngf, used.trainer.max_steps) == (2, 2, 4, 4)
    assert not used.logger and not (run / "csv").exists()  # logger=none, not the default csv
    assert step_of(run / "checkpoints" / "last.ckpt") == 4
    assert "in place with its stored configuration" in (run / "train.log").read_text()
    # a second resume keeps them too (Hydra stored the merged overrides), and a conflicting
    # architecture is still refused
    with pytest.raises(SystemExit) as refused:
        run_cli("ckpt_path=last", f"hydra.run.dir={run}", "model.ngf=8")
    assert refused.value.code == 2 and "different architecture" in (run / "train.log").read_text()
