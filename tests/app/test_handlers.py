"""Painting one upload and a batch: full size, the same pixels as cyclegan.translate, a zip, bad files named."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PIL import Image

from cyclegan.app.handlers import paint_batch, paint_upload
from cyclegan.app.painters import ckpt_specs, load_painters
from cyclegan.app.uploads import UploadError
from cyclegan.inference.translate import translate_image
from tests.conftest import make_ckpt, rand_img


@pytest.fixture(scope="module")
def painter(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    make_ckpt(ckpt)
    return load_painters(ckpt_specs([f"{ckpt}:AB"]))[0]


def test_one_upload_is_painted_at_full_size_as_translate_paints_it(tmp_path, painter):
    src = tmp_path / "odd size.jpg"
    rand_img(45, 70).save(src, quality=95)
    result = paint_upload(painter, src, tmp_path / "work", tile=32)  # 70 x 45 > 32: the tiled path
    painting = np.asarray(Image.open(result.painting_path))
    assert painting.shape == (45, 70, 3) and result.size == (70, 45)
    expected = np.asarray(translate_image(painter.model, Image.open(src), tile=32))
    np.testing.assert_array_equal(painting, expected)  # lossless PNG of translate's own result
    assert result.painting_path.name == "odd_size_tiny.ckpt_AB.png"
    assert result.painting_path.is_relative_to(tmp_path / "work") and result.input_path.is_relative_to(tmp_path / "work")
    assert result.summary().startswith("tiny.ckpt AB: painted 70 x 45 px in ")


def test_a_downscaled_upload_says_so(tmp_path, painter):
    src = tmp_path / "big.png"
    rand_img(100, 200).save(src)
    result = paint_upload(painter, src, tmp_path / "work", max_megapixels=0.005)
    assert Image.open(result.painting_path).size == (100, 50)
    assert "downscaled to 100 x 50" in result.summary()


def test_a_batch_is_zipped_and_bad_files_are_named(tmp_path, painter):
    names = []
    for i, (name, size) in enumerate([("a.jpg", (20, 30)), ("a.png", (20, 30)), ("b.bmp", (16, 40))]):
        rand_img(*size, seed=i).save(tmp_path / name)
        names.append(tmp_path / name)
    (tmp_path / "readme.txt").write_text("not a photo")
    result = paint_batch(painter, [*names, tmp_path / "readme.txt"], tmp_path / "work")
    with zipfile.ZipFile(result.zip_path) as zf:
        members = sorted(zf.namelist())
        sizes = {m: Image.open(zf.open(m)).size for m in members}
    # two uploads called "a" keep apart; every painting has its input's size
    assert members == ["a.png", "a_2.png", "b.png"]
    assert sizes == {"a.png": (30, 20), "a_2.png": (30, 20), "b.png": (40, 16)}
    assert len(result.skipped) == 1 and "readme.txt is not an image" in result.skipped[0]
    assert "painted 3 image(s)" in result.summary() and "1 left out" in result.summary()


def test_a_batch_with_nothing_to_paint_is_a_message(tmp_path, painter):
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(UploadError, match="no files uploaded"):
        paint_batch(painter, [], tmp_path / "work")
    with pytest.raises(UploadError, match="none of the uploaded files .*x.txt is not an image"):
        paint_batch(painter, [tmp_path / "x.txt"], tmp_path / "work")
    with pytest.raises(UploadError, match="paints up to 2 at a time"):
        paint_batch(painter, [tmp_path / "x.txt"] * 3, tmp_path / "work", max_files=2)
