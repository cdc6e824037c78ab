"""--help of train.py and evaluate.py: a short curated page; --help-all: Hydra's full listing."""

import runpy
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

import cyclegan.config.help as help_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def help_of(capsys, monkeypatch):
    """`help_of("train.py", "--help")` -> what the script prints (run in this process, as __main__)."""
    def run(script: str, *args: str) -> str:
        monkeypatch.setattr(help_module, "_full", False)
        monkeypatch.setattr(sys, "argv", [str(ROOT / script), *args])
        GlobalHydra.instance().clear()
        try:
            with pytest.raises(SystemExit) as done:  # Hydra exits after printing the help
                runpy.run_path(str(ROOT / script), run_name="__main__")
            assert done.value.code in (0, None)
        finally:  # Hydra's help leaves its job config set: later tests would read these overrides as theirs
            GlobalHydra.instance().clear()
            HydraConfig.instance().cfg = None
        return capsys.readouterr().out

    return run


def test_train_help_is_a_short_page_with_groups_keys_and_three_examples(help_of):
    page = help_of("train.py", "--help")
    assert len(page.splitlines()) < 50
    assert "experiment: demo_cpu, fast_h100," in page  # the options, generated from conf/
    assert "model.init_from" in page and "model.lambda_cycle" in page and "trainer.precision" in page
    assert sum(line.startswith("  python train.py ") for line in page.splitlines()) == 3
    assert "--help-all" in page and "== Config ==" not in page and "optimized_metric:" not in page


def test_evaluate_help_says_that_ckpt_path_is_required(help_of):
    page = help_of("evaluate.py", "--help")
    assert len(page.splitlines()) < 50 and "ckpt_path is required" in page
    assert "metrics.directions" in page and "data: apple2orange," in page
    assert sum(line.startswith("  python evaluate.py ") for line in page.splitlines()) == 3


def test_help_all_keeps_every_key_one_flag_away(help_of):
    page = help_of("train.py", "--help-all", "data=vangogh2photo")
    assert "== Config ==" in page and "optimized_metric: val/kid" in page and "lambda_identity: 0.5" in page
