"""A resume never leaves its run (issue 24, "State that goes back in time or is lost"): `ckpt_path=last`
takes the run's own checkpoints only, a run folder's stored overrides may not run code, logged steps
continue where the run stopped, and a run folder without its `.hydra` is resumed with a warning.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from conftest import TINY, compose_config, run_cli
from cyclegan.config import overrides
from cyclegan.common.errors import exit_on_user_error
from cyclegan.training.resume_checkpoint import read_checkpoint
from cyclegan.training.run import train

# 2 steps per epoch, up to 10 epochs, an end-of-epoch checkpoint after each; no KID (not under test)
QUICK = [*TINY, "data.epoch_length=2", "model.n_epochs=10", "model.n_epochs_decay=0", "callbacks.val_kid=null",
         "callbacks.progress_bar.refresh_rate=0"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def logged_steps(run: Path, column: str) -> list[int]:
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get(column)]


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory) -> Path:
    """A run stopped by trainer.max_steps=6 at the end of its 3rd epoch (a loadable, resumable checkpoint)."""
    run = tmp_path_factory.mktemp("outputs") / "six_steps"
    train(compose_config(run, *QUICK, "trainer.max_steps=6"))
    return run


# ----------------------------------------------------------------------------- only the run's own checkpoints
def torchscript_payload(path: Path) -> None:
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))


@pytest.mark.parametrize("broken", ["truncated", "torchscript"])
def test_last_with_no_loadable_checkpoint_of_its_own_is_one_line_and_takes_no_sibling(six_steps, tmp_path, broken,
                                                                                       caplog):
    run = six_steps.parent / f"broken_{broken}"
    (run / "checkpoints").mkdir(parents=True)
    last = run / "checkpoints" / "last.ckpt"
    if broken == "truncated":
        last.write_bytes((six_steps / "checkpoints" / "last.ckpt").read_bytes()[:4096])
    else:
        torchscript_payload(last)
    before, sibling = snapshot(run), snapshot(six_steps)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_info, exit_on_user_error():
        train(compose_config(run, *QUICK, "trainer.max_steps=8", "ckpt_path=last"))
    assert exit_info.value.code == 2
    message = caplog.records[-1].getMessage()
    assert "\n" not in message and f"no checkpoint of {run} can be resumed" in message and "last.ckpt:" in message
    assert snapshot(run) == before and snapshot(six_steps) == sibling  # nothing written, the sibling untouched


# ----------------------------------------------------------------------------- logged steps
def test_extending_a_finished_run_logs_every_step_once(six_steps, tmp_path):
    run, uninterrupted = tmp_path / "extended", tmp_path / "uninterrupted"
    train(compose_config(run, *QUICK, "trainer.max_steps=9", f"ckpt_path={six_steps / 'checkpoints' / 'last.ckpt'}"))
    assert logged_steps(run, "train/G_loss_step") == list(range(9))  # not 0-5, then 7, 8, 9
    train(compose_config(uninterrupted, *QUICK, "trainer.max_steps=9"))
    for column in ("train/G_loss_epoch", "val/cycle_A"):
        assert logged_steps(run, column) == logged_steps(uninterrupted, column), column


# ----------------------------------------------------------------------------- a kill loses no covered row
def rows_on_disk(metrics_csv: Path) -> set[tuple[int, str]]:
    if not metrics_csv.is_file():
        return set()
    with open(metrics_csv, newline="") as f:
        return {(int(row["step"]), key) for row in csv.DictReader(f) for key, value in row.items()
                if value not in (None, "") and key not in ("step", "epoch")}


class WhatAKillWouldLeave(pl.Callback):
    """At each moment a SIGKILL could strike (while a checkpoint is being saved, between batches): the
    global steps of the checkpoints in place, and the metrics rows on disk."""

    moments: list[tuple[list[int], set]] = []

    def _look(self, trainer) -> None:
        folder = Path(trainer.checkpoint_callback.dirpath)
        steps = [read_checkpoint(p)["global_step"] for p in sorted(folder.glob("*.ckpt"))] if folder.is_dir() else []
        self.moments.append((steps, rows_on_disk(Path(trainer.logger.log_dir) / "metrics.csv")))

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self._look(trainer)

    def on_train_batch_start(self, trainer, *args):
        self._look(trainer)


@pytest.mark.parametrize("every", ["epoch", "3_steps"])
def test_every_checkpoint_in_place_has_the_rows_it_covers_on_disk(tmp_path, every):
    WhatAKillWouldLeave.moments = []
    checkpoints = [] if every == "epoch" else ["callbacks.model_checkpoint.every_n_epochs=0",
                                               "callbacks.model_checkpoint.every_n_train_steps=3"]
    train(compose_config(tmp_path, *QUICK, "trainer.max_steps=6", *checkpoints,
                         "+callbacks.watch._target_=test_resume_own_run.WhatAKillWouldLeave"))
    final = rows_on_disk(tmp_path / "csv" / "metrics.csv")
    assert len(WhatAKillWouldLeave.moments) > 6
    for steps, on_disk in WhatAKillWouldLeave.moments:
        for step in steps:  # a resume from this checkpoint keeps the rows before its step: all must be there
            covered = {(s, key) for s, key in final if s < step}
            assert covered <= on_disk, f"checkpoint at step {step} lacks {sorted(covered - on_disk)[:3]}"


# ----------------------------------------------------------------------------- stored overrides are untrusted
def stored_run(tmp_path: Path, *overrides: str) -> Path:
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return tmp_path / "run"


@pytest.mark.parametrize("stored", ["+callbacks.x._target_=shutil.copyfile",
                                    "callbacks.exact_resume._target_=shutil.rmtree",
                                    "+trainer.new_key=1"])
def test_a_stored_override_that_could_run_code_is_refused_naming_it(tmp_path, stored):
    run = stored_run(tmp_path, "model.ngf=4", stored)
    with pytest.raises(overrides.StoredOverrideRefused, match="could run code") as refused:
        overrides.reuse_stored_overrides(["ckpt_path=last", f"hydra.run.dir={run}"])
    assert stored in str(refused.value) and "\n" not in str(refused.value)
    # repeated on the command line, it is the user's choice
    argv, _, _ = overrides.reuse_stored_overrides(["ckpt_path=last", f"hydra.run.dir={run}", stored])
    assert argv.count(stored) == 1 and "model.ngf=4" in argv


def test_train_py_refuses_a_run_folder_whose_overrides_instantiate_a_function(tmp_path, caplog):
    victim = tmp_path / "copied"
    run = stored_run(tmp_path, "+callbacks.x._target_=shutil.copyfile", f"+callbacks.x.src={__file__}",
                     f"+callbacks.x.dst={victim}")
    stored = (run / ".hydra" / "overrides.yaml").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        run_cli("ckpt_path=last", f"hydra.run.dir={run}")
    assert exit_info.value.code == 2 and not victim.exists()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "+callbacks.x._target_=shutil.copyfile" in errors[0]
    assert (run / ".hydra" / "overrides.yaml").read_bytes() == stored


def test_a_run_folder_without_its_hydra_folder_is_resumed_with_a_warning_naming_it(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    argv, note, level = overrides.reuse_stored_overrides(["ckpt_path=last", f"hydra.run.dir={run}"])
    assert argv == ["ckpt_path=last", f"hydra.run.dir={run}"]
    assert level == logging.WARNING and str(run / ".hydra") in note and "defaults" in note
