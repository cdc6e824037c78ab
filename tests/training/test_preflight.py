"""cyclegan.training.preflight: an unwritable or full output folder, a foreign or malicious checkpoint
are refused before training starts."""

from __future__ import annotations


import pytest
import torch

from conftest import TINY_MODEL, RunsACommand, tiny_fit
from cyclegan.gan.module import CycleGAN
from cyclegan.training.preflight import (OutputDirError, ResumeError, check_output_dir, check_resume_checkpoint,
                                         estimate_checkpoint_bytes)
from cyclegan.training.run import train


def test_unwritable_or_full_output_dir_fails_at_start(tmp_path, tiny_cfg, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputDirError, match="not writable"):
        check_output_dir(blocker / "run")

    cfg = tiny_cfg()
    need = estimate_checkpoint_bytes(cfg)
    assert need > 0
    monkeypatch.setattr("cyclegan.training.preflight.shutil.disk_usage", lambda p: type("U", (), {"free": need // 2})())
    with pytest.raises(OutputDirError, match="MB free but this run's checkpoints need about"):
        train(cfg)  # before the data or the model is built
    assert not (tmp_path / "checkpoints").exists()


def test_a_malicious_checkpoint_is_refused_and_its_payload_never_runs(tmp_path, tiny_cfg):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "optimizer_states": [], "loops": {}, "global_step": 0, "x": RunsACommand(marker)}, evil)

    with pytest.raises(ResumeError, match="arbitrary code") as e:
        check_resume_checkpoint(evil)
    assert "\n" not in str(e.value)
    with pytest.raises(ResumeError, match="arbitrary code"):
        train(tiny_cfg(f"ckpt_path={evil}"))
    with pytest.raises(Exception):  # Lightning's own load is weights_only too (defence in depth)
        tiny_fit(tmp_path, CycleGAN(**TINY_MODEL), [], max_steps=1, ckpt_path=str(evil))
    assert not marker.exists()

    weights = tmp_path / "generator.pt"
    torch.save(CycleGAN(**TINY_MODEL).G_AB.state_dict(), weights)
    with pytest.raises(ResumeError, match="not a training checkpoint"):
        check_resume_checkpoint(weights)
