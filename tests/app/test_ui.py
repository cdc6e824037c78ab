"""The page's parts that need no browser (the browser test drives the page itself)."""

from __future__ import annotations


def test_sample_photos_are_the_sample_datasets_photos():
    from cyclegan.app.ui import SAMPLE_COUNT, sample_photos
    from cyclegan.data.sources import sample_dir

    photos = sample_photos()
    assert len(photos) == SAMPLE_COUNT and all(p.startswith(str(sample_dir() / "B")) for p in photos)
