"""Generators bundled with the package load by name in every inference entry point."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import cyclegan.inference.pretrained as pretrained
from conftest import make_ckpt
from cyclegan.evaluation.networks import load_for_evaluation
from cyclegan.inference import compare, translate
from cyclegan.inference.chain import load_chain
from cyclegan.inference.checkpoint import CheckpointError, load_generator
from cyclegan.inference.export import export_generator


@pytest.fixture
def bundle_folder(tmp_path, monkeypatch):
    """A bundle folder holding one tiny half-precision generator, ``pretrained:tiny``."""
    folder = tmp_path / "bundled"
    ckpt = tmp_path / "run.ckpt"
    make_ckpt(ckpt)
    export_generator(load_generator(ckpt, "BA"), folder / "tiny.pt", "half")
    (folder / "tiny.md").write_text("# tiny: a test painter\n\nKID x1000 1.0\n")
    monkeypatch.setattr(pretrained, "FOLDER", folder)
    return ckpt


@pytest.fixture
def photos(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    Image.new("RGB", (24, 20), (200, 120, 40)).save(src / "p.png")
    return src


def test_a_bundled_generator_loads_by_name_with_its_weights_in_half_precision(bundle_folder):
    stored = torch.load(pretrained.FOLDER / "tiny.pt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    g = load_generator("pretrained:tiny")
    reference = load_generator(bundle_folder, "BA")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(g(x), reference(x), atol=2e-3, rtol=0)  # float16 weights, float32 network
    assert load_chain(["pretrained:tiny:BA"]).generators[0].state_dict().keys() == g.state_dict().keys()
    assert pretrained.available() == ["tiny"] and pretrained.card("tiny").startswith("# tiny")


@pytest.mark.parametrize("spec", ["pretrained:monet9000", "pretrained:", "pretrained:../tiny"])
def test_an_unknown_name_lists_the_bundled_ones_in_one_line(bundle_folder, spec):
    with pytest.raises(CheckpointError, match="the bundled ones are pretrained:tiny") as e:
        load_generator(spec)
    assert "\n" not in str(e.value)


def test_translate_takes_the_name_and_lists_the_bundle(bundle_folder, photos, tmp_path, capsys):
    assert translate.main(["--ckpt", "pretrained:tiny", "--input", str(photos), "--output", str(tmp_path / "out"),
                           "--quiet"]) == 0
    assert Image.open(tmp_path / "out" / "p.png").size == (24, 20)
    capsys.readouterr()
    assert translate.main(["--list-pretrained"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("pretrained:tiny  tiny: a test painter") and "tiny.md" in listing
    assert translate.main(["--input", str(photos), "--output", str(tmp_path / "out")]) == 2
    assert "--ckpt is required" in capsys.readouterr().err


def test_compare_takes_the_name_and_labels_the_row_with_it(bundle_folder, photos, tmp_path):
    assert compare.checkpoint_label("pretrained:tiny", "AB") == "pretrained:tiny"
    out = tmp_path / "grid.png"
    assert compare.main(["--ckpt", "pretrained:tiny", "--input", str(photos), "--output", str(out), "--size", "16"]) == 0
    assert Image.open(out).size[0] > 16


def test_evaluate_takes_a_bundled_generator_in_the_direction_its_file_or_card_gives(bundle_folder):
    nets, info = load_for_evaluation("pretrained:tiny")  # exported from G_BA: the file says BA
    assert list(nets) == ["BA"] and info["kind"] == "export"
    assert nets["BA"].discriminator is None and nets["BA"].reverse is None
    stored = torch.load(pretrained.FOLDER / "tiny.pt", weights_only=True)
    del stored["direction"]  # a bundle exported before exports said their direction: the card must
    torch.save(stored, pretrained.FOLDER / "tiny.pt")
    with pytest.raises(CheckpointError, match="pass direction=AB") as e:  # the card names no direction
        load_for_evaluation("pretrained:tiny")
    assert "\n" not in str(e.value)
    card = pretrained.FOLDER / "tiny.md"
    card.write_text(card.read_text() + "\n- Direction: `BA` (photos -> paintings)\n")
    assert list(load_for_evaluation("pretrained:tiny")[0]) == ["BA"]


BUNDLED = pretrained.available()  # what this installation ships


@pytest.mark.parametrize("name", BUNDLED)
def test_the_shipped_painter_loads_is_small_and_changes_the_photo(name):
    path = pretrained.FOLDER / f"{name}.pt"
    assert path.stat().st_size <= 5 * 2**20
    g = load_generator(f"pretrained:{name}")
    assert type(g).__name__ == "ResnetGenerator"
    assert g.state_dict()["model.1.weight"].shape == (32, 3, 7, 7)  # ngf 32, as its card says
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert (y - x).abs().mean() > 0.01  # a painter, not the identity
    card = pretrained.card(name)
    assert "KID" in card and "licen" in card.lower()
