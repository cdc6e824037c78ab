"""config/model_checks.py: the model group's choices and ranges come from the family's constructor
signature (cyclegan/gan/hparams.py annotations) and the network registry, for every family alike."""

from __future__ import annotations

import re

import pytest
from conftest import compose_config

from cyclegan.config.checks import ConfigError, validate_config


@pytest.mark.parametrize("family", ["cyclegan", "cut"])
@pytest.mark.parametrize("override, fragment", [
    ("model.beta1=1", "model.beta1=1 must be a number in [0, 1)"),
    ("model.lr_policy=cos", "model.lr_policy='cos' is not one of: linear, step"),
    ("model.n_epochs=-1", "model.n_epochs=-1 must be an integer >= 0"),
    ("model.ngf=0", "model.ngf=0 must be an integer >= 1"),
    ("model.norm=group", "model.norm='group' is not one of: instance, batch, none"),
])
def test_shared_keys_are_checked_from_each_familys_signature(tmp_path, family, override, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        validate_config(compose_config(tmp_path, "data=sample", f"model={family}", override))


@pytest.mark.parametrize("override, fragment", [
    ("model.nce_T=0", "model.nce_T=0 must be a number > 0"),
    ("model.num_patches=0", "model.num_patches=0 must be an integer >= 1"),
    ("model.lambda_NCE=-1", "model.lambda_NCE=-1 must be a number >= 0"),
    ("model.disc=pixel", "model.antialias=True is an option of the patch discriminator, not of model.disc=pixel"),
])
def test_cut_keys_are_checked_from_its_signature_and_the_registry(tmp_path, override, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        validate_config(compose_config(tmp_path, "data=sample", "model=cut", override))
    validate_config(compose_config(tmp_path, "data=sample", "model=cut"))


def test_cut_takes_blur_pool_down_sampling_with_resize_up_sampling_from_the_command_line(tmp_path):
    # the preset up-samples by resize-convolution; the error names model.antialias_up, a key of
    # conf/model/cut.yaml, so its advice works as a plain override
    preset = ("experiment=photo2vangogh_fastcut_cpu", "data=sample", "model.antialias=true")
    with pytest.raises(ConfigError, match=re.escape("set antialias_up=false or upsample=deconv")):
        validate_config(compose_config(tmp_path, *preset))
    cfg = compose_config(tmp_path, *preset, "model.antialias_up=false")
    validate_config(cfg)
    assert cfg.model.antialias_up is False and cfg.model.upsample == "resize"
