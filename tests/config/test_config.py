"""Every option of every config group composes and instantiates; the CLI surface exists."""

import re
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from conftest import CONF_DIR, compose_config
from cyclegan.data import UnpairedDataModule

GROUPS = ["data", "model", "trainer", "logger", "callbacks"]


def options(group):
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes(tmp_path, group, option):
    overrides = [f"{group}={option}"]
    if group == "data" and option == "folders":
        overrides += ["data.dir_a=/x", "data.dir_b=/y"]
    cfg = compose_config(tmp_path, *overrides)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    assert cfg[group] is not None or group == "logger"


@pytest.mark.parametrize("option", options("data"))
def test_every_data_config_instantiates(tmp_path, option):
    overrides = ["data.dir_a=/x", "data.dir_b=/y"] if option == "folders" else []
    cfg = compose_config(tmp_path, f"data={option}", *overrides)
    dm = hydra.utils.instantiate(cfg.data)  # missing datasets are reported in setup(), not here
    assert isinstance(dm, UnpairedDataModule)
    assert (dm.name, dm.source) == (cfg.data.name, cfg.data.source)


@pytest.mark.parametrize("option", ["cpu", "default"])
def test_trainer_configs_instantiate(tmp_path, option):
    cfg = compose_config(tmp_path, f"trainer={option}", "trainer.accelerator=cpu", "trainer.devices=1")
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert trainer.max_epochs == cfg.model.n_epochs + cfg.model.n_epochs_decay


def test_user_surface_keys_exist(tmp_path):
    cfg = compose_config(
        tmp_path,
        "data=vangogh2photo", "model.gen=unet", "paths.data_dir=/data", "data.image_size=128",
        "data.batch_size=4", "data.num_workers=2", "model.disc=pixel", "model.gan_mode=vanilla",
        "model.lambda_cycle=5", "model.lambda_identity=0", "model.lr=1e-4", "model.pool_size=0",
        "trainer.max_epochs=3", "trainer.max_steps=10", "logger=tensorboard", "ckpt_path=null", "seed=7",
    )
    assert cfg.data.root == "/data/vangogh2photo"
    assert cfg.model.gen == "unet" and cfg.model.lambda_cycle == 5 and cfg.trainer.max_epochs == 3
    model = hydra.utils.instantiate(cfg.model)
    assert model.lambda_A == model.lambda_B == 5
    assert type(model.G_AB).__name__ == "UnetGenerator"


def test_default_is_the_embedded_sample_on_a_small_model(tmp_path):
    cfg = compose_config(tmp_path)
    assert cfg.data.source == "sample" and cfg.model.ngf < 64
    assert cfg.trainer.max_epochs == cfg.model.n_epochs + cfg.model.n_epochs_decay
    # a real dataset keeps the reference's model and schedule
    real = compose_config(tmp_path, "data=monet2photo")
    assert (real.model.ngf, real.model.n_blocks, real.trainer.max_epochs) == (64, 9, 200)


def test_several_loggers_at_once(tmp_path):
    cfg = compose_config(tmp_path, "logger=many")
    assert set(cfg.logger) == {"csv", "tensorboard", "wandb"}


def test_painter_options_are_checked_in_one_line(tmp_path):
    from cyclegan.config.checks import ConfigError, validate_config

    for overrides, fragment in (
        (["model.upsample=bilinear"], "model.upsample='bilinear' is not one of: deconv, resize"),
        (["data=sample", "model.gen=unet", "model.residual_output=true"],
         "model.residual_output=True is an option of the resnet"),
        (["model.diffaugment=colour"], "model.diffaugment: unknown transform 'colour'"),
        (["cpu_threads=0"], "cpu_threads=0 must be an integer >= 1 or null"),
    ):
        with pytest.raises(ConfigError, match=re.escape(fragment)):
            validate_config(compose_config(tmp_path, *overrides))
    validate_config(compose_config(tmp_path, "experiment=monet_cpu"))


def test_cpu_threads_sets_torchs_intra_op_threads():
    import torch

    from cyclegan.training.run import apply_cpu_threads

    before = torch.get_num_threads()
    try:
        apply_cpu_threads(2)
        assert torch.get_num_threads() == 2
        apply_cpu_threads(None)  # leaves it alone
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
