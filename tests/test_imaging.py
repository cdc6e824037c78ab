"""cyclegan.imaging: one image rule for training, translation and evaluation; listing; atomic writes."""

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
from cyclegan.devices import DeviceError, resolve_device
from cyclegan.evaluation.features import compute_features
from cyclegan.files import atomic_write
from cyclegan.imaging import load_image, walk_images
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
    os.symlink(outside, root / "linked")  # a linked folder is followed
    with caplog.at_level(logging.WARNING):
        found = walk_images(root)
    rel = [os.path.relpath(p, root) for p in found]
    # real folders are walked before link targets: b.jpg keeps its real path, not the link "again"
    assert rel == ["a.png", os.path.join("linked", "c.webp"), os.path.join("sub", "b.jpg")]
    assert sum("already scanned" in r.getMessage() for r in caplog.records) == 1
    assert walk_images(root, exclude=root / "linked") == [found[0], found[2]]


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
