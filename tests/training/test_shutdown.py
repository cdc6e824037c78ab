"""cyclegan.training.shutdown: Ctrl-C and SIGTERM save a resumable checkpoint first, then stop."""

from __future__ import annotations

import csv
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from conftest import ROOT, TINY_MODEL, compose_config, tiny_fit, tiny_with
from cyclegan.common.errors import exit_on_user_error
from cyclegan.gan.module import CycleGAN
from cyclegan.training.run import train
from cyclegan.training.shutdown import GracefulShutdown, TrainingInterrupted


class RaiseSignal(pl.Callback):
    def __init__(self, at_step: int, signum: int = signal.SIGINT):
        self.at_step, self.signum = at_step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.at_step:
            signal.raise_signal(self.signum)  # handled synchronously, before this returns


def test_ctrl_c_saves_a_resumable_last_ckpt_then_stops(tmp_path):
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    # Python's own Ctrl-C handler, whatever this process inherited: a shell starts background jobs
    # with SIGINT ignored (so pytest launched with `&` would have nothing to restore but SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingInterrupted) as e:
            tiny_fit(tmp_path, CycleGAN(**TINY_MODEL), [RaiseSignal(3), GracefulShutdown()], max_steps=50)
        assert e.value.exit_code == 130 and "SIGINT" in str(e.value)
        ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
        assert ckpt["global_step"] == 3
        with pytest.raises(KeyboardInterrupt):  # after training, Ctrl-C behaves as before
            signal.raise_signal(signal.SIGINT)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_sigterm_after_the_guards_check_still_saves_and_resumes_where_it_stopped(tmp_path):
    """The race CI hit: SIGTERM lands after GracefulShutdown looked at the batch, so Lightning's own
    stop (SIGTERMException, a SystemExit with no code) comes first; nothing may be lost."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(TrainingInterrupted) as e:  # the signal is raised *after* the guard's hook
            train(compose_config(tmp_path / "run", *tiny_with("trainer.max_steps=50"), "callbacks.val_kid=null",
                                 "+callbacks.late_signal._target_=test_shutdown.RaiseSignal",
                                 "+callbacks.late_signal.at_step=3", f"+callbacks.late_signal.signum={signal.SIGTERM}"))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert e.value.exit_code == 143 and "Lightning's SIGTERM stop" in str(e.value)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert e.value.checkpoint == str(ckpt)
    assert torch.load(ckpt, weights_only=True)["global_step"] == 3

    run2 = tmp_path / "resumed"
    train(compose_config(run2, *tiny_with("trainer.max_steps=5"), "callbacks.val_kid=null", f"ckpt_path={ckpt}"))
    # it continued from the checkpoint (step 3), and its history holds the steps before it once each
    logged = [int(row["step"]) for row in csv.DictReader((run2 / "csv" / "metrics.csv").open()) if row["train/G_loss_step"]]
    assert logged == list(range(5)) and torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5


def test_lightnings_sigterm_stop_exits_143_not_0():
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    with pytest.raises(SystemExit) as e, exit_on_user_error():
        raise SIGTERMException
    assert e.value.code == 143


def test_a_finished_run_leaves_the_signal_handlers_as_it_found_them(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    train(compose_config(tmp_path / "run", *tiny_with("trainer.max_steps=1"), "callbacks.val_kid=null"))
    assert {s: signal.getsignal(s) for s in before} == before  # Ctrl-C after training raises KeyboardInterrupt again


def test_a_second_ctrl_c_while_stopping_is_ignored_so_the_save_completes(caplog):
    # the whole run (exit 130, checkpoint, result.json) is tested in test_resume_safety.py
    guard = GracefulShutdown()
    guard._install()
    try:
        guard._handle(signal.SIGINT, None)
        assert guard.received == signal.SIGINT
        with caplog.at_level(logging.WARNING):
            guard._handle(signal.SIGINT, None)  # no KeyboardInterrupt
            guard._handle(signal.SIGTERM, None)
        assert guard.received == signal.SIGINT
        assert sum("still stopping, the checkpoint is written first" in r.getMessage() for r in caplog.records) == 2
    finally:
        guard._restore()


class AnnounceSteps(pl.Callback):
    """Prints a line after every training batch so that a parent process can wait for training
    (reading the pipe blocks: no polling, no sleeps)."""

    def on_train_batch_end(self, trainer, *args):
        print(f"TRAINING STEP {trainer.global_step}", flush=True)


def test_sigterm_to_the_process_group_saves_a_checkpoint_and_resume_continues(tmp_path):
    quiet = ["callbacks.progress_bar=null", "+trainer.enable_progress_bar=false", "callbacks.val_kid=null",
             "data.epoch_length=100000"]
    run = tmp_path / "run"
    cmd = [sys.executable, "train.py", *tiny_with("trainer.max_steps=100000"), *quiet, "data.num_workers=1",
           "+callbacks.announce._target_=test_shutdown.AnnounceSteps", f"hydra.run.dir={run}"]
    here = Path(__file__).resolve().parent  # the child imports this module (AnnounceSteps) and conftest
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)  # own process group: the signal also reaches its workers
    watchdog = threading.Timer(300, lambda: os.killpg(child.pid, signal.SIGKILL))  # a hung child fails the test
    watchdog.start()
    lines = []
    try:
        for line in child.stdout:
            lines.append(line)
            if line.startswith("TRAINING STEP 2"):  # training is under way: a scheduler's SIGTERM now
                os.killpg(child.pid, signal.SIGTERM)
                break
        lines += child.stdout.readlines()  # to the end of its output
        child.wait(timeout=120)
    finally:
        watchdog.cancel()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    out = "".join(lines)
    assert child.returncode == 143, out[-3000:]
    assert "stopped by SIGTERM" in out and "Traceback" not in out
    ckpt = run / "checkpoints" / "last.ckpt"
    saved_step = torch.load(ckpt, weights_only=True)["global_step"]
    assert saved_step >= 2

    run2 = tmp_path / "resumed"  # resumed in this process (the same train() as train.py)
    train(compose_config(run2, *tiny_with(f"trainer.max_steps={saved_step + 2}"), *quiet, f"ckpt_path={ckpt}"))
    assert torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == saved_step + 2
    logged_steps = [int(row["step"]) for row in csv.DictReader((run2 / "csv" / "metrics.csv").open())
                    if row["train/G_loss_step"]]
    assert logged_steps == list(range(saved_step + 2))  # continued from the checkpoint, with the history before it
