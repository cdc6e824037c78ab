"""`python train.py -m ...`: grid and Optuna sweeps, the sweep summary, failing jobs, W&B grouping.

Sweeps run in-process through train.py's real Hydra entry point (one import, several jobs).
"""

from __future__ import annotations

import csv
import json
import math
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml

from conftest import TINY_CLI, run_cli, wandb_run_records
from cyclegan.training.shutdown import TrainingInterrupted
from cyclegan.training.run import train


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_grid_sweep_runs_each_job_in_its_folder_and_summarises_them(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli("-m", "model.lr=1e-4,2e-4", "model.lambda_cycle=5,10", *TINY_CLI, f"hydra.sweep.dir={sweep}")

    rows = read_csv(sweep / "summary.csv")
    assert [(r["job"], r["model.lr"], r["model.lambda_cycle"]) for r in rows] == [
        ("0", "0.0001", "5"), ("1", "0.0001", "10"), ("2", "0.0002", "5"), ("3", "0.0002", "10")]
    for row in rows:
        job_dir = sweep / row["job"]
        assert row["status"] == "ok" and row["output_dir"] == str(job_dir)
        assert (job_dir / "checkpoints" / "last.ckpt").is_file()
        result = json.loads((job_dir / "result.json").read_text())
        assert f"model.lr={row['model.lr']}" in result["overrides"]
        # val_kid is off: the objective falls back to the final generator loss
        assert result["objective_metric"] == "train/G_loss_epoch"
        assert float(row["objective"]) == pytest.approx(float(row["train/G_loss_epoch"]))
        assert float(row["val/cycle_A"]) > 0  # validation metrics reach the summary too
        assert float(row["train/lr"]) == pytest.approx(float(row["model.lr"]))
    # the overrides reached the model: after 2 steps the cycle term still scales with lambda_cycle
    by_params = {(r["model.lr"], r["model.lambda_cycle"]): float(r["train/cycle_A_epoch"]) for r in rows}
    assert by_params[("0.0001", "10")] / by_params[("0.0001", "5")] == pytest.approx(2.0, rel=0.1)

    md = (sweep / "summary.md").read_text()
    assert "4 jobs, 4 ok, 0 failed" in md and "Objective: train/G_loss_epoch" in md
    assert "| job | status | model.lr | model.lambda_cycle | objective |" in md
    best = min(rows, key=lambda r: float(r["objective"]))
    assert f"Best: job {best['job']} " in md


def test_a_failing_job_is_recorded_and_the_others_run_as_wandb_runs_of_one_group(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as exit_info:  # after the summary: a job failed
        run_cli("-m", "model.gan_mode=bogus,lsgan", "logger=[csv,wandb]", *TINY_CLI, f"hydra.sweep.dir={sweep}")
    assert exit_info.value.code == 1

    failed, ok = read_csv(sweep / "summary.csv")
    assert (failed["model.gan_mode"], failed["status"], failed["objective"]) == ("bogus", "failed", "")
    assert "model.gan_mode='bogus'" in failed["error"]
    assert json.loads((sweep / "0" / "result.json").read_text())["status"] == "failed"
    assert (ok["model.gan_mode"], ok["status"]) == ("lsgan", "ok")
    assert "1 failed" in (sweep / "summary.md").read_text()


    records = wandb_run_records(sweep / "1")
    assert records["run"].run_group == sweep.name  # one group per sweep
    assert records["run"].display_name == "model.gan_mode=lsgan"  # named after its sweep parameters
    assert records["run"].job_type == "sweep"
    assert "model.gan_mode=lsgan" in json.loads(records["config"]["overrides"])
    assert "train/G_loss_step" in records["history_keys"]


def test_a_single_run_still_fails_loudly(tiny_cfg):
    cfg = tiny_cfg("model.gan_mode=bogus")
    with pytest.raises(Exception, match="model.gan_mode='bogus'"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "result.json").exists()  # refused before it started: no run to record


def test_a_single_run_exits_non_zero_through_train_py(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("model.gan_mode=bogus", *TINY_CLI, f"hydra.run.dir={tmp_path / 'run'}")
    assert exit_info.value.code not in (0, None)


def test_optuna_search_minimises_the_validation_kid_and_survives_failed_trials(tmp_path):
    sweep = tmp_path / "optuna"
    # pool_size=-1 is refused by the model: those trials fail; the search must go on (a NaN
    # objective would crash the Optuna sweeper, so failed trials return none)
    with pytest.raises(SystemExit, match="1"):  # the search went on, and its exit status says trials failed
        run_cli("-m", "hparams_search=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=0",
                "model.pool_size=choice(-1,50)", *TINY_CLI[:-1], "callbacks.val_kid.inception=tiny",
                "callbacks.val_kid.num_images=2", f"hydra.sweep.dir={sweep}")

    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 3
    assert {r["status"] for r in rows} == {"ok", "failed"}  # this seed draws both pool sizes
    assert all((r["status"] == "failed") == (r["model.pool_size"] == "-1") for r in rows)
    ok = [r for r in rows if r["status"] == "ok"]
    searched = {"model.lr", "model.lambda_cycle", "model.lambda_identity", "model.gan_mode"}
    assert searched <= set(rows[0])  # every searched key is a column
    objectives = [float(r["objective"]) for r in ok]
    assert objectives == pytest.approx([float(r["val/kid"]) for r in ok])
    assert all(math.isfinite(v) for v in objectives)

    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(objectives))
    assert "Objective: val/kid" in (sweep / "summary.md").read_text()
    # the trial's parameters reached its model
    winner = ok[objectives.index(min(objectives))]
    ckpt = torch.load(Path(winner["output_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)
    hparams = ckpt["hyper_parameters"]
    assert hparams["gan_mode"] == winner["model.gan_mode"]
    assert hparams["lr"] == pytest.approx(float(winner["model.lr"]))


def test_an_optuna_study_in_sqlite_survives_the_process_and_a_second_sweep_continues_it(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = ["hparams_search=optuna", f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=resumable",
              "hydra.sweeper.sampler.seed=0", *TINY_CLI[:-1], "callbacks.val_kid.inception=tiny",
              "callbacks.val_kid.num_images=2"]
    run_cli("-m", "hydra.sweeper.n_trials=2", *common, f"hydra.sweep.dir={tmp_path / 'first'}")
    run_cli("-m", "hydra.sweeper.n_trials=1", *common, f"hydra.sweep.dir={tmp_path / 'second'}")
    study = optuna.load_study(study_name="resumable", storage=storage)
    # the second sweep added its trial to the stored study (numbered after the first two)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert all(t.state == optuna.trial.TrialState.COMPLETE and t.value is not None for t in study.trials)


def test_a_job_that_dies_before_train_is_summarised_from_hydras_job_return(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from cyclegan.training.sweep import SweepSummary

    def job_config(num: int):
        return OmegaConf.create({"hydra": {
            "mode": RunMode.MULTIRUN, "sweep": {"dir": str(tmp_path)},
            "runtime": {"output_dir": str(tmp_path / str(num))},
            "overrides": {"task": [f"model.lr={num}e-4", "data=sample"]}}})

    callback = SweepSummary()
    for num, ret in enumerate([JobReturn(status=JobStatus.COMPLETED, _return_value=0.25),
                               JobReturn(status=JobStatus.FAILED, _return_value=ImportError("no module named x"))]):
        config = job_config(num)
        (tmp_path / str(num)).mkdir()
        (tmp_path / str(num) / "result.json").write_text("{}")  # left by an earlier attempt of this job
        callback.on_job_start(config=config, task_function=None)
        callback.on_job_end(config=config, job_return=ret)
    with pytest.raises(SystemExit):  # a job failed
        callback.on_multirun_end(config=job_config(0))

    rows = read_csv(tmp_path / "summary.csv")
    assert [(r["model.lr"], r["status"], r["objective"], r["error"]) for r in rows] == [
        ("0e-4", "ok", "0.25", ""), ("1e-4", "failed", "", "no module named x")]


class InterruptAtFirstStep(pl.Callback):
    """What GracefulShutdown raises after saving, on Ctrl-C."""

    def on_train_batch_end(self, trainer, *args):
        raise TrainingInterrupted("interrupted by SIGINT (checkpoint saved)", signum=signal.SIGINT)


def test_ctrl_c_stops_the_whole_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as exit_info:
        run_cli("-m", "model.lr=1e-4,2e-4", "+callbacks.interrupt._target_=test_sweeps.InterruptAtFirstStep",
                *TINY_CLI, f"hydra.sweep.dir={sweep}")
    assert exit_info.value.code == 128 + signal.SIGINT
    assert json.loads((sweep / "0" / "result.json").read_text())["status"] == "interrupted"
    assert not (sweep / "1").exists()  # the second job never started
    assert [r["status"] for r in read_csv(sweep / "summary.csv")] == ["interrupted"]
