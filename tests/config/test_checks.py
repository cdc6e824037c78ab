"""cyclegan.config.checks: a bad configuration fails before training, in one line naming the key and the fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT, TINY, compose_config, run_train_py, tiny_with
from cyclegan.config.checks import ConfigError, validate_config


@pytest.mark.parametrize("overrides,expected", [
    (["model.gen=unett"], ["model.gen='unett'", "did you mean 'unet'"]),
    (["model.gen=unet"], ["data.image_size=32 does not fit model.gen=unet with model.unet_depth=8",
                          "model.unet_depth=5"]),
    (["data.image_size=30", "data.load_size=34"], ["multiples of 4", "data.image_size=28 or 32"]),
    (["data.image_size=64", "data.load_size=32"], ["data.load_size=32 must be >= data.image_size=64"]),
    (["data.image_size=16", "data.load_size=16"], ["model.disc=patch", "data.image_size >= 24"]),
    (["model.pool_size=-1"], ["model.pool_size=-1 must be an integer >= 0"]),
    (["model.gan_mode=lsgna", "model.norm=group", "model.init_type=he", "model.lr_policy=cos"],
     ["model.gan_mode='lsgna'", "model.norm='group'", "model.init_type='he'", "model.lr_policy='cos'"]),
    (["model.lr=0"], ["model.lr=0 must be a number > 0"]),
    (["model.lr=abc"], ["model.lr='abc'"]),
    (["data.min_size_policy=crop"], ["data.min_size_policy='crop' is not one of: upscale, reject"]),
    (["callbacks.nan_guard.policy=explode"], ["callbacks.nan_guard.policy='explode' is not one of: stop, skip"]),
    (["callbacks.nan_guard.check_every_n_steps=0"], ["callbacks.nan_guard.check_every_n_steps=0 must be an integer >= 1"]),
    (["data=folders"], ["data=folders needs data.dir_a and data.dir_b"]),
    (["seed=???"], ["seed is required"]),
    (["data.flip=off", "data.cache_images=no", "model.dropout=no"],
     ["data.flip='off' is not a boolean: use true or false", "data.cache_images='no' is not a boolean",
      "model.dropout='no' is not a boolean"]),
    (["trainer.benchmark=yes", "callbacks.model_checkpoint.auto_insert_metric_name=1"],
     ["trainer.benchmark='yes' is not a boolean: use true or false (or null)",
      "callbacks.model_checkpoint.auto_insert_metric_name=1 is not a boolean"]),
    (["seed=abc"], ["seed='abc' must be an integer in [0, 4294967295] or null"]),
    (["seed=-1", "data.seed=x"], ["seed=-1 must be an integer", "data.seed='x' must be an integer"]),
    (["data.max_train_images=abc"], ["data.max_train_images='abc' must be an integer >= 1 or null"]),
    (["data.max_train_images=0"], ["data.max_train_images=0 must be an integer >= 1 or null"]),
    (["data.eval_size=0"], ["data.eval_size=0 must be an integer >= 1 or null"]),
    (["data.eval_size=66"], ["data.eval_size=66 does not fit model.gen=resnet", "data.eval_size=64 or 68"]),
    (["paths.data_dir=${oc.env:CYCLEGAN_TEST_UNSET_VARIABLE}"],
     ["paths.data_dir cannot be resolved: Environment variable 'CYCLEGAN_TEST_UNSET_VARIABLE' not found",
      "${oc.env:NAME,default}"]),
])
def test_bad_configurations_fail_before_training_naming_key_and_choices(tmp_path, overrides, expected):
    cfg = compose_config(tmp_path, *tiny_with(*overrides))
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    msg = str(e.value)
    assert "\n" not in msg
    for text in expected:
        assert text in msg


def test_boolean_keys_come_from_the_constructors_and_evaluate_checks_its_own(tmp_path):
    from cyclegan.config.keys import boolean_parameters

    data = boolean_parameters("cyclegan.data.UnpairedDataModule")
    assert {"flip", "cache_images", "download", "serial_batches", "pin_memory", "persistent_workers"} <= set(data)
    assert "rotate" not in data and "seed" not in data
    model = boolean_parameters("cyclegan.gan.module.CycleGAN")
    assert model.get("dropout") is False and model.get("fused_adam") is True and "compile" not in model  # bool|str|dict
    cfg = compose_config(tmp_path, "bf16=maybe", "metrics.train_ref=yes", "data.flip=0", config_name="evaluate")
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    for text in ("bf16='maybe' is not a boolean", "metrics.train_ref='yes' is not a boolean",
                 "data.flip=0 is not a boolean"):
        assert text in str(e.value)
    validate_config(compose_config(tmp_path, *tiny_with("data.flip=false", "model.compile=default",
                                                        "trainer.max_time={minutes: 10}", "trainer.devices=[0]",
                                                        "trainer.precision=16")))


def test_an_unset_environment_variable_is_the_one_line_config_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CYCLEGAN_TEST_UNSET_VARIABLE"}
    result = subprocess.run([sys.executable, "train.py", *TINY, "paths.data_dir=${oc.env:CYCLEGAN_TEST_UNSET_VARIABLE}",
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=240, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in (result.stderr + result.stdout).splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "paths.data_dir cannot be resolved" in errors[0], errors


def test_valid_configurations_pass(tmp_path):
    validate_config(compose_config(tmp_path, *TINY))
    validate_config(compose_config(tmp_path, "data=horse2zebra", "model.gen=unet"))  # 256 px, depth 8
    validate_config(compose_config(tmp_path, *TINY, "model.gen=unet", "model.unet_depth=5"))


def test_command_line_errors_are_one_line_and_exit_2(tmp_path):
    result = run_train_py(*TINY, "model.gen=unett", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in (result.stderr + result.stdout).splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "did you mean 'unet'" in errors[0]

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_train_py(*TINY, f"hydra.run.dir={blocker / 'run'}")  # cannot create a folder inside a file
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "hydra.run.dir" in result.stderr and "not writable" in result.stderr


def test_what_a_data_source_needs_is_read_from_its_layout(tmp_path, monkeypatch):
    from cyclegan.data.layouts import LAYOUTS, FoldersLayout, SampleLayout

    # any source, under any name, is judged by the fields its layout declares
    monkeypatch.setitem(LAYOUTS, "pairs_of_dirs", FoldersLayout())
    monkeypatch.setitem(LAYOUTS, "bundled", SampleLayout("A", "B"))
    with pytest.raises(ConfigError, match="data=pairs_of_dirs needs data.dir_a and data.dir_b"):
        validate_config(compose_config(tmp_path, *tiny_with("data.source=pairs_of_dirs", "data.root=null")))
    validate_config(compose_config(tmp_path, *tiny_with("data.source=bundled", "data.root=null")))  # needs no root


@pytest.mark.parametrize("amx,overrides,refused", [
    (True, ["model.compile=true", "trainer.precision=bf16-mixed", "trainer.accelerator=cpu"], True),
    (False, ["model.compile=true", "trainer.precision=bf16-mixed", "trainer.accelerator=cpu"], False),
    (True, ["model.compile=true", "trainer.precision=32-true", "trainer.accelerator=cpu"], False),
    (True, ["model.compile=false", "trainer.precision=bf16-mixed", "trainer.accelerator=cpu"], False),
    (True, ["model.compile=true", "trainer.precision=bf16-mixed", "trainer.accelerator=gpu"], False),
])
def test_compiled_bf16_training_is_refused_only_on_an_amx_cpu(tmp_path, monkeypatch, amx, overrides, refused):
    import cyclegan.config.checks as checks

    monkeypatch.setattr(checks, "cpu_has_amx", lambda: amx)
    cfg = compose_config(tmp_path, *tiny_with(*overrides))
    if not refused:
        validate_config(cfg)
        return
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    msg = str(e.value)
    assert "\n" not in msg and "model.compile=true with trainer.precision=bf16-mixed is refused" in msg
    assert "model.compile=false" in msg and "trainer.precision=32-true" in msg
