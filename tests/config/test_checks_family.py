"""Config checks of the model families: a key the chosen family's class cannot take (e.g. from a preset
written for CycleGAN) and bad CUT values are one line before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import compose_config
from cyclegan.config.checks import ConfigError, validate_config


@pytest.mark.parametrize("model", ["cut", "fastcut"])
def test_the_cut_families_validate_on_the_sample_and_a_real_dataset(tmp_path, model):
    validate_config(compose_config(tmp_path, f"model={model}", "data=sample"))
    validate_config(compose_config(tmp_path, f"model={model}", "data=monet2photo", "paths.data_dir=/data"))


def test_a_cyclegan_preset_with_cut_names_the_foreign_keys_and_the_fix(tmp_path):
    cfg = compose_config(tmp_path, "model=cut")  # the default data=demo selects the CycleGAN painter's preset
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    message = str(info.value)
    assert "model.lambda_cycle, model.lambda_identity are not keys of CUT" in message and "data=sample" in message
    assert "\n" not in message


@pytest.mark.parametrize("override, expected", [
    ("model.num_patches=0", "model.num_patches=0 must be an integer >= 1"),
    ("model.direction=sideways", "model.direction='sideways'"),
    ("model.nce_T=0", "model.nce_T=0 must be a number > 0"),
    ("model.lambda_NCE=-1", "model.lambda_NCE=-1 must be a number >= 0"),
    ("model.nce_layers=[8,4]", "increasing"),
    ("model.nce_layers=[0,4,99]", "has layers 0..28"),
])
def test_bad_cut_values_are_one_line(tmp_path, override, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace(".", r"\.")):
        validate_config(compose_config(tmp_path, "model=cut", "data=sample", override))


@pytest.mark.parametrize("model", ["cut", "fastcut"])
def test_the_cut_search_space_sweeps_keys_the_cut_families_have(tmp_path, model):
    space = OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "hparams_search" / "optuna_cut.yaml")
    composed = compose_config(tmp_path, f"model={model}", "data=sample").model
    swept = [key.split(".", 1)[1] for key in space.hydra.sweeper.params]
    assert swept and all(key in composed for key in swept)
