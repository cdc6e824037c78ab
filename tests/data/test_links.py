"""A link inside a domain's folder never brings in another folder's images (``A/up -> ..`` would
bring in domain B and the test splits), unless ``data.follow_links`` asks for it; the warning says
what was left out and why."""

from __future__ import annotations

import logging
import os

import pytest

from conftest import rand_img
from cyclegan.data import UnpairedDataModule
from cyclegan.data.sources import scan_images
from cyclegan.common.imaging import walk_images


@pytest.fixture()
def dataset(tmp_path):
    """A Berkeley-style dataset whose trainA holds a link to its parent (the dataset root)."""
    root = tmp_path / "horse2zebra"
    for split, names in {"trainA": ["a0", "a1"], "trainB": ["b0", "b1"], "testA": ["ta"], "testB": ["tb"]}.items():
        (root / split).mkdir(parents=True)
        for i, name in enumerate(names):
            rand_img(32, 32, seed=i).save(root / split / f"{name}.png")
    (root / "trainA" / "up").symlink_to("..")
    return root


def _names(paths):
    return sorted(os.path.basename(p) for p in paths)


def test_a_link_to_the_parent_folder_is_left_out_and_the_warning_says_so(dataset, caplog):
    with caplog.at_level(logging.WARNING):
        found = scan_images(dataset / "trainA")
    assert _names(found) == ["a0.png", "a1.png"]  # not b0, b1, ta, tb through trainA/up
    said = [r.getMessage() for r in caplog.records]
    outside = [m for m in said if "outside" in m]
    assert len(outside) == 1 and f"{dataset / 'trainA' / 'up'} -> {dataset}" in outside[0]
    assert "data.follow_links=true" in outside[0]
    assert not any("already scanned" in m for m in said)  # no claim that only a loop was cut


def test_the_datamodule_keeps_each_domain_to_its_folder_unless_asked(dataset):
    dm = UnpairedDataModule(name="horse2zebra", source="berkeley", root=str(dataset), image_size=16, load_size=16,
                            num_workers=0, val_size=1)
    assert _names(dm.files("train", "A")) == ["a0.png", "a1.png"]
    followed = UnpairedDataModule(name="horse2zebra", source="berkeley", root=str(dataset), image_size=16,
                                  load_size=16, num_workers=0, val_size=1, follow_links=True)
    assert {"b0.png", "ta.png", "tb.png"} <= set(_names(followed.files("train", "A")))  # what the option means


def test_links_that_stay_inside_the_folder_and_links_to_single_images_still_count(tmp_path):
    domain, elsewhere = tmp_path / "A", tmp_path / "elsewhere"
    (domain / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    rand_img(8, 8).save(domain / "sub" / "x.png")
    rand_img(8, 8).save(elsewhere / "e.png")
    (domain / "alias").symlink_to("sub")  # the same folder twice: listed once
    (domain / "e.png").symlink_to(elsewhere / "e.png")  # one image named on purpose
    (domain / "more").symlink_to(elsewhere)  # a folder outside: left out
    assert _names(walk_images(domain)) == ["e.png", "x.png"]
    assert _names(walk_images(domain, follow_links=True)) == ["e.png", "x.png"]  # e.png is one file, seen once
