"""The data.source registry: every layout is a class plus its line in LAYOUTS, the datamodule has no
branch per layout, so a new one works without touching it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import HydraException
from PIL import Image

from cyclegan.config.checks import validate_config
from cyclegan.data import DatasetNotFoundError, UnpairedDataModule
from cyclegan.data.layouts import LAYOUTS, NamedFoldersLayout
from conftest import compose_config, write_image


def images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (20, 20), (30 * i, 100, 50)).save(folder / f"{i}.png")


def test_a_new_layout_is_one_registry_line(tmp_path, monkeypatch):
    monkeypatch.setitem(LAYOUTS, "cezanne", NamedFoldersLayout("cezanne_png", "photo_png"))
    images(tmp_path / "cz" / "cezanne_png", 6)
    images(tmp_path / "cz" / "photo_png", 8)
    dm = UnpairedDataModule(name="cz", source="cezanne", root=str(tmp_path / "cz"), image_size=16, load_size=16,
                            num_workers=0, pin_memory=False, persistent_workers=False, val_size=2)
    dm.setup("fit")
    assert (len(dm.files("train", "A")), len(dm.files("train", "B")), len(dm.files("test", "B"))) == (4, 6, 2)
    assert all("cezanne_png" in p for p in dm.files("train", "A"))
    # the config check knows it too (data.source is checked against the registry)
    cfg = compose_config(tmp_path / "run", "data=folders", "data.source=cezanne", f"data.root={tmp_path / 'cz'}")
    validate_config(cfg)
    with pytest.raises(DatasetNotFoundError, match="looked for cezanne_png/ and photo_png/"):
        UnpairedDataModule(name="cz", source="cezanne", root=str(tmp_path / "nowhere")).setup("fit")

    monkeypatch.delitem(LAYOUTS, "cezanne")  # unregistered: refused by the config check
    with pytest.raises(Exception, match="data.source"):
        validate_config(cfg)


def test_an_unknown_source_names_every_registered_one():
    with pytest.raises(ValueError) as e:
        UnpairedDataModule(source="flickr", root="x")
    assert all(name in str(e.value) for name in LAYOUTS)


@pytest.mark.parametrize("source, needs", [("folders", "data.dir_a and data.dir_b"), ("berkeley", "data.root"),
                                           ("kaggle", "data.root"), ("tfrecord", "data.root")])
def test_what_each_layout_requires_is_said_at_construction(source, needs):
    with pytest.raises(ValueError, match=f"data.source={source} needs {needs}"):
        UnpairedDataModule(source=source)


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
