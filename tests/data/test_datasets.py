"""Datasets and the datamodule on bad data: unreadable, empty, tiny or odd-mode images are skipped,
upscaled or explained in one line naming the folder (docs/ROBUSTNESS.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_MODEL, compose_config, folders_dm, tiny_fit, tiny_with, write_image
from cyclegan.data import DatasetNotFoundError
from cyclegan.common.errors import exit_on_user_error
from cyclegan.gan.module import CycleGAN
from cyclegan.common.imaging import ImageLoadError
from cyclegan.training.run import train


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
    from cyclegan.evaluation.run import evaluate

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
