"""A float TIFF with NaN or infinite pixels is not turned into a black-and-white image: it is skipped,
with one warning naming it, like any file that cannot be decoded."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from conftest import rand_img
from cyclegan.data import UnpairedDataModule
from cyclegan.common.imaging import ImageLoadError, load_image


def _float_tiff(path, fill=None):
    arr = np.random.default_rng(0).random((16, 16), dtype=np.float32)
    if fill is not None:
        arr[2:5, 3:6] = fill
    Image.fromarray(arr, "F").save(path)
    return path


@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_make_the_file_unreadable_naming_it(fill, tmp_path):
    path = _float_tiff(tmp_path / "scan.tif", fill)
    with pytest.raises(ImageLoadError, match=r"scan\.tif.*9 of 256 pixels .*NaN or infinite"):
        load_image(path)
    finite = load_image(_float_tiff(tmp_path / "fine.tif"))  # a finite float image is still read
    assert finite.mode == "RGB" and np.asarray(finite).std() > 0


def test_training_skips_it_with_one_warning(tmp_path, caplog):
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    _float_tiff(a / "0_nan.tif", np.nan)
    rand_img(16, 16).save(a / "1_ok.png")
    rand_img(16, 16, seed=1).save(b / "b.png")
    dm = UnpairedDataModule(source="folders", dir_a=str(a), dir_b=str(b), image_size=16, load_size=16,
                            num_workers=0, val_size=0)
    dataset = dm.domain_dataset("train", "A")
    with caplog.at_level(logging.WARNING):
        items = [dataset[i] for i in range(len(dataset))] + [dataset[0]]
    assert all(item["path"].endswith("1_ok.png") for item in items)  # never the NaN image
    warned = [r.getMessage() for r in caplog.records if "0_nan.tif" in r.getMessage()]
    assert len(warned) == 1 and "NaN or infinite" in warned[0]
