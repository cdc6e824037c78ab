"""The painters that ship with the package (cyclegan/inference/pretrained/): each one is small, stored in
half precision, says in its card which way it translates, and paints."""

from __future__ import annotations

import pytest
import torch

import cyclegan.inference.pretrained as pretrained
from cyclegan.inference.checkpoint import load_generator

BUNDLED = pretrained.available()


def test_the_painters_the_docs_name_are_bundled():
    assert {"photo2monet_cpu", "photo2vangogh"} <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_painter_is_small_half_precision_and_carded(name):
    path = pretrained.FOLDER / f"{name}.pt"
    assert path.stat().st_size <= 5 * 2**20
    stored = torch.load(path, weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    card = pretrained.card(name)
    assert card.startswith(f"# {name}") and "KID" in card and "## Limits" in card
    assert pretrained.card_direction(f"pretrained:{name}") in ("AB", "BA")


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_painter_changes_an_image_and_stays_in_range(name):
    g = load_generator(f"pretrained:{name}")
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() <= 1
    assert (y - x).abs().mean() > 1e-3  # not the identity
