"""The command line a new user meets: misspelled group options, --help, launchers, W&B without an account."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from cyclegan.config.overrides import check_overrides

ROOT = Path(__file__).resolve().parents[2]


def one_line_exit(caplog, argv, config_name="train") -> str:
    """check_overrides(argv) must exit 2 after one ERROR line; that line."""
    caplog.clear()
    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        check_overrides(argv, config_name=config_name)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert e.value.code == 2 and len(errors) == 1 and "\n" not in errors[0]
    return errors[0]


@pytest.mark.parametrize("override,valid,close", [
    ("data=monet", "monet2photo, sample", "data=monet2photo"),
    ("trainer=cpuu", "bf16, cpu, ddp", "trainer=cpu"),
    ("data=monet2phot", "kaggle_monet_tfrec", "data=monet2photo"),
    ("logger=[csv,tensorbord]", "csv, many, none, tensorboard, wandb", "logger=tensorboard"),
    ("experiment=kaggle_monet_resnt", "fast_h100, kaggle_monet_resnet", "experiment=kaggle_monet_resnet"),
])
def test_an_unknown_group_option_is_one_line_with_the_valid_ones(caplog, override, valid, close):
    message = one_line_exit(caplog, [override])
    assert valid in message and f"did you mean {close}?" in message
    assert "_common" not in message and "_berkeley" not in message


def test_valid_options_lists_and_sweeps_pass(caplog):
    check_overrides(["data=monet2photo", "logger=[csv,tensorboard]", "experiment=null", "trainer=cpu"], "train")
    check_overrides(["-m", "data=horse2zebra,monet2photo", "model.lr=1e-4,2e-4"], "train")
    check_overrides(["metrics=default", "data=sample"], "evaluate")
    check_overrides(["--config-dir", "my_conf", "data=my_own"], "train")  # options of another folder: Hydra's
    assert "metrics=defualt" in one_line_exit(caplog, ["metrics=defualt"], config_name="evaluate")


def test_help_lists_the_groups_without_the_internal_files():
    result = subprocess.run([sys.executable, "train.py", "--help-all"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    groups = result.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "data: apple2orange," in groups and "trainer: bf16, cpu, ddp, default, fp16, gpu" in groups
    assert "_common" not in groups and "_berkeley" not in groups
    assert "hydra/launcher:" in groups and "submitit_slurm" in groups


# ----------------------------------------------------------------------------- launchers
def launcher_resources(*overrides: str) -> dict:
    from omegaconf import OmegaConf

    from cyclegan.config.overrides import _compose

    cfg = _compose("train", list(overrides), hydra_config=True)
    return {k: OmegaConf.select(cfg, f"hydra.launcher.{k}") for k in ("nodes", "tasks_per_node", "gpus_per_node")}


@pytest.fixture
def plugin_installed(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name.startswith("hydra_plugins.") else real(name, *a))


def test_submitit_local_with_the_default_devices_gets_integers(monkeypatch, plugin_installed):
    import torch

    # the default trainer.devices=auto: the GPUs of this machine, where the jobs run (submitit wants ints)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert launcher_resources("hydra/launcher=submitit_local") == {"nodes": 1, "tasks_per_node": 1, "gpus_per_node": 0}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert launcher_resources("hydra/launcher=submitit_local")["gpus_per_node"] == 2
    assert launcher_resources("hydra/launcher=submitit_local", "trainer=cpu")["gpus_per_node"] == 0
    check_overrides(["-m", "hydra/launcher=submitit_local"], "train")  # passes


def test_submitit_slurm_follows_trainer_devices_or_says_to_set_it(caplog, plugin_installed, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")  # on a cluster (off one: test_run_folders)
    assert launcher_resources("hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.devices=4",
                              "trainer.num_nodes=2") == {"nodes": 2, "tasks_per_node": 4, "gpus_per_node": 4}
    check_overrides(["-m", "hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.devices=4"], "train")
    message = one_line_exit(caplog, ["-m", "hydra/launcher=submitit_slurm"])
    assert "trainer.devices=N" in message and "trainer.devices=auto" in message


@pytest.mark.parametrize("override", ["hydra/launcher=submitit_local", "hydra/launcher=submitit_slurm",
                                      "hparams_search=optuna"])
def test_a_launcher_or_sweeper_without_the_sweeps_extra_says_what_to_install(caplog, monkeypatch, override):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("hydra_plugins.") else real(name, *a))
    assert 'pip install -e ".[sweeps]"' in one_line_exit(caplog, ["-m", override])


# ----------------------------------------------------------------------------- W&B without an account
@pytest.fixture
def no_wandb_account(monkeypatch, tmp_path):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # no stored `wandb login` key
    return tmp_path / "netrc"


def wandb_logger(tmp_path):
    import hydra

    from conftest import compose_config

    return hydra.utils.instantiate(compose_config(tmp_path / "run", "logger=wandb").logger.wandb)


def test_wandb_without_an_account_logs_offline_after_one_warning(tmp_path, caplog, no_wandb_account):
    with caplog.at_level(logging.WARNING):
        logger = wandb_logger(tmp_path)  # wandb.init is lazy: nothing is contacted here
    assert logger._wandb_init["mode"] == "offline"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "WANDB_MODE=offline" in warnings[0] and "wandb login" in warnings[0]
    assert "wandb sync" in warnings[0]
    assert "anonymous" not in logger._wandb_init  # Lightning's anonymous=None makes wandb warn at init


def test_wandb_with_a_stored_key_or_an_explicit_mode_is_left_as_asked(tmp_path, caplog, monkeypatch,
                                                                       no_wandb_account):
    no_wandb_account.write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")
    assert wandb_logger(tmp_path)._wandb_init.get("mode") is None  # online, as logged in
    no_wandb_account.unlink()
    monkeypatch.setenv("WANDB_MODE", "online")
    with caplog.at_level(logging.WARNING):
        assert wandb_logger(tmp_path)._wandb_init.get("mode") is None
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_hydras_log_leaves_out_alembics_plugin_listing():
    # Optuna's storage imports alembic, which logs "setup plugin alembic.autogenerate..." at INFO per plugin
    import logging.config

    from omegaconf import OmegaConf

    from cyclegan.config.overrides import _compose

    cfg = _compose("train", ["hparams_search=optuna"], hydra_config=True)
    root = logging.getLogger()
    before, root_state = logging.getLogger("alembic").level, (root.level, list(root.handlers))
    try:
        logging.config.dictConfig(OmegaConf.to_container(cfg.hydra.hydra_logging, resolve=True))
        assert not logging.getLogger("alembic.runtime.plugins").isEnabledFor(logging.INFO)
        assert logging.getLogger("alembic.runtime.plugins").isEnabledFor(logging.WARNING)
        assert logging.getLogger("cyclegan").isEnabledFor(logging.INFO)
    finally:
        logging.getLogger("alembic").setLevel(before)
        root.setLevel(root_state[0])
        root.handlers[:] = root_state[1]
