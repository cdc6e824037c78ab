"""Run folders are never clobbered (issue 23, "Runs and run folders"): a refused run leaves no folder and
changes no file of the run it named; a sweep with a failed job exits non-zero; Slurm off a cluster is one line.

Through train.py's real entry point (in this process), on the bundled sample with the tiny overrides.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from conftest import TINY_CLI, run_cli


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_lines(caplog, capsys) -> list[str]:
    """The ERROR messages of a train.py run in this process: before Hydra configures logging they reach
    caplog; after, Hydra's console handler prints them ("[...][ERROR] message")."""
    printed = capsys.readouterr()
    lines = [line.split("[ERROR] ", 1)[1] for line in (printed.out + printed.err).splitlines() if "[ERROR] " in line]
    return list(dict.fromkeys([*lines, *(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)]))


def cli_exit_code(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(*args)
    return exit_info.value.code


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny run (2 steps; its schedule ends there) in outputs/train/finished."""
    run = tmp_path_factory.mktemp("outputs") / "train" / "finished"
    run_cli(*TINY_CLI, f"hydra.run.dir={run}")
    assert json.loads((run / "result.json").read_text())["status"] == "ok"
    return run


def test_resuming_a_finished_run_changes_none_of_its_files(finished, caplog, capsys):
    before = snapshot(finished)
    log_before = before.pop("train.log")
    assert cli_exit_code("ckpt_path=last", f"hydra.run.dir={finished}") == 2
    errors = error_lines(caplog, capsys)
    assert len(errors) == 1 and "nothing was trained" in errors[0] and "left as it was" in errors[0]
    after = snapshot(finished)
    assert after.pop("train.log").startswith(log_before)  # the log records the attempt; nothing else changed
    assert after == before  # result.json still ok with its metrics, .hydra/*.yaml, metrics.csv, checkpoints


def test_ckpt_path_last_in_a_missing_run_folder_is_one_line_and_takes_no_other_run(finished, caplog, capsys):
    typo = finished.parent / "finsihed"
    before = snapshot(finished)
    assert cli_exit_code(*TINY_CLI, "trainer.max_steps=4", "ckpt_path=last", f"hydra.run.dir={typo}") == 2
    errors = error_lines(caplog, capsys)
    assert len(errors) == 1 and f"{typo} does not exist" in errors[0]
    assert f"the newest run beside it is {finished}" in errors[0]  # named as a hint, not taken
    assert not typo.exists() and snapshot(finished) == before


def test_a_run_refused_by_its_config_check_leaves_no_folder(tmp_path, caplog, capsys):
    outputs = tmp_path / "outputs"
    assert cli_exit_code(*TINY_CLI, "model.gan_mode=bogus", f"hydra.run.dir={outputs / 'train' / 'run'}") == 2
    assert len(error_lines(caplog, capsys)) == 1
    assert not outputs.exists()  # nor the parents Hydra made for it


def test_a_refused_run_in_a_folder_of_the_user_keeps_the_folder_and_its_files(tmp_path):
    mine = tmp_path / "kaggle" / "working"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    assert cli_exit_code(*TINY_CLI, "model.gan_mode=bogus", f"hydra.run.dir={mine}") == 2
    assert (mine / "notes.txt").read_text() == "mine"
    assert not (mine / ".hydra").exists() and not (mine / "result.json").exists()


def test_a_sweep_with_failed_jobs_exits_non_zero_after_writing_its_summary(tmp_path):
    sweep = tmp_path / "sweep"
    assert cli_exit_code("-m", *TINY_CLI, "model.gan_mode=bogus,wrong", f"hydra.sweep.dir={sweep}") == 1
    assert "2 jobs, 0 ok, 2 failed" in (sweep / "summary.md").read_text()
    assert json.loads((sweep / "0" / "result.json").read_text())["status"] == "failed"  # sweep jobs keep theirs


def test_slurm_launcher_off_a_cluster_is_one_line(tmp_path, monkeypatch, caplog, capsys):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the [sweeps] extra")
    import cyclegan.config.overrides as overrides

    monkeypatch.setattr(overrides.shutil, "which", lambda name: None)  # no srun, as on a laptop
    assert cli_exit_code("-m", "hydra/launcher=submitit_slurm", *TINY_CLI, f"hydra.sweep.dir={tmp_path / 's'}") == 2
    errors = error_lines(caplog, capsys)
    assert len(errors) == 1 and "srun" in errors[0]
    assert not (tmp_path / "s").exists()


def test_resuming_a_finished_sweep_keeps_each_jobs_result(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli("-m", *TINY_CLI, "model.lr=2e-4", f"hydra.sweep.dir={sweep}")
    result = (sweep / "0" / "result.json").read_bytes()
    assert json.loads(result)["status"] == "ok"
    run_cli("-m", *TINY_CLI, "model.lr=2e-4", "ckpt_path=last", f"hydra.sweep.dir={sweep}")  # exits 0: nothing failed
    assert (sweep / "0" / "result.json").read_bytes() == result  # not rewritten as failed
    assert "1 jobs, 1 ok, 0 failed" in (sweep / "summary.md").read_text()
