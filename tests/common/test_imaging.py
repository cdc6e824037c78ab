"""cyclegan.common.imaging: one image rule for training, translation and evaluation; listing; atomic writes."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cyclegan.data.datasets import DomainDataset
from cyclegan.data.sources import FileImageList
from cyclegan.common.devices import DeviceError, resolve_device
from cyclegan.evaluation.features import compute_features
from cyclegan.common.files import atomic_write
from conftest import write_image
from cyclegan.common.imaging import ImageLoadError, load_image, walk_images
from cyclegan.inference.translate import translate_folder


class Identity(nn.Module):
    size_multiple = 1

    def forward(self, x):
        return x


class Recorder(nn.Module):
    """A stand-in feature extractor that keeps the uint8 images it is given."""

    num_features = 1

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.zeros(x.shape[0], 1)


def test_a_transparent_pixel_is_the_same_white_in_training_translation_and_evaluation(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black ...
    rgba[0, 0] = (200, 0, 0, 255)  # ... but one opaque red pixel
    Image.fromarray(rgba, "RGBA").save(src / "t.png")

    train = DomainDataset(FileImageList.from_folder(src), transform=None)[0]["image"]  # [-1, 1]
    training = ((train + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    translate_folder(Identity(), src, tmp_path / "out", num_workers=0, progress=False, device="cpu")
    translation = np.asarray(Image.open(tmp_path / "out" / "t.png").convert("RGB"))
    recorder = Recorder()
    compute_features(src, recorder)
    evaluation = recorder.seen[0][0].permute(1, 2, 0).numpy()

    for pixels in (training, translation, evaluation):
        assert tuple(pixels[3, 3]) == (255, 255, 255)  # transparent -> white, as training always did
        assert tuple(pixels[0, 0]) == (200, 0, 0)
    assert np.array_equal(training, translation) and np.array_equal(training, evaluation)
    assert np.array_equal(np.asarray(load_image(src / "t.png")), training)


def test_walk_images_follows_links_once_and_survives_link_loops(tmp_path, caplog):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (2, 2)).save(root / "a.png")
    Image.new("RGB", (2, 2)).save(root / "sub" / "b.jpg")
    (root / "sub" / "notes.txt").write_text("x")
    os.symlink(root, root / "sub" / "loop")  # a link to a parent
    os.symlink(root / "sub", root / "again")  # a second way to the same folder
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (2, 2)).save(outside / "c.webp")
    os.symlink(outside, root / "linked")  # a folder outside: followed only when asked (tests/data/test_links.py)
    with caplog.at_level(logging.WARNING):
        found = walk_images(root, follow_links=True)
    rel = [os.path.relpath(p, root) for p in found]
    # real folders are walked before link targets: b.jpg keeps its real path, not the link "again"
    assert rel == ["a.png", os.path.join("linked", "c.webp"), os.path.join("sub", "b.jpg")]
    assert sum("already scanned" in r.getMessage() for r in caplog.records) == 1
    assert walk_images(root, exclude=root / "linked", follow_links=True) == [found[0], found[2]]
    assert walk_images(root) == [found[0], found[2]]


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["x.txt"]
    with atomic_write(target, fsync=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["x.txt"]


def test_resolve_device():
    assert resolve_device(None).type in ("cpu", "cuda") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="--device='gpu' is not a device"):
        resolve_device("gpu", key="--device")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")


def test_exif_rotation_is_honoured(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    p = tmp_path / "r.jpg"
    Image.new("RGB", (40, 20)).save(p, exif=exif)
    assert load_image(p).size == (20, 40)


def test_huge_images_are_reduced_on_read_and_bombs_refused(tmp_path, monkeypatch):
    png = write_image(tmp_path / "huge.png", size=(2000, 1500))
    im = load_image(png, draft_size=100)
    assert im.size == (134, 100)  # box-reduced by 15 (ceil) right after decoding: both sides stay >= 100
    jpg = write_image(tmp_path / "huge.jpg", size=(2000, 1500))
    assert min(load_image(jpg, draft_size=100).size) >= 100 and load_image(jpg, draft_size=100).size[0] < 2000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # PIL refuses > 2x this: a decompression bomb
    with pytest.raises(ImageLoadError, match="huge.png"):
        load_image(png, draft_size=100)
