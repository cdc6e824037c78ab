"""The command line a new user meets: misspelled group options, --help, launchers, W&B without an account."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from cyclegan.config.overrides import check_overrides

ROOT = Path(__file__).resolve().parents[1]


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
])
def test_an_unknown_group_option_is_one_line_with_the_valid_ones(caplog, override, valid, close):
    message = one_line_exit(caplog, [override])
    assert valid in message and f"did you mean {close}?" in message
    assert "_common" not in message and "_berkeley" not in message


def test_valid_options_lists_and_sweeps_pass(caplog):
    check_overrides(["data=monet2photo", "logger=[csv,tensorboard]", "experiment=null", "trainer=cpu"], "train")
    check_overrides(["-m", "data=horse2zebra,monet2photo", "model.lr=1e-4,2e-4"], "train")
    check_overrides(["metrics=default", "data=sample"], "evaluate")
    assert "metrics=defualt" in one_line_exit(caplog, ["metrics=defualt"], config_name="evaluate")


def test_help_lists_the_groups_without_the_internal_files():
    result = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    groups = result.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "data: apple2orange," in groups and "trainer: bf16, cpu, ddp, default, fp16, gpu" in groups
    assert "_common" not in groups and "_berkeley" not in groups
    assert "hydra/launcher:" in groups and "submitit_slurm" in groups
