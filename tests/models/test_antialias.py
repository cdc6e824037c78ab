"""The CUT options of the ResNet generator and the PatchGAN (cyclegan/models/networks/antialias.py):
state-dict layout and outputs equal to the official CUT code's, and its encoder-feature pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import state_dict_listing

from cyclegan.models import build_discriminator, build_generator, network_spec
from cyclegan.models.networks.antialias import BlurDownsample, BlurUpsample, binomial_filter

CUT = Path(__file__).resolve().parents[1] / "fixtures" / "cut"
NCE_LAYERS = [0, 4, 8, 12, 16]  # the official nce_layers


def _official(name: str) -> dict:
    return torch.load(CUT / name, map_location="cpu", weights_only=True)


def _cut_generator(opt: dict):
    """Our generator built from the official options (no_antialias False -> antialias True, ...)."""
    return build_generator(opt["netG"], ngf=opt["ngf"], norm=opt["normG"], dropout=not opt["no_dropout"],
                           antialias=not opt["no_antialias"], antialias_up=not opt["no_antialias_up"],
                           init_type=opt["init_type"], init_gain=opt["init_gain"])


def test_state_dict_matches_the_official_cut_generator_at_ngf_64():
    G = build_generator("resnet_9blocks", antialias=True)
    assert [(k, tuple(v.shape)) for k, v in G.state_dict().items()] == state_dict_listing(CUT / "G_cut_resnet_9blocks.txt")
    # the blur filters are fixed buffers: saved (as the official code does), never trained
    assert "model.7.filt" not in dict(G.named_parameters())


@pytest.mark.parametrize("fixture", ["cut_ngf8.pt", "fastcut_ngf8.pt"])
def test_official_weights_load_strictly_and_give_the_official_output_and_features(fixture):
    ref = _official(fixture)
    G = _cut_generator(ref["opt"])
    G.load_state_dict(ref["G"], strict=True)
    with torch.no_grad():
        torch.testing.assert_close(G(ref["real_A"]), ref["G_out"], rtol=1e-5, atol=1e-6)
        feats = G.encode(ref["real_A"], [int(i) for i in ref["opt"]["nce_layers"].split(",")])
    assert len(feats) == len(ref["feats_A"]) == 5
    for ours, theirs in zip(feats, ref["feats_A"]):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_the_official_cut_discriminator_loads_strictly():
    ref = _official("cut_ngf8.pt")
    opt = ref["opt"]
    D = build_discriminator(opt["netD"], ndf=opt["ndf"], n_layers=opt["n_layers_D"], norm=opt["normD"],
                            antialias=not opt["no_antialias"])
    D.load_state_dict(ref["D"], strict=True)
    assert D(ref["real_A"]).shape == (2, 1, 6, 6)  # 64 px: three blurred halvings, then two 4x4 convs


def test_encode_stops_after_the_last_requested_layer_and_checks_indices():
    G = build_generator("resnet", ngf=4, n_blocks=2, antialias=True).eval()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    seen = []
    hook = G.model[-1].register_forward_hook(lambda *args: seen.append(True))
    feats = G.encode(x, [4, 0])
    hook.remove()
    assert [f.shape[1] for f in feats] == [3, 8] and not seen  # in layer order; the decoder never ran
    with pytest.raises(ValueError, match="must be indices in"):
        G.encode(x, [len(G.model)])


def test_blur_resampling_halves_and_doubles_and_keeps_a_flat_image_flat():
    assert binomial_filter(3).mul(16).tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    flat = torch.full((1, 2, 8, 6), 0.3)
    down, up = BlurDownsample(2)(flat), BlurUpsample(2)(flat)
    assert down.shape == (1, 2, 4, 3) and up.shape == (1, 2, 16, 12)
    torch.testing.assert_close(down, torch.full_like(down, 0.3))
    torch.testing.assert_close(up, torch.full_like(up, 0.3))


def test_antialias_is_part_of_the_spec_and_rebuilds():
    G = build_generator("resnet", ngf=4, n_blocks=1, antialias=True, antialias_up=False)
    spec = network_spec(G)
    assert spec == {"name": "resnet", "options": {"ngf": 4, "n_blocks": 1, "antialias": True, "antialias_up": False}}
    rebuilt = build_generator(spec["name"], **spec["options"])
    rebuilt.load_state_dict(G.state_dict(), strict=True)
    # blurred downsampling, the reference's transposed-conv upsampling (CUT's no_antialias_up)
    assert isinstance(G.model[7], BlurDownsample) and isinstance(G.model[-6], torch.nn.ConvTranspose2d)


def test_antialiased_upsampling_and_resize_exclude_each_other():
    with pytest.raises(ValueError, match="exclude each other"):
        build_generator("resnet", ngf=2, antialias=True, upsample="resize")
    with pytest.raises(ValueError, match="antialias=True is an option of the patch discriminator, not of 'pixel'"):
        build_discriminator("pixel", antialias=True)
