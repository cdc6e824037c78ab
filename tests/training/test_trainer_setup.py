"""cyclegan.training.trainer_setup: Lightning judges its own Trainer arguments; its refusals reach the user as
one line naming the trainer.* key, the documented max_time mapping works, several CPU processes train."""

from __future__ import annotations

import pytest
import torch
from pytorch_lightning.callbacks import Timer

from conftest import TINY, compose_config, tiny_with
from cyclegan.training.run import train
from cyclegan.training.trainer_setup import TrainerConfigError, build_trainer, trainer_arguments

QUIET = ["callbacks.progress_bar.refresh_rate=0", "~callbacks.val_kid"]


def trainer_of(tmp_path, *overrides: str):
    return build_trainer(compose_config(tmp_path, *tiny_with(*overrides)).trainer, logger=False)


@pytest.mark.parametrize("override,expected", [
    ("trainer.precision=fp16", "trainer.precision='fp16': Precision 'fp16' is invalid. Allowed precision values:"),
    ("trainer.max_steps=abc", "trainer.max_steps='abc': "),
    ("trainer.max_steps=-5", "trainer.max_steps=-5: `max_steps` must be a non-negative integer or -1"),
    ("trainer.max_time=10min", "trainer.max_time='10min': `Timer(duration='10min')` is not a valid duration"),
    ("trainer.max_time=600", "trainer.max_time=600: "),
    ("trainer.max_time={minuts: 10}", "trainer.max_time={'minuts': 10}: 'minuts' is an invalid keyword argument"),
    ("trainer.devices=0", "trainer.devices=0: `Trainer(devices=0)` value is not a valid input"),
    ("+trainer.strategy=dpp", "trainer.strategy='dpp': You selected an invalid strategy name"),
])
def test_what_lightning_refuses_while_building_is_one_line_naming_the_key(tmp_path, override, expected):
    with pytest.raises(TrainerConfigError) as e:
        trainer_of(tmp_path, override)
    assert str(e.value).startswith(expected) and "\n" not in str(e.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_gpu_trainer_on_a_machine_without_one_names_the_accelerator(tmp_path):
    with pytest.raises(TrainerConfigError, match=r"^trainer.accelerator='gpu': "):
        trainer_of(tmp_path, "trainer=gpu")


def test_the_documented_max_time_mapping_becomes_a_timer(tmp_path):
    trainer = trainer_of(tmp_path, "trainer.max_time={minutes: 1, seconds: 30}")
    timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
    assert timer._duration == 90


@pytest.mark.parametrize("override,expected", [
    ("+trainer.gradient_clip_val=1", "trainer.gradient_clip_val=1: Automatic gradient clipping is not supported "
                                     "for manual optimization"),
    ("+trainer.accumulate_grad_batches=2", "trainer.accumulate_grad_batches=2: Automatic gradient accumulation"),
    ("+trainer.val_check_interval=1000", "trainer.val_check_interval=1000: `val_check_interval` (1000) must be less"),
])
def test_what_lightning_refuses_when_fit_starts_is_one_line_naming_the_key(tmp_path, override, expected):
    with pytest.raises(TrainerConfigError) as e:
        train(compose_config(tmp_path, *TINY, *QUIET, override))
    assert str(e.value).startswith(expected) and "\n" not in str(e.value)
    if "manual optimization" in expected:
        assert "the GAN steps its optimizers itself" in str(e.value)


@pytest.mark.parametrize("given,expected", [
    ({"accelerator": "cpu", "devices": 2}, "ddp_find_unused_parameters_true"),  # trainer=cpu trainer.devices=2
    ({"accelerator": "cpu", "devices": 2, "strategy": "ddp"}, "ddp_find_unused_parameters_true"),
    ({"accelerator": "cpu", "devices": "0,1", "strategy": "ddp_spawn"}, "ddp_spawn_find_unused_parameters_true"),
    ({"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn_find_unused_parameters_true"},
     "ddp_spawn_find_unused_parameters_true"),
    ({"accelerator": "cpu", "devices": 1}, None),
    ({"accelerator": "cpu", "devices": 1, "num_nodes": 2}, "ddp_find_unused_parameters_true"),
])
def test_several_processes_look_for_the_parameters_a_step_leaves_unused(given, expected):
    assert trainer_arguments(given).get("strategy") == expected


def test_two_cpu_processes_train_with_a_plain_ddp_strategy(tmp_path):
    # trainer=cpu trainer.devices=2 +trainer.strategy=ddp_spawn stopped with "parameters that were not used"
    train(compose_config(tmp_path, *tiny_with("trainer.devices=2", "+trainer.strategy=ddp_spawn",
                                              "trainer.limit_val_batches=0", "data.epoch_length=4"), *QUIET))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
