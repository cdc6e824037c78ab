"""Fixtures of the inference tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture()
def photos(tmp_path):
    """A folder holding one 16x16 photo, ``p.png``."""
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / "p.png")
    return folder
