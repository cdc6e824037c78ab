"""Uploaded files -> the RGB image painted: bad files are one-line messages, modes and sizes are noted."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cyclegan.app.uploads import REFUSED_MEGAPIXELS, UploadError, read_upload
from tests.conftest import rand_img


def test_a_plain_rgb_photo_is_taken_as_it_is(tmp_path):
    path = tmp_path / "photo.png"
    rand_img(30, 50).save(path)
    upload = read_upload(path)
    assert upload.image.mode == "RGB" and upload.image.size == (50, 30) and upload.notes == []
    np.testing.assert_array_equal(np.asarray(upload.image), np.asarray(Image.open(path)))


def test_a_file_that_is_not_an_image_is_refused_by_name(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(UploadError, match=r"notes.txt is not an image .*upload a JPEG, PNG"):
        read_upload(path)


def test_a_truncated_image_is_refused_by_name(tmp_path):
    path = tmp_path / "cut.png"
    rand_img(64, 64).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UploadError, match=r"cut.png.*upload a complete"):
        read_upload(path)


@pytest.mark.parametrize("mode, note", [("L", "grayscale"), ("RGBA", "transparent"), ("CMYK", "CMYK"),
                                        ("LA", "transparent")])
def test_other_modes_become_rgb_with_a_note(tmp_path, mode, note):
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    rand_img(20, 24).convert(mode).save(path)
    upload = read_upload(path)
    assert upload.image.mode == "RGB" and upload.image.size == (24, 20)
    assert any(note in n for n in upload.notes), upload.notes


def test_transparent_pixels_are_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(path)
    assert np.asarray(read_upload(path).image).min() == 255


def test_an_image_over_the_limit_is_downscaled_keeping_its_aspect(tmp_path):
    path = tmp_path / "big.jpg"
    rand_img(300, 400).save(path)
    upload = read_upload(path, max_megapixels=0.03)  # 30,000 px: 400 x 300 -> 200 x 150
    assert upload.image.size == (200, 150) and upload.original_size == (400, 300)
    assert any("over the 0.03-megapixel limit: downscaled to 200 x 150" in n for n in upload.notes)


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height (no pixel data): enough for the size check."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(12_000, 10_000), (20_000, 20_000)])  # PIL warns / refuses to open
def test_a_huge_image_is_refused_before_decoding(tmp_path, width, height):
    path = tmp_path / "huge.png"
    _png_header_only(path, width, height)
    with pytest.raises(UploadError, match=rf"huge.png.*too large.*{REFUSED_MEGAPIXELS:g}"):
        read_upload(path)
