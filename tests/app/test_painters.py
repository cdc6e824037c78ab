"""Which painters and chains the app offers (from names, data-driven) and how they are loaded."""

from __future__ import annotations

import pytest
import torch

from cyclegan.app.painters import (
    PainterSpec, all_specs, bundled_specs, chain_spec, ckpt_specs, domains_of, find_chains, load_painters,
)
from cyclegan.common.errors import UserError
from cyclegan.inference import pretrained
from cyclegan.inference.chain import Chain
from tests.conftest import make_ckpt


def spec(name, source, target):
    return PainterSpec(name, (f"pretrained:{name}",), source, target)


def test_domains_come_from_the_name_and_direction():
    assert domains_of("photo2monet_cpu") == ("photo", "monet")
    assert domains_of("monet2photo", "BA") == ("photo", "monet")
    assert domains_of("my_model") == (None, None)


def test_chains_join_a_painter_into_a_domain_with_one_out_of_it():
    m2p, p2v, p2m = spec("monet2photo", "monet", "photo"), spec("photo2vangogh", "photo", "vangogh"), \
        spec("photo2monet", "photo", "monet")
    chains = {c.name: c for c in find_chains([m2p, p2v, p2m])}
    # monet -> photo -> vangogh; photo -> monet -> photo and monet -> photo -> monet are round trips
    assert list(chains) == ["monet2photo → photo2vangogh"]
    chain = chains["monet2photo → photo2vangogh"]
    assert chain.specs == ("pretrained:monet2photo", "pretrained:photo2vangogh")
    assert (chain.source, chain.target) == ("monet", "vangogh")
    assert "monet → photo → vangogh" in chain.description
    assert find_chains([p2v, spec("anything", None, None)]) == []


def test_bundled_painters_are_listed_with_their_card():
    names = [s.name for s in bundled_specs()]
    # every bundled painter once, the photo painters first (the page preselects the first one)
    assert sorted(names) == pretrained.available() and names[0] == "photo2monet_cpu"
    sources = [s.source for s in bundled_specs()]
    assert sources == sorted(sources, key=lambda source: source != "photo") and "monet" in sources
    monet = next(s for s in bundled_specs() if s.name == "photo2monet_cpu")
    assert (monet.source, monet.target) == ("photo", "monet")
    assert "Monet" in monet.description and not monet.description.startswith("photo2monet_cpu")


def test_ckpt_painters_come_first_then_bundled_then_chains(tmp_path):
    ckpt = tmp_path / "monet2photo.ckpt"
    specs = all_specs([f"{ckpt}:AB", "pretrained:photo2monet_cpu"], [f"{ckpt}:BA,{ckpt}:AB"])
    names = [s.name for s in specs]
    # --ckpt painters first, the bundled one once, the data-driven chain (monet -> photo -> monet is a
    # round trip, so none), then --chain
    assert names[:2] == ["monet2photo.ckpt AB", "photo2monet_cpu"] and names[-1] == "monet2photo.ckpt BA → monet2photo.ckpt AB"
    assert "monet2photo.ckpt AB → photo2vangogh" in names  # the bundled Van Gogh painter makes a data-driven chain
    assert specs[0].specs == (f"{ckpt}:AB",) and (specs[0].source, specs[0].target) == ("monet", "photo")


def test_a_chain_needs_two_painters():
    with pytest.raises(UserError, match="two or more"):
        chain_spec("a.ckpt:AB")
    assert chain_spec("a.ckpt:AB, b.ckpt:BA").specs == ("a.ckpt:AB", "b.ckpt:BA")


def test_load_reads_a_file_once_and_builds_chains(tmp_path):
    ckpt = tmp_path / "tiny.ckpt"
    g_ab, g_ba = make_ckpt(ckpt)
    specs = ckpt_specs([f"{ckpt}:AB", f"{ckpt}:BA"]) + [chain_spec(f"{ckpt}:AB,{ckpt}:BA")]
    ab, ba, chain = load_painters(specs)
    assert isinstance(chain.model, Chain) and chain.model.generators[0] is ab.model  # loaded once
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ab.model(x), g_ab(x))
        torch.testing.assert_close(chain.model(x), g_ba(g_ab(x)))


def test_a_checkpoint_that_fails_to_load_is_named(tmp_path):
    bad = tmp_path / "broken.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="broken.ckpt"):
        load_painters(ckpt_specs([str(bad)]))
