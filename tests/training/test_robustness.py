"""Bad data, bad configuration, NaN, interruption, unsafe checkpoints: explained in one line, no work lost.

See docs/ROBUSTNESS.md for the guarantees these tests pin down.
"""

from __future__ import annotations

import builtins
import csv
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import HydraException
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from conftest import TINY, RandomPairs, RunsACommand, compose_config
from cyclegan.config.checks import ConfigError, validate_config
from cyclegan.errors import exit_on_user_error
from cyclegan.data import DatasetNotFoundError, UnpairedDataModule, scan_images
from cyclegan.gan.module import CycleGAN
from cyclegan.imaging import ImageLoadError, load_image
from cyclegan.training.preflight import (
    OutputDirError,
    ResumeError,
    check_output_dir,
    check_resume_checkpoint,
    estimate_checkpoint_bytes,
)
from cyclegan.training.safety import GracefulShutdown, NaNGuard, TrainingDiverged, TrainingInterrupted
from cyclegan.training.run import train

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = dict(ngf=4, ndf=4, n_blocks=1, d_layers=2)


# ----------------------------------------------------------------------------- helpers
def write_image(path: Path, size=(40, 30), mode="RGB", fmt=None, color=(200, 100, 50), **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).convert(mode).save(path, format=fmt, **kw)
    return path


def folders_dm(dir_a: Path, dir_b: Path, **kw) -> UnpairedDataModule:
    base = dict(name="f", source="folders", dir_a=str(dir_a), dir_b=str(dir_b), image_size=16, load_size=20,
                batch_size=1, num_workers=0, pin_memory=False, persistent_workers=False, val_size=0)
    base.update(kw)
    return UnpairedDataModule(**base)


def tiny_fit(root: Path, model: pl.LightningModule, callbacks: list, max_steps: int, ckpt_path=None) -> pl.Trainer:
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         default_root_dir=str(root), callbacks=callbacks)
    trainer.fit(model, DataLoader(RandomPairs(), batch_size=2), ckpt_path=ckpt_path, weights_only=True)
    return trainer


def inject(model: CycleGAN, which: str, steps: set[int], value=float("nan")) -> None:
    """Make the generator ('G') or discriminator ('D') loss non-finite at the given global steps."""
    if which == "G":
        original = model.generator_loss

        def bad_generator_loss(*args):
            total, logs = original(*args)
            if model.trainer.global_step in steps:
                total = total * value
                logs["G_loss"] = total
            return total, logs

        model.generator_loss = bad_generator_loss
    else:
        original = model.discriminator_loss

        def bad_discriminator_loss(*args):
            loss = original(*args)
            return loss * value if model.trainer.global_step - 1 in steps else loss  # G step already counted

        model.discriminator_loss = bad_discriminator_loss


class Snapshot(pl.Callback):
    """The generators' weights at the start of each step."""

    def __init__(self):
        self.at: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.at[trainer.global_step] = {k: v.detach().clone() for k, v in pl_module.G_AB.state_dict().items()}


def tiny_with(*overrides: str) -> list[str]:
    """TINY with ``overrides`` replacing TINY's entries for the same key or group."""
    keys = {o.split("=")[0] for o in overrides}
    return [o for o in TINY if o.split("=")[0] not in keys] + list(overrides)


def run_cli(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


# ============================================================================= data
def test_bad_files_are_skipped_with_one_warning_each_and_counted(tmp_path, caplog):
    a, b = tmp_path / "A", tmp_path / "B"
    for i in range(4):
        write_image(a / f"a{i}.jpg")
        write_image(b / f"b{i}.png")
    (a / "zero.jpg").write_bytes(b"")  # zero bytes: dropped at scan time, no file opened
    (a / "text.png").write_text("this is not an image")  # non-image with an image extension
    good = write_image(tmp_path / "full.jpg", size=(64, 64)).read_bytes()
    (a / "trunc.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG

    with caplog.at_level(logging.WARNING):
        dm = folders_dm(a, b)
        dm.setup("fit")
    scan_warnings = [r.getMessage() for r in caplog.records if "zero.jpg" in r.getMessage()]
    assert len(scan_warnings) == 1 and "empty file" in scan_warnings[0]
    assert any("skipped 1 unusable file" in r.getMessage() for r in caplog.records)  # the count after the scan
    assert len(dm.files("train", "A")) == 6  # 4 good + text.png + trunc.jpg (found bad only when read)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        items = [dm.data_train[i] for i in range(len(dm.data_train))]
        items += [dm.data_train[i] for i in range(len(dm.data_train))]  # a second epoch: no new warnings
    used = {it["A_path"] for it in items}
    assert not any(name in p for p in used for name in ("text.png", "trunc.jpg"))
    assert all(torch.isfinite(it["A"]).all() for it in items)
    skip_msgs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(skip_msgs) == 2 and any("text.png" in m for m in skip_msgs) and any("trunc.jpg" in m for m in skip_msgs)
    assert sorted(Path(p).name for p in dm.data_train.skipped_images()) == ["text.png", "trunc.jpg"]
    with caplog.at_level(logging.WARNING):
        dm.teardown("fit")
    assert any("2 image(s) were skipped" in r.getMessage() for r in caplog.records)


def test_a_worker_never_crashes_on_a_bad_file_and_shares_what_it_found(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    for i in range(3):
        write_image(a / f"a{i}.jpg")
        write_image(b / f"b{i}.jpg")
    (a / "a1.jpg").write_bytes(b"GIF89a garbage")
    dm = folders_dm(a, b, num_workers=1, batch_size=3)
    dm.setup("fit")
    batches = list(dm.train_dataloader())  # one worker process decodes everything
    assert sum(len(x["A_path"]) for x in batches) == 3
    assert all("a1.jpg" not in p for x in batches for p in x["A_path"])
    assert [Path(p).name for p in dm.data_train.skipped_images()] == ["a1.jpg"]  # seen from the main process


def test_an_empty_domain_names_the_folder_and_the_layouts(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    write_image(a / "x.jpg")
    (b / "sub").mkdir(parents=True)
    (b / "sub" / "empty.JPG").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError) as e:
        folders_dm(a, b).setup("fit")
    assert str(b) in str(e.value) and "Accepted layouts" in str(e.value)

    (b / "sub" / "empty.JPG").write_text("not an image")  # nothing decodable at all: a clear error, not a hang
    with pytest.raises(ImageLoadError, match="no image in .*B can be used.*empty.JPG"):
        folders_dm(a, b).setup("fit")


def undecodable_domain(tmp_path: Path) -> tuple[Path, Path]:
    """Folder A with two good images; folder B with five files that all fail to decode."""
    a, b = tmp_path / "A", tmp_path / "B"
    for i in range(2):
        write_image(a / f"a{i}.jpg")
    b.mkdir()
    for i in range(5):
        (b / f"b{i}.jpg").write_bytes(b"not a jpeg at all")
    return a, b


def assert_one_line_naming(message: str, folder: Path) -> None:
    assert "\n" not in message and "Traceback" not in message and "DataLoader worker" not in message
    assert f"no image in {folder} can be used" in message and "all 5 file(s)" in message
    assert "b0.jpg, b1.jpg, b2.jpg and 2 more" in message


def test_a_domain_with_nothing_decodable_is_one_line_before_training_starts(tmp_path, caplog):
    a, b = undecodable_domain(tmp_path)
    cfg = compose_config(tmp_path / "run", *tiny_with("data=folders", f"data.dir_a={a}", f"data.dir_b={b}",
                                                      "data.num_workers=1", "data.val_size=0"))
    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        with exit_on_user_error():
            train(cfg)  # one DataLoader worker: the domain is checked in the main process first
    assert e.value.code == 2
    assert_one_line_naming(caplog.records[-1].getMessage(), b)
    assert not any("skipping" in r.getMessage() for r in caplog.records)  # one line, not a warning per file


def test_a_domain_with_nothing_decodable_is_one_line_in_evaluate(tmp_path, caplog):
    from cyclegan.evaluation.run import EvaluationError, evaluate

    ckpt = tmp_path / "tiny.ckpt"
    tiny_fit(tmp_path, CycleGAN(**TINY_MODEL), [], max_steps=1).save_checkpoint(ckpt)
    a, b = undecodable_domain(tmp_path)
    cfg = compose_config(tmp_path / "eval", f"ckpt_path={ckpt}", "data=folders", f"data.dir_a={a}",
                         f"data.dir_b={b}", f"data.test_dir_a={a}", f"data.test_dir_b={b}", "data.image_size=32",
                         "data.num_workers=1",
                         "metrics.inception=tiny", f"metrics.cache_dir={tmp_path / 'cache'}", config_name="evaluate")
    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        with exit_on_user_error():
            evaluate(cfg)
    assert e.value.code == 2
    assert_one_line_naming(caplog.records[-1].getMessage(), b)

    write_image(b / "good.jpg")  # readable now, but a hold-out of 0 images leaves no test split to measure
    cfg = compose_config(tmp_path / "eval2", f"ckpt_path={ckpt}", "data=folders", f"data.dir_a={a}",
                         f"data.dir_b={b}", "data.image_size=32", "data.val_size=0", "data.num_workers=0",
                         "metrics.inception=tiny", f"metrics.cache_dir={tmp_path / 'cache'}", config_name="evaluate")
    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        with exit_on_user_error():  # EvaluationError is a UserError, as evaluate.py reports it
            evaluate(cfg)
    assert e.value.code == 2 and "the test split of domain A and B has no images" in caplog.records[-1].getMessage()


def test_a_bad_file_raised_in_a_worker_reaches_the_user_as_its_own_line(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    write_image(a / "a0.jpg")
    (a / "a1.jpg").write_bytes(b"garbage")
    write_image(b / "b0.jpg")
    dm = folders_dm(a, b, num_workers=1, bad_image_policy="raise", serial_batches=True)
    dm.setup("fit")  # the first file of each domain decodes
    with pytest.raises(ImageLoadError) as e:
        list(dm.train_dataloader())
    assert str(e.value).startswith(f"cannot read image '{a / 'a1.jpg'}'") and "\n" not in str(e.value)


def test_link_loops_neither_hang_nor_count_an_image_twice(tmp_path, caplog):
    from cyclegan.inference.batching import list_images

    a = tmp_path / "A"
    write_image(a / "a.jpg")
    write_image(a / "sub" / "b.png")
    (a / "self").symlink_to(".")  # a loop: A/self/self/... is A
    with caplog.at_level(logging.WARNING):
        assert scan_images(a) == [str(a / "a.jpg"), str(a / "sub" / "b.png")]
    (a / "sub" / "up").symlink_to("..")  # a second loop: without the cut, 2**40 paths
    (a / "link.jpg").symlink_to("a.jpg")  # the same file under another name
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert scan_images(a) == [str(a / "a.jpg"), str(a / "sub" / "b.png")]
        assert list_images(a)[1] == [Path("a.jpg"), Path("sub/b.png")]  # translate and compare list the same way
    warnings = [r.getMessage() for r in caplog.records if "symbolic link" in r.getMessage()]
    assert len(warnings) == 2  # one per scan
    assert "3 symbolic link(s)" in warnings[0] and all(n in warnings[0] for n in ("self", "up", "link.jpg"))


def test_an_unreadable_subfolder_is_one_warning_and_the_rest_is_used(tmp_path, monkeypatch, caplog):
    a, b = tmp_path / "A", tmp_path / "B"
    write_image(a / "a.jpg")
    write_image(a / "locked" / "x.jpg")
    write_image(b / "b.jpg")
    real_scandir = os.scandir

    def scandir(path="."):  # chmod 000 means nothing to root, so the refusal is simulated
        if Path(path) == a / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with caplog.at_level(logging.WARNING):
        dm = folders_dm(a, b)
        dm.setup("fit")
    assert dm.files("train", "A") == [str(a / "a.jpg")]
    warnings = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(warnings) == 1 and str(a / "locked") in warnings[0] and "Permission denied" in warnings[0]


def test_the_same_folder_for_both_domains_is_one_warning(tmp_path, caplog):
    a = tmp_path / "A"
    write_image(a / "x.jpg")
    write_image(a / "sub" / "y.jpg")
    with caplog.at_level(logging.WARNING):
        folders_dm(a, tmp_path / "A" / ".." / "A").setup("fit")
    assert sum("domains A and B both read" in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        folders_dm(a, a / "sub").setup("fit")  # B inside A: A's recursive scan holds B's images too
    assert sum("holds the other domain's folder" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("mode,fmt,ext", [("L", "PNG", "png"), ("P", "PNG", "png"), ("RGBA", "PNG", "png"),
                                          ("CMYK", "JPEG", "jpg"), ("I;16", "PNG", "png")])
def test_every_mode_becomes_rgb_through_the_dataset(tmp_path, mode, fmt, ext):
    a, b = tmp_path / "A", tmp_path / "B"
    if mode == "I;16":
        a.mkdir()
        Image.fromarray(np.full((24, 20), 40000, np.uint16)).save(a / "x.png")
    else:
        write_image(a / f"x.{ext}", size=(20, 24), mode=mode, fmt=fmt)
    write_image(b / "y.jpg")
    dm = folders_dm(a, b)
    dm.setup("fit")
    x = dm.data_train[0]["A"]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and torch.isfinite(x).all()


def test_exif_rotation_is_honoured(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    p = tmp_path / "r.jpg"
    Image.new("RGB", (40, 20)).save(p, exif=exif)
    assert load_image(p).size == (20, 40)


def test_images_smaller_than_the_crop_are_upscaled_or_rejected(tmp_path, caplog):
    a, b = tmp_path / "A", tmp_path / "B"
    write_image(a / "a0_small.jpg", size=(10, 12))
    write_image(a / "a1_big.jpg", size=(40, 40))
    write_image(b / "b.jpg", size=(40, 40))
    dm = folders_dm(a, b)  # image_size 16
    dm.setup("fit")
    with caplog.at_level(logging.WARNING):
        first, again = dm.data_train[0], dm.data_train[0]
    assert first["A_path"].endswith("a0_small.jpg") and first["A"].shape == (3, 16, 16)
    assert sum("smaller than data.image_size=16: upscaled" in r.getMessage() for r in caplog.records) == 1
    assert again["A_path"] == first["A_path"]

    dm = folders_dm(a, b, min_size_policy="reject")
    dm.setup("fit")
    assert dm.data_train[0]["A_path"].endswith("a1_big.jpg")  # the small one is skipped
    assert [Path(p).name for p in dm.data_train.skipped_images()] == ["a0_small.jpg"]


def test_huge_images_are_reduced_on_read_and_bombs_refused(tmp_path, monkeypatch):
    png = write_image(tmp_path / "huge.png", size=(2000, 1500))
    im = load_image(png, draft_size=100)
    assert im.size == (134, 100)  # box-reduced by 15 (ceil) right after decoding: both sides stay >= 100
    jpg = write_image(tmp_path / "huge.jpg", size=(2000, 1500))
    assert min(load_image(jpg, draft_size=100).size) >= 100 and load_image(jpg, draft_size=100).size[0] < 2000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # PIL refuses > 2x this: a decompression bomb
    with pytest.raises(ImageLoadError, match="huge.png"):
        load_image(png, draft_size=100)


def test_scanning_20k_files_opens_none_of_them(tmp_path, monkeypatch):
    exts = [".jpg", ".JPG", ".Jpeg", ".png", ".PNG", ".webp", ".bmp", ".txt"]
    for d in range(20):
        folder = tmp_path / f"d{d:02d}" / "nested"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"{i:04d}{exts[i % len(exts)]}").write_bytes(b"x")

    def forbidden(*args, **kwargs):
        raise AssertionError(f"a file was opened while scanning: {args[:1]}")

    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(os, "open", forbidden)
    monkeypatch.setattr(Image, "open", forbidden)
    paths = scan_images(tmp_path)
    monkeypatch.undo()
    assert len(paths) == 20 * 1000 * 7 // 8 and paths == sorted(paths)


def test_a_wrong_data_dir_lists_what_is_there_and_what_would_work(tmp_path):
    data_dir = tmp_path / "data"
    for split in ("trainA", "trainB"):
        write_image(data_dir / "horse2zebra" / split / "x.jpg")
    (data_dir / "notes.txt").write_text("hi")
    dm = UnpairedDataModule(name="monet2photo", source="berkeley", root=str(data_dir / "monet2photo"),
                            download=False, image_size=16, load_size=20, num_workers=0)
    with pytest.raises(DatasetNotFoundError) as e:
        dm.setup("fit")
    msg = str(e.value)
    assert "contains: horse2zebra/, notes.txt" in msg and "Dataset folders found there: horse2zebra" in msg
    assert "\n" not in msg


def test_a_misspelled_dataset_name_lists_the_options(tmp_path):
    with pytest.raises(HydraException) as e:
        compose_config(tmp_path, "data=monet2phot")
    assert "monet2photo" in str(e.value) and "Available options" in str(e.value)


# ============================================================================= configuration
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
    (["trainer=ddp"], ["trainer."]),
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
    (["trainer.max_steps=abc"], ["trainer.max_steps='abc' must be an integer >= -1"]),
    (["trainer.max_steps=-5"], ["trainer.max_steps=-5 must be an integer >= -1"]),
    (["trainer.precision=fp16"], ["trainer.precision='fp16' is not one of:", "bf16-mixed", "did you mean"]),
    (["trainer.max_time=10min"], ["trainer.max_time='10min' is not a duration: use DD:HH:MM:SS"]),
    (["trainer.max_time=600"], ["trainer.max_time=600 is not a duration"]),
    (["trainer.max_time={minuts: 10}"], ["trainer.max_time={'minuts': 10} is not a duration"]),
    (["trainer.devices=abc"], ["trainer.devices='abc' is not a device count or list"]),
    (["trainer.devices=0"], ["trainer.devices=0 is not a device count or list"]),
    (["data.max_train_images=abc"], ["data.max_train_images='abc' must be an integer >= 1 or null"]),
    (["data.max_train_images=0"], ["data.max_train_images=0 must be an integer >= 1 or null"]),
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


def test_ddp_on_a_one_gpu_machine_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"trainer.devices=2 but this machine has 1 GPU\(s\)"):
        validate_config(compose_config(tmp_path, *tiny_with("trainer=ddp")))
    validate_config(compose_config(tmp_path, *tiny_with("trainer=gpu")))


def test_valid_configurations_pass(tmp_path):
    validate_config(compose_config(tmp_path, *TINY))
    validate_config(compose_config(tmp_path, "data=horse2zebra", "model.gen=unet"))  # 256 px, depth 8
    validate_config(compose_config(tmp_path, *TINY, "model.gen=unet", "model.unet_depth=5"))


def test_an_unknown_override_is_reported_by_hydra_with_the_key(tmp_path):
    with pytest.raises(HydraException) as e:
        compose_config(tmp_path, "model.genn=unet")
    assert "model.genn" in str(e.value) and "Traceback" not in str(e.value)


def test_user_errors_exit_2_with_one_line_while_bugs_keep_their_traceback(caplog):
    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        with exit_on_user_error():
            raise ConfigError("model.gen='x' is not one of: a, b")
    assert e.value.code == 2 and caplog.records[-1].getMessage() == "model.gen='x' is not one of: a, b"
    with pytest.raises(ZeroDivisionError):
        with exit_on_user_error():
            1 / 0


def test_command_line_errors_are_one_line_and_exit_2(tmp_path):
    result = run_cli(*TINY, "model.gen=unett", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in (result.stderr + result.stdout).splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "did you mean 'unet'" in errors[0]

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_cli(*TINY, f"hydra.run.dir={blocker / 'run'}")  # cannot create a folder inside a file
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "hydra.run.dir" in result.stderr and "not writable" in result.stderr


# ============================================================================= output folder
def test_unwritable_or_full_output_dir_fails_at_start(tmp_path, tiny_cfg, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputDirError, match="not writable"):
        check_output_dir(blocker / "run")

    cfg = tiny_cfg()
    need = estimate_checkpoint_bytes(cfg)
    assert need > 0
    monkeypatch.setattr("cyclegan.training.preflight.shutil.disk_usage", lambda p: type("U", (), {"free": need // 2})())
    with pytest.raises(OutputDirError, match="MB free but this run's checkpoints need about"):
        train(cfg)  # before the data or the model is built
    assert not (tmp_path / "checkpoints").exists()


# ============================================================================= NaN / Inf
def test_nan_loss_stops_with_a_checkpoint_of_the_last_good_state_that_resumes(tmp_path):
    model = CycleGAN(**TINY_MODEL, pool_size=2)
    inject(model, "G", {2})
    snap = Snapshot()
    with pytest.raises(TrainingDiverged) as e:
        tiny_fit(tmp_path, model, [NaNGuard(policy="stop"), snap], max_steps=10)
    msg = str(e.value)
    assert "step 2" in msg and "G_loss=nan" in msg and "G_AB, G_BA" in msg and "ckpt_path=" in msg
    ckpt_file = Path(e.value.checkpoint)
    assert ckpt_file.exists() and ckpt_file.parent == tmp_path / "checkpoints"
    ckpt = torch.load(ckpt_file, weights_only=True)
    assert ckpt["global_step"] == 3
    g_saved = {k[len("G_AB."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("G_AB.")}
    for k, v in snap.at[1].items():  # the bad update never landed, and the one before it is rolled back
        torch.testing.assert_close(g_saved[k], v, rtol=0, atol=0)
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    assert all(torch.isfinite(im).all() for im in ckpt["image_pools"]["A"]["images"])

    check_resume_checkpoint(ckpt_file, OmegaConf.create(TINY_MODEL))
    with pytest.raises(ResumeError, match="different architecture"):
        check_resume_checkpoint(ckpt_file, OmegaConf.create({**TINY_MODEL, "ngf": 8}))
    resumed = CycleGAN(**TINY_MODEL, pool_size=2)
    trainer = tiny_fit(tmp_path, resumed, [NaNGuard()], max_steps=6, ckpt_path=str(ckpt_file))
    assert trainer.global_step == 6
    assert all(torch.isfinite(p).all() for p in resumed.parameters())


def test_skip_policy_drops_bad_updates_and_gives_up_after_too_many(tmp_path, caplog):
    model = CycleGAN(**TINY_MODEL, pool_size=2)
    inject(model, "D", {1, 2}, value=float("inf"))
    guard = NaNGuard(policy="skip")
    with caplog.at_level(logging.WARNING):
        trainer = tiny_fit(tmp_path, model, [guard], max_steps=4)
    assert trainer.global_step == 4 and guard.total_skipped == 2
    skipped = [r.getMessage() for r in caplog.records if "update skipped" in r.getMessage()]
    assert len(skipped) == 2 and "step 1" in skipped[0] and "D_A, D_B" in skipped[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())

    # The checkpoint estimate covers a real checkpoint with full pools (pool_size 2 <= 4 steps x batch 2).
    trainer.save_checkpoint(tmp_path / "full.ckpt")
    cfg = OmegaConf.create({"model": {**TINY_MODEL, "pool_size": 2}, "data": {"image_size": 32}})
    actual = (tmp_path / "full.ckpt").stat().st_size
    assert actual <= estimate_checkpoint_bytes(cfg) + 64 * 1024 <= 3 * actual

    model = CycleGAN(**TINY_MODEL)
    inject(model, "G", set(range(1, 100)))
    with pytest.raises(TrainingDiverged, match="3 bad steps in a row"):
        tiny_fit(tmp_path, model, [NaNGuard(policy="skip", max_consecutive_skips=2)], max_steps=20)


# ============================================================================= interruption
class RaiseSignal(pl.Callback):
    def __init__(self, at_step: int, signum: int = signal.SIGINT):
        self.at_step, self.signum = at_step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.at_step:
            signal.raise_signal(self.signum)  # handled synchronously, before this returns


def test_ctrl_c_saves_a_resumable_last_ckpt_then_stops(tmp_path):
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    # Python's own Ctrl-C handler, whatever this process inherited: a shell starts background jobs
    # with SIGINT ignored (so pytest launched with `&` would have nothing to restore but SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingInterrupted) as e:
            tiny_fit(tmp_path, CycleGAN(**TINY_MODEL), [RaiseSignal(3), GracefulShutdown()], max_steps=50)
        assert e.value.exit_code == 130 and "SIGINT" in str(e.value)
        ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
        assert ckpt["global_step"] == 3
        with pytest.raises(KeyboardInterrupt):  # after training, Ctrl-C behaves as before
            signal.raise_signal(signal.SIGINT)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_sigterm_after_the_guards_check_still_saves_and_resumes_where_it_stopped(tmp_path):
    """The race CI hit: SIGTERM lands after GracefulShutdown looked at the batch, so Lightning's own
    stop (SIGTERMException, a SystemExit with no code) comes first; nothing may be lost."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(TrainingInterrupted) as e:  # the signal is raised *after* the guard's hook
            train(compose_config(tmp_path / "run", *tiny_with("trainer.max_steps=50"), "callbacks.val_kid=null",
                                 "+callbacks.late_signal._target_=test_robustness.RaiseSignal",
                                 "+callbacks.late_signal.at_step=3", f"+callbacks.late_signal.signum={signal.SIGTERM}"))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert e.value.exit_code == 143 and "Lightning's SIGTERM stop" in str(e.value)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert e.value.checkpoint == str(ckpt)
    assert torch.load(ckpt, weights_only=True)["global_step"] == 3

    run2 = tmp_path / "resumed"
    train(compose_config(run2, *tiny_with("trainer.max_steps=5"), "callbacks.val_kid=null", f"ckpt_path={ckpt}"))
    # it continued from the checkpoint (step 3), and its history holds the steps before it once each
    logged = [int(row["step"]) for row in csv.DictReader((run2 / "csv" / "metrics.csv").open()) if row["train/G_loss_step"]]
    assert logged == list(range(5)) and torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5


def test_lightnings_sigterm_stop_exits_143_not_0():
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    with pytest.raises(SystemExit) as e, exit_on_user_error():
        raise SIGTERMException
    assert e.value.code == 143


def test_a_finished_run_leaves_the_signal_handlers_as_it_found_them(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    train(compose_config(tmp_path / "run", *tiny_with("trainer.max_steps=1"), "callbacks.val_kid=null"))
    assert {s: signal.getsignal(s) for s in before} == before  # Ctrl-C after training raises KeyboardInterrupt again


def test_a_second_ctrl_c_while_stopping_is_ignored_so_the_save_completes(caplog):
    # the whole run (exit 130, checkpoint, result.json) is tested in test_resume_safety.py
    guard = GracefulShutdown()
    guard._install()
    try:
        guard._handle(signal.SIGINT, None)
        assert guard.received == signal.SIGINT
        with caplog.at_level(logging.WARNING):
            guard._handle(signal.SIGINT, None)  # no KeyboardInterrupt
            guard._handle(signal.SIGTERM, None)
        assert guard.received == signal.SIGINT
        assert sum("still stopping, the checkpoint is written first" in r.getMessage() for r in caplog.records) == 2
    finally:
        guard._restore()


class AnnounceSteps(pl.Callback):
    """Prints a line after every training batch so that a parent process can wait for training
    (reading the pipe blocks: no polling, no sleeps)."""

    def on_train_batch_end(self, trainer, *args):
        print(f"TRAINING STEP {trainer.global_step}", flush=True)


def test_sigterm_to_the_process_group_saves_a_checkpoint_and_resume_continues(tmp_path):
    quiet = ["callbacks.progress_bar=null", "+trainer.enable_progress_bar=false", "callbacks.val_kid=null",
             "data.epoch_length=100000"]
    run = tmp_path / "run"
    cmd = [sys.executable, "train.py", *tiny_with("trainer.max_steps=100000"), *quiet, "data.num_workers=1",
           "+callbacks.announce._target_=test_robustness.AnnounceSteps", f"hydra.run.dir={run}"]
    here = Path(__file__).resolve().parent  # the child imports this module (AnnounceSteps) and conftest
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)  # own process group: the signal also reaches its workers
    watchdog = threading.Timer(300, lambda: os.killpg(child.pid, signal.SIGKILL))  # a hung child fails the test
    watchdog.start()
    lines = []
    try:
        for line in child.stdout:
            lines.append(line)
            if line.startswith("TRAINING STEP 2"):  # training is under way: a scheduler's SIGTERM now
                os.killpg(child.pid, signal.SIGTERM)
                break
        lines += child.stdout.readlines()  # to the end of its output
        child.wait(timeout=120)
    finally:
        watchdog.cancel()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    out = "".join(lines)
    assert child.returncode == 143, out[-3000:]
    assert "stopped by SIGTERM" in out and "Traceback" not in out
    ckpt = run / "checkpoints" / "last.ckpt"
    saved_step = torch.load(ckpt, weights_only=True)["global_step"]
    assert saved_step >= 2

    run2 = tmp_path / "resumed"  # resumed in this process (the same train() as train.py)
    train(compose_config(run2, *tiny_with(f"trainer.max_steps={saved_step + 2}"), *quiet, f"ckpt_path={ckpt}"))
    assert torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == saved_step + 2
    logged_steps = [int(row["step"]) for row in csv.DictReader((run2 / "csv" / "metrics.csv").open())
                    if row["train/G_loss_step"]]
    assert logged_steps == list(range(saved_step + 2))  # continued from the checkpoint, with the history before it


# ============================================================================= unsafe checkpoints
def test_a_malicious_checkpoint_is_refused_and_its_payload_never_runs(tmp_path, tiny_cfg):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "optimizer_states": [], "loops": {}, "global_step": 0, "x": RunsACommand(marker)}, evil)

    with pytest.raises(ResumeError, match="arbitrary code") as e:
        check_resume_checkpoint(evil)
    assert "\n" not in str(e.value)
    with pytest.raises(ResumeError, match="arbitrary code"):
        train(tiny_cfg(f"ckpt_path={evil}"))
    with pytest.raises(Exception):  # Lightning's own load is weights_only too (defence in depth)
        tiny_fit(tmp_path, CycleGAN(**TINY_MODEL), [], max_steps=1, ckpt_path=str(evil))
    assert not marker.exists()

    weights = tmp_path / "generator.pt"
    torch.save(CycleGAN(**TINY_MODEL).G_AB.state_dict(), weights)
    with pytest.raises(ResumeError, match="not a training checkpoint"):
        check_resume_checkpoint(weights)


def test_offline_download_of_a_berkeley_set_is_one_line_and_exit_2(tmp_path, monkeypatch, caplog):
    from urllib.error import URLError

    import cyclegan.data.download as download

    def offline(*args, **kwargs):
        raise URLError("Name or service not known")

    monkeypatch.setattr(download, "urlopen", offline)
    cfg = compose_config(tmp_path, *TINY, "data=vangogh2photo", f"paths.data_dir={tmp_path / 'data'}",
                         "data.image_size=32", "data.load_size=36")
    with pytest.raises(SystemExit) as exit_info, caplog.at_level(logging.ERROR):
        with exit_on_user_error():
            train(cfg)
    assert exit_info.value.code == 2
    message = caplog.records[-1].getMessage()
    assert "vangogh2photo.zip" in message and "paths.data_dir" in message and "\n" not in message


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
