"""conf/experiment presets: each composes with the settings of the project it reproduces, and
`python train.py -m 'experiment=glob(*)' +trainer.fast_dev_run=true` runs every one of them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode

import cyclegan.inference.pretrained as pretrained
from conftest import CONF_DIR, TINY_CLI, compose_config, run_cli

PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


def test_the_presets_are_there_and_say_what_they_reproduce():
    assert PRESETS == ["demo_cpu", "fast_h100", "kaggle_monet_resnet", "kaggle_tutorial_unet", "monet2photo_fastcut_cpu",
                       "monet_10min", "monet_10min_naive", "monet_cpu", "monet_vangogh_via_photo", "photo2vangogh_fastcut_cpu",
                       "reference_cyclegan", "sample_cpu", "vangogh_unet"]
    for name in PRESETS:
        text = (Path(CONF_DIR) / "experiment" / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_\n# "), f"{name}: package line, then a comment naming its source"


def epochs(cfg) -> int:
    return cfg.model.n_epochs + cfg.model.n_epochs_decay


def test_kaggle_monet_resnet_is_the_sjsu_setup(tmp_path):
    cfg = compose_config(tmp_path, "experiment=kaggle_monet_resnet")
    m = cfg.model
    assert cfg.data.name == "kaggle_monet" and cfg.data.epoch_length == 300 and epochs(cfg) == 50
    assert (m.gen, m.n_blocks, m.gan_mode, m.lambda_cycle, m.lambda_identity, m.d_loss_weight) == (
        "resnet", 9, "vanilla", 10.0, 0.5, 0.5)
    assert cfg.trainer.max_epochs == 50


def test_vangogh_unet_is_the_dashtoon_setup(tmp_path):
    cfg = compose_config(tmp_path, "experiment=vangogh_unet")
    m = cfg.model
    assert cfg.data.name == "vangogh2photo" and cfg.data.batch_size == 4 and epochs(cfg) == 50
    assert (m.gen, m.disc, m.lambda_cycle) == ("unet", "patch", 10.0)
    assert m.lambda_identity * m.lambda_cycle == 5.0


def test_kaggle_tutorial_unet_is_the_keras_notebook(tmp_path):
    cfg = compose_config(tmp_path, "experiment=kaggle_tutorial_unet")
    m = cfg.model
    assert (m.gen, m.disc, m.gan_mode, m.d_loss_weight, m.pool_size) == ("unet_keras", "keras", "vanilla", 0.5, 0)
    assert cfg.data.name == "kaggle_monet" and cfg.data.epoch_length == 300 and epochs(cfg) == 1


def test_monet_vangogh_via_photo_trains_both_cyclegans_as_one_sweep():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=monet_vangogh_via_photo"], return_hydra_config=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert cfg.hydra.sweeper.params.data == "monet2photo,vangogh2photo"
    assert (cfg.model.gen, cfg.model.unet_depth) == ("unet", 7)
    text = (Path(CONF_DIR) / "experiment" / "monet_vangogh_via_photo.yaml").read_text()
    assert "python -m cyclegan.translate --ckpt" in text and ":AB" in text and ":BA" in text


def test_reference_cyclegan_has_the_papers_defaults(tmp_path):
    cfg = compose_config(tmp_path, "experiment=reference_cyclegan")
    m = cfg.model
    assert (m.gen, m.n_blocks, m.ngf, m.gan_mode, m.pool_size, m.n_epochs, m.n_epochs_decay) == (
        "resnet", 9, 64, "lsgan", 50, 100, 100)
    assert (cfg.data.batch_size, cfg.data.load_size, cfg.data.image_size) == (1, 286, 256)


def test_fast_h100_is_the_speed_recipe(tmp_path):
    cfg = compose_config(tmp_path, "experiment=fast_h100")
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.accelerator == "gpu"
    assert cfg.model.channels_last is True and cfg.model.compile is True and cfg.data.batch_size == 16


def test_monet_10min_is_the_speed_recipe_on_a_time_budget_and_its_baseline_the_naive_step(tmp_path):
    fast = compose_config(tmp_path, "experiment=monet_10min")
    naive = compose_config(tmp_path, "experiment=monet_10min_naive")
    for cfg in (fast, naive):
        assert cfg.data.name == "monet2photo" and cfg.trainer.max_time == "00:00:09:00" and cfg.trainer.max_epochs == -1
        assert cfg.model.lr_policy == "linear_time" and cfg.model.gen == "resnet" and cfg.model.n_blocks == 9
    assert (fast.trainer.precision, fast.data.batch_size, fast.model.compile) == ("bf16-mixed", 16, True)
    assert (naive.trainer.precision, naive.data.batch_size, naive.model.compile) == ("32-true", 1, False)
    assert naive.model.channels_last is False and naive.model.fused_adam is False


def test_monet_cpu_is_the_two_core_painter_within_a_half_hour_budget(tmp_path):
    cfg = compose_config(tmp_path, "experiment=monet_cpu")
    m = cfg.model
    assert cfg.data.name == "monet2photo" and cfg.trainer.accelerator == "cpu"
    assert cfg.trainer.max_time == "00:00:12:00" and cfg.trainer.max_epochs == -1 and m.lr_policy == "linear_time"
    assert cfg.trainer.precision == "bf16-mixed" and (cfg.data.image_size, cfg.data.batch_size) == (128, 4)
    assert (m.gen, m.upsample, m.residual_output) == ("resnet", "resize", True)
    # the recipe that leaves the identity start (docs/RESULTS.md): a palette-seeing D, a light cycle term
    assert (m.ndf, m.diffaugment, m.lambda_cycle, m.lambda_identity) == (64, None, 0.25, 0.0)
    assert cfg.cpu_threads == 2 and cfg.data.num_workers == 0
    # the reference architecture stays everyone else's default
    default = compose_config(tmp_path, "data=monet2photo")
    assert (default.model.upsample, default.model.residual_output, default.model.diffaugment) == ("deconv", False, None)


def test_monet2photo_fastcut_cpu_is_the_bundled_monet2photo_recipe(tmp_path):
    cfg = compose_config(tmp_path, "experiment=monet2photo_fastcut_cpu")
    m = cfg.model
    assert m._target_ == "cyclegan.gan.cut.CUT" and m.nce_idt is False and m.flip_equivariance is True  # FastCUT
    assert cfg.data.name == "monet2photo" and m.direction == "AB" and cfg.trainer.accelerator == "cpu"
    assert cfg.trainer.max_time == "00:00:55:00" and m.lr_policy == "linear_time"  # M55, docs/RESULTS.md
    assert (m.ngf, m.n_blocks, m.upsample, m.residual_output) == (32, 6, "resize", True)
    # what moved the identity start (docs/RESULTS.md): strided D, normal init, D at twice G's lr, light NCE
    assert (m.antialias, m.init_type, m.lambda_NCE, m.lr_D, m.lr) == (False, "normal", 1.0, 4e-4, 2e-4)
    # the bundled painter's card names this preset and its architecture
    card = pretrained.card("monet2photo")
    assert "experiment=monet2photo_fastcut_cpu" in card and "ngf 32, 6 residual blocks" in card


def test_photo2vangogh_fastcut_cpu_is_the_bundled_van_gogh_recipe(tmp_path):
    cfg = compose_config(tmp_path, "experiment=photo2vangogh_fastcut_cpu")
    m = cfg.model
    assert m._target_ == "cyclegan.gan.cut.CUT" and m.nce_idt is False and m.flip_equivariance is True  # FastCUT
    assert m.lambda_NCE == 5.0  # half of FastCUT's 10: the painter paints more
    assert cfg.data.name == "vangogh2photo" and m.direction == "BA" and cfg.trainer.max_time == "00:00:55:00"
    # a random start on crops at the paintings' own scale, within the hour the painters are given
    assert m.residual_output is False
    assert (cfg.data.load_size, cfg.data.image_size, cfg.data.eval_size) == (256, 128, 256)
    assert (m.antialias, m.init_type, m.lr_D, m.lr_policy) == (False, "normal", 4e-4, "linear_time")
    card = pretrained.card("photo2vangogh")
    assert "experiment=photo2vangogh_fastcut_cpu" in card and "ngf 32, 6 residual blocks" in card


def test_every_preset_fast_dev_runs_on_the_sample(tmp_path):
    # Presets that name real datasets run on the bundled sample, with tiny networks. 256 px because
    # the Keras U-Net needs multiples of 256; torch.compile is the speed tests' business (slow on CPU).
    sweep = tmp_path / "presets"
    tiny = [a for a in TINY_CLI if not a.startswith(("data.image_size", "data.load_size", "trainer.max_steps"))]
    run_cli("-m", "experiment=glob(*)", "+trainer.fast_dev_run=true", *tiny, "data.image_size=256",
            "data.load_size=256", "data.batch_size=1", "model.compile=false", "model.init_from=null",  # tiny: no painter
            f"hydra.sweep.dir={sweep}")

    with open(sweep / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["experiment"] for r in rows) == PRESETS
    for row in rows:
        assert row["status"] == "ok", f"{row['experiment']}: {row['error']}"
        # CycleGAN presets report the cycle error, CUT ones how far G moved its input
        val_key = "val/l1_to_input" if "fastcut" in row["experiment"] else "val/cycle_A"
        assert math.isfinite(float(row["train/G_loss_epoch"])) and math.isfinite(float(row[val_key]))
        result = json.loads((Path(row["output_dir"]) / "result.json").read_text())
        assert f"experiment={row['experiment']}" in result["overrides"]
