"""cyclegan.config.overrides: unknown and misspelled override keys are one line with the real keys."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import HydraException

from conftest import compose_config


def test_an_unknown_override_is_reported_by_hydra_with_the_key(tmp_path):
    with pytest.raises(HydraException) as e:
        compose_config(tmp_path, "model.genn=unet")
    assert "model.genn" in str(e.value) and "Traceback" not in str(e.value)


def test_misspelled_override_key_is_one_line_with_the_real_keys():
    from cyclegan.config.overrides import check_overrides

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "train.py", "data=monet2photo", "model.lambda_cycl=3"], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "model.lambda_cycl" in lines[0] and "did you mean model.lambda_cycle" in lines[0]
    assert "+model.lambda_cycl=" in lines[0]
    # valid keys, group choices, sweep values, additions and Hydra's own keys pass through
    check_overrides(["data=monet2photo", "model.lr=1e-4,2e-4", "+trainer.fast_dev_run=true",
                     "hydra.run.dir=/tmp/x", "trainer.max_time=00:00:01:00"], config_name="train")


def test_a_key_under_a_group_the_config_does_not_have_is_one_line(caplog):
    from cyclegan.config.overrides import check_overrides

    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        check_overrides(["model.gen=resnet"], config_name="evaluate")  # evaluate.py has no model group
    assert e.value.code == 2
    message = caplog.records[-1].getMessage()
    assert message.startswith("unknown config key 'model.gen': the config has no 'model'; it has: ")
    assert "ckpt_path" in message and "\n" not in message
