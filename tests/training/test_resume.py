"""Exact resume: a run stopped and resumed ends where an uninterrupted run ends; `ckpt_path=last`;
checkpoints written atomically; the W&B run continues.

Schedule of every run here: 3 epochs of 4 steps (12 steps), LR constant for 1 epoch then decaying
linearly, so a missed or doubled scheduler step shows in the final LR.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from conftest import TINY, compose_config, wandb_run_records
from cyclegan.training.atomic_checkpoint import AtomicCheckpointIO
from cyclegan.training.resume_checkpoint import NothingToResume, find_last_checkpoint
from cyclegan.training.run import resolve_ckpt_path, train

SCHEDULE = ["data.epoch_length=4", "model.n_epochs=1", "model.n_epochs_decay=2", "trainer.max_steps=-1",
            "callbacks.val_kid.inception=tiny", "callbacks.val_kid.num_images=2",
            "callbacks.progress_bar.refresh_rate=0", "logger=none",
            "+callbacks.final_state._target_=test_resume.FinalState"]
STEP_CHECKPOINTS = ["callbacks.model_checkpoint.every_n_epochs=0"]  # + every_n_train_steps=N

FINAL: dict[str, dict] = {}  # output dir -> what FinalState saw when training ended


class FinalState(pl.Callback):
    """Records the end state of a fit, and one draw of every random generator after it."""

    def on_train_end(self, trainer, pl_module):
        dataset = trainer.datamodule.data_train
        FINAL[str(trainer.default_root_dir)] = {
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "lr": [opt.param_groups[0]["lr"] for opt in trainer.optimizers],
            "weights": {k: v.clone() for k, v in pl_module.state_dict().items()},
            "adam": trainer.optimizers[0].state_dict()["state"][0]["exp_avg"].clone(),
            "pools": [torch.cat(pool.images) for pool in (pl_module.pool_A, pl_module.pool_B)],
            "draws": (torch.rand(3), np.random.rand(3), random.random(),
                      torch.rand(3, generator=dataset.generator())),
            "checkpoint_io": type(trainer.strategy.checkpoint_io).__name__,
        }


class CrashAt(pl.Callback):
    """Simulates a crash (a killed job) after `step` steps."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")


def run(output_dir: Path, *overrides: str) -> dict:
    train(compose_config(output_dir, *TINY, *SCHEDULE, *overrides))
    return FINAL[str(output_dir)]


def crash(output_dir: Path, step: int, *overrides: str) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(output_dir, "+callbacks.crash._target_=test_resume.CrashAt", f"+callbacks.crash.step={step}",
            *overrides)


def assert_same_end(resumed: dict, uninterrupted: dict, exact: bool = True) -> None:
    counters = (resumed["global_step"], resumed["epoch"])
    assert counters == (uninterrupted["global_step"], uninterrupted["epoch"]) == (12, 3)
    assert resumed["lr"] == pytest.approx(uninterrupted["lr"])
    if not exact:
        return
    for name, weight in uninterrupted["weights"].items():
        assert torch.equal(resumed["weights"][name], weight), name
    assert torch.equal(resumed["adam"], uninterrupted["adam"])
    for pool, expected in zip(resumed["pools"], uninterrupted["pools"]):
        assert torch.equal(pool, expected)
    torch_draw, numpy_draw, python_draw, data_draw = resumed["draws"]
    assert torch.equal(torch_draw, uninterrupted["draws"][0])
    assert np.array_equal(numpy_draw, uninterrupted["draws"][1])
    assert python_draw == uninterrupted["draws"][2]
    assert torch.equal(data_draw, uninterrupted["draws"][3])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    end = run(tmp_path_factory.mktemp("uninterrupted"))
    assert end["lr"] == [0.0, 0.0]  # linear decay reaches zero after the 3rd epoch (1/3 during it)
    return end


def test_stopped_at_an_epoch_end_then_resumed_into_a_new_folder_ends_identically(tmp_path, uninterrupted):
    first, second = tmp_path / "runs" / "first", tmp_path / "runs" / "second"
    stopped = run(first, "trainer.max_steps=8")  # stops after epoch 2 of 3 (validation included)
    assert stopped["global_step"] == 8
    resumed = run(second, f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}")
    assert_same_end(resumed, uninterrupted)
    assert resumed["checkpoint_io"] == "AtomicCheckpointIO"


def test_continue_in_place_overwrites_the_runs_own_last_ckpt(tmp_path, uninterrupted):
    # `hydra.run.dir=<old run dir> ckpt_path=last`: the run's own folder, its own last.ckpt
    run(tmp_path, "trainer.max_steps=8")
    resumed = run(tmp_path, "ckpt_path=last")
    assert_same_end(resumed, uninterrupted)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch_002.ckpt", "last.ckpt"]


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")  # the crash alone had step checkpoints
def test_crash_after_a_checkpoint_on_the_last_batch_of_an_epoch_resumes_identically(tmp_path, uninterrupted):
    # That checkpoint precedes the epoch's validation and LR step, which Lightning does not replay:
    # ExactResume catches the scheduler up and keeps validation from moving the random state.
    crash(tmp_path / "a", 5, *STEP_CHECKPOINTS, "callbacks.model_checkpoint.every_n_train_steps=4")
    ckpt = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4 and "rng_state" in ckpt
    resumed = run(tmp_path / "b", f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}")
    assert_same_end(resumed, uninterrupted)


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")  # the crash alone had step checkpoints
def test_crash_mid_epoch_resumes_with_the_same_counters_and_lr(tmp_path, uninterrupted):
    crash(tmp_path / "a", 7, *STEP_CHECKPOINTS, "callbacks.model_checkpoint.every_n_train_steps=2")
    ckpt = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (ckpt["global_step"], ckpt["epoch"]) == (6, 1)  # half-way through the 2nd epoch
    with pytest.warns(UserWarning, match="ended before the epoch ended"):
        resumed = run(tmp_path / "b", f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}")
    # the rest of the interrupted epoch is a new shuffle (documented), so only the schedule is exact
    assert_same_end(resumed, uninterrupted, exact=False)
    # pools were restored, not restarted: they hold as many fakes as the uninterrupted run's (12)
    assert [len(p) for p in resumed["pools"]] == [len(p) for p in uninterrupted["pools"]]


def test_resumed_run_continues_the_wandb_run(tmp_path, monkeypatch):

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    quick = ["logger=wandb", "~callbacks.val_kid", "data.epoch_length=2"]
    run(tmp_path / "a", *quick, "trainer.max_steps=2")
    first = wandb_run_records(tmp_path / "a")
    run(tmp_path / "b", *quick, f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}")
    second = wandb_run_records(tmp_path / "b")
    assert second["run"].run_id == first["run"].run_id
    assert FINAL[str(tmp_path / "b")]["global_step"] == 6


def test_two_process_ddp_resume_gives_each_rank_its_own_random_state_back(tmp_path):
    # Each rank draws its own B images (per-rank data generators), so restoring rank 0's state
    # everywhere would change training; checkpoints carry every rank's generators.
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.limit_val_batches=0",
           "trainer.strategy=ddp_spawn_find_unused_parameters_true", "data.epoch_length=4", "~callbacks.val_kid",
           "~callbacks.final_state"]  # spawned processes: compare the final checkpoints instead
    for name, extra in (("whole", []), ("first", ["trainer.max_steps=4"]),
                        ("resumed", [f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}"])):
        train(compose_config(tmp_path / name, *TINY, *SCHEDULE, *ddp, *extra))
    whole, resumed = (torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)
                      for name in ("whole", "resumed"))
    assert whole["global_step"] == resumed["global_step"] == 6  # 2 steps per rank and epoch
    for name, weight in whole["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], weight), name
    ranks = [r["train_dataset"]["generator"] for r in whole["rng_state"]["ranks"]]
    assert len(ranks) == 2 and not torch.equal(*ranks)
    for mine, theirs in zip(resumed["rng_state"]["ranks"], whole["rng_state"]["ranks"]):
        assert torch.equal(mine["global"]["torch"], theirs["global"]["torch"])
        assert torch.equal(mine["train_dataset"]["generator"], theirs["train_dataset"]["generator"])


# ----------------------------------------------------------------------------- ckpt_path=last
def touch(path: Path, mtime: float) -> Path:
    """A minimal checkpoint (what `last` reads of one: its global step), written at `mtime`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": 1}, path)
    os.utime(path, (mtime, mtime))
    return path


def test_last_takes_the_runs_own_checkpoint_and_only_names_the_newest_run_beside_it(tmp_path):
    older = touch(tmp_path / "train" / "2024-01-01" / "checkpoints" / "last.ckpt", 1_000)
    touch(tmp_path / "train" / "2024-01-02" / "checkpoints" / "last.ckpt", 2_000)
    assert find_last_checkpoint(tmp_path / "train" / "2024-01-01") == older  # in place
    # a new folder is not a run to continue: one line naming the newest run, whose checkpoint is not taken
    with pytest.raises(NothingToResume, match=r"2024-01-02\)") as refused:
        find_last_checkpoint(tmp_path / "train" / "new_run")
    assert "does not exist" in str(refused.value) and "hydra.run.dir=<that run's folder>" in str(refused.value)
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=last: no checkpoint"):
        resolve_ckpt_path("last", str(tmp_path / "elsewhere" / "run"))
    assert resolve_ckpt_path(None, str(tmp_path)) is None


# ----------------------------------------------------------------------------- atomic checkpoints
def test_a_crash_while_saving_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "weights": torch.ones(3)}, path)

    def dies_half_way(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"global_step": 2, "weights": torch.zeros(3)}, path)
    monkeypatch.undo()

    kept = io.load_checkpoint(path)
    assert kept["global_step"] == 1 and torch.equal(kept["weights"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind
    io.save_checkpoint({"global_step": 3}, path)
    assert io.load_checkpoint(path)["global_step"] == 3
