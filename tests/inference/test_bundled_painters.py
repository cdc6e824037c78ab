"""The painters that ship with the package (cyclegan/inference/pretrained/): each one is small, stored in
half precision, says in its card which way it translates, and paints."""

from __future__ import annotations

import pytest
import torch

from PIL import Image

import cyclegan.inference.pretrained as pretrained
from cyclegan.app.painters import bundled_specs, find_chains
from cyclegan.inference import translate
from cyclegan.inference.checkpoint import load_generator

BUNDLED = pretrained.available()


def test_the_painters_the_docs_name_are_bundled():
    assert {"photo2monet_cpu", "photo2vangogh", "monet2photo"} <= set(BUNDLED)


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


def test_the_bundled_painters_chain_monet_to_photo_to_van_gogh(tmp_path):
    # The README's chain, offline, from the bundled files alone: two Monets of odd sizes in, two Van Goghs out.
    monets = tmp_path / "monets"
    monets.mkdir()
    Image.new("RGB", (40, 28), (90, 120, 170)).save(monets / "water_lilies.jpg")
    Image.new("RGB", (33, 33), (200, 150, 60)).save(monets / "haystack.png")
    out = tmp_path / "vangoghs"
    assert translate.main(["--ckpt", "pretrained:monet2photo", "--ckpt", "pretrained:photo2vangogh",
                           "--input", str(monets), "--output", str(out), "--quiet"]) == 0
    assert Image.open(out / "water_lilies.jpg").size == (40, 28) and Image.open(out / "haystack.png").size == (33, 33)
    # the app offers the same chain from the bundle, and not the round trip Monet -> photo -> Monet
    chains = {c.name: c for c in find_chains(bundled_specs())}
    chain = chains["monet2photo → photo2vangogh"]
    assert chain.specs == ("pretrained:monet2photo", "pretrained:photo2vangogh")
    assert (chain.source, chain.target) == ("monet", "vangogh")
    assert "monet2photo → photo2monet_cpu" not in chains
