"""cyclegan.training.nan_guard: a NaN/Inf update never lands; stop with a resumable checkpoint, or skip."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from conftest import TINY, TINY_MODEL, compose_config, tiny_fit
from cyclegan.gan.module import CycleGAN
from cyclegan.training.nan_guard import NaNGuard, TrainingDiverged
from cyclegan.training.preflight import ResumeError, check_resume_checkpoint, estimate_checkpoint_bytes


def inject(model: CycleGAN, which: str, steps: set[int], value=float("nan")) -> None:
    """Make the generator ('G') or discriminator ('D') loss non-finite at the given global steps."""
    if which == "G":
        original = model.generator_loss

        def bad_generator_loss(*args):
            total, logs = original(*args)
            if model.trainer.global_step in steps:
                total = total * value
                logs["G_loss"] = total
            return total, logs

        model.generator_loss = bad_generator_loss
    else:
        original = model.discriminator_loss

        def bad_discriminator_loss(*args):
            loss = original(*args)
            return loss * value if model.trainer.global_step - 1 in steps else loss  # G step already counted

        model.discriminator_loss = bad_discriminator_loss


class Snapshot(pl.Callback):
    """The generators' weights at the start of each step."""

    def __init__(self):
        self.at: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.at[trainer.global_step] = {k: v.detach().clone() for k, v in pl_module.G_AB.state_dict().items()}


def test_nan_loss_stops_with_a_checkpoint_of_the_last_good_state_that_resumes(tmp_path):
    model = CycleGAN(**TINY_MODEL, pool_size=2)
    inject(model, "G", {2})
    snap = Snapshot()
    with pytest.raises(TrainingDiverged) as e:
        tiny_fit(tmp_path, model, [NaNGuard(policy="stop", keep_last_good=True), snap], max_steps=10)
    msg = str(e.value)
    assert "step 2" in msg and "G_loss=nan" in msg and "G_AB, G_BA" in msg and "ckpt_path=" in msg
    ckpt_file = Path(e.value.checkpoint)
    assert ckpt_file.exists() and ckpt_file.parent == tmp_path / "checkpoints"
    ckpt = torch.load(ckpt_file, weights_only=True)
    assert ckpt["global_step"] == 3
    g_saved = {k[len("G_AB."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("G_AB.")}
    for k, v in snap.at[1].items():  # the bad update never landed, and the one before it is rolled back
        torch.testing.assert_close(g_saved[k], v, rtol=0, atol=0)
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    assert all(torch.isfinite(im).all() for im in ckpt["image_pools"]["A"]["images"])

    check_resume_checkpoint(ckpt_file, OmegaConf.create(TINY_MODEL))
    with pytest.raises(ResumeError, match="different architecture"):
        check_resume_checkpoint(ckpt_file, OmegaConf.create({**TINY_MODEL, "ngf": 8}))
    resumed = CycleGAN(**TINY_MODEL, pool_size=2)
    trainer = tiny_fit(tmp_path, resumed, [NaNGuard()], max_steps=6, ckpt_path=str(ckpt_file))
    assert trainer.global_step == 6
    assert all(torch.isfinite(p).all() for p in resumed.parameters())


def test_skip_policy_drops_bad_updates_and_gives_up_after_too_many(tmp_path, caplog):
    model = CycleGAN(**TINY_MODEL, pool_size=2)
    inject(model, "D", {1, 2}, value=float("inf"))
    guard = NaNGuard(policy="skip")
    with caplog.at_level(logging.WARNING):
        trainer = tiny_fit(tmp_path, model, [guard], max_steps=4)
    assert trainer.global_step == 4 and guard.total_skipped == 2
    skipped = [r.getMessage() for r in caplog.records if "update skipped" in r.getMessage()]
    assert len(skipped) == 2 and "step 1" in skipped[0] and "D_A, D_B" in skipped[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())

    # The checkpoint estimate covers a real checkpoint with full pools (pool_size 2 <= 4 steps x batch 2).
    trainer.save_checkpoint(tmp_path / "full.ckpt")
    cfg = OmegaConf.create({"model": {**TINY_MODEL, "pool_size": 2}, "data": {"image_size": 32}})
    actual = (tmp_path / "full.ckpt").stat().st_size
    assert actual <= estimate_checkpoint_bytes(cfg) + 64 * 1024 <= 3 * actual

    model = CycleGAN(**TINY_MODEL)
    inject(model, "G", set(range(1, 100)))
    with pytest.raises(TrainingDiverged, match="3 bad steps in a row"):
        tiny_fit(tmp_path, model, [NaNGuard(policy="skip", max_consecutive_skips=2)], max_steps=20)


def test_by_default_the_guard_keeps_no_copy_and_names_the_newest_periodic_checkpoint(tmp_path):
    assert compose_config(tmp_path, *TINY).callbacks.nan_guard.keep_last_good is False  # the copy is opt-in
    periodic = tmp_path / "checkpoints" / "epoch_000.ckpt"
    periodic.parent.mkdir()
    periodic.write_bytes(b"an earlier state")
    model = CycleGAN(**TINY_MODEL, pool_size=2)
    inject(model, "G", {2})
    guard, snap = NaNGuard(), Snapshot()
    with pytest.raises(TrainingDiverged) as e:
        tiny_fit(tmp_path, model, [guard, snap], max_steps=10)
    assert guard._last_good == {}  # no parameter copy was taken on any step
    msg = str(e.value)
    assert "step 2" in msg and "no non-finite update applied" in msg and f"go back to {periodic}" in msg
    saved = torch.load(e.value.checkpoint, weights_only=True)["state_dict"]
    for k, v in snap.at[2].items():  # the state the bad step started from: its update never landed
        torch.testing.assert_close(saved[f"G_AB.{k}"], v, rtol=0, atol=0)


def test_with_fused_adam_a_bad_update_is_skipped_on_the_device_and_the_flags_read_every_n_steps(tmp_path, caplog):
    model = CycleGAN(**TINY_MODEL, pool_size=2, fused_adam=True)
    inject(model, "G", {1})
    guard = NaNGuard(policy="skip", check_every_n_steps=3)
    reads = []
    read = guard._read_device_flags
    guard._read_device_flags = lambda trainer, module: (reads.append(trainer.global_step), read(trainer, module))
    with caplog.at_level(logging.WARNING):
        trainer = tiny_fit(tmp_path, model, [guard], max_steps=6)
    # one host read per three batches (not one per optimizer step), and at each epoch's end (4 batches)
    assert reads == [3, 4, 6]
    skipped = [r.getMessage() for r in caplog.records if "update skipped" in r.getMessage()]
    assert len(skipped) == 1 and "step 1" in skipped[0] and "G_AB, G_BA" in skipped[0]
    opt_g, opt_d = trainer.optimizers
    g_steps = {float(s["step"]) for s in opt_g.state.values()}
    d_steps = {float(s["step"]) for s in opt_d.state.values()}
    assert g_steps == {5.0} and d_steps == {6.0}  # the fused kernel skipped the generators' bad update
    assert all(torch.isfinite(p).all() for p in model.parameters())

    model = CycleGAN(**TINY_MODEL, pool_size=2, fused_adam=True)
    inject(model, "G", {1})
    with pytest.raises(TrainingDiverged, match="step 1: non-finite gradients in optimizer 0") as e:
        tiny_fit(tmp_path / "stop", model, [NaNGuard(check_every_n_steps=3)], max_steps=10)
    ckpt = torch.load(e.value.checkpoint, weights_only=True)
    assert ckpt["global_step"] == 3 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
