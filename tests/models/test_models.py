"""Tests for cyclegan.models: shapes, reference compatibility, weight loading, init, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import state_dict_listing

from cyclegan.models import (
    build_discriminator,
    build_generator,
    count_parameters,
    load_reference_weights,
)

REF = Path(__file__).resolve().parents[1] / "fixtures" / "reference"

# name in the reference listings -> (builder, kwargs, parameter count at ngf=ndf=64)
REFERENCE_NETS = {
    "G_resnet_9blocks": (build_generator, {"name": "resnet_9blocks"}, 11_378_179),
    "G_resnet_6blocks": (build_generator, {"name": "resnet_6blocks"}, 7_837_699),
    "G_unet_256": (build_generator, {"name": "unet_256"}, 54_409_603),
    "G_unet_128": (build_generator, {"name": "unet_128"}, 41_825_667),
    "D_basic": (build_discriminator, {"name": "basic"}, 2_764_737),
    "D_pixel": (build_discriminator, {"name": "pixel"}, 8_705),
}


def _listing(name: str) -> list[tuple[str, tuple[int, ...]]]:
    return state_dict_listing(REF / f"{name}.txt")


def _load_fixture(name: str) -> dict:
    return torch.load(REF / name, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------------
# reference layout: state-dict keys, shapes and parameter counts
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ref_name", list(REFERENCE_NETS))
def test_state_dict_matches_reference_listing(ref_name):
    builder, kwargs, n_params = REFERENCE_NETS[ref_name]
    net = builder(**kwargs)
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == _listing(ref_name)
    assert count_parameters(net) == n_params


@pytest.mark.parametrize(
    "fixture, build",
    [
        ("G_resnet_9blocks_ngf8.pt", lambda: build_generator("resnet_9blocks", ngf=8)),
        ("G_unet_256_ngf8.pt", lambda: build_generator("unet_256", ngf=8)),
        ("D_basic_ndf8.pt", lambda: build_discriminator("basic", ndf=8)),
    ],
)
def test_reference_equivalence(fixture, build):
    data = _load_fixture(fixture)
    net = load_reference_weights(build(), REF / fixture)
    for train in (False, True):  # instance norm has no running stats and there is no dropout
        net.train(train)
        with torch.no_grad():
            out = net(data["input"])
        assert out.shape == data["output"].shape
        assert (out - data["output"]).abs().max().item() < 1e-5


# ------------------------------------------------------------------------------------------
# load_reference_weights
# ------------------------------------------------------------------------------------------
def test_load_dataparallel_prefix_and_stale_instance_norm_stats(tmp_path):
    data = _load_fixture("D_basic_ndf8.pt")
    state = {f"module.{k}": v for k, v in data["state_dict"].items()}
    for idx in (3, 6, 9):  # the InstanceNorm layers; old PyTorch saved (meaningless) stats for them
        state[f"module.model.{idx}.running_mean"] = torch.zeros(1)
        state[f"module.model.{idx}.running_var"] = torch.ones(1)
        state[f"module.model.{idx}.num_batches_tracked"] = torch.tensor(0)
    path = tmp_path / "latest_net_D_A.pth"
    torch.save(state, path)
    for source in (path, str(path), state):
        net = load_reference_weights(build_discriminator("basic", ndf=8), source)
        with torch.no_grad():
            assert (net(data["input"]) - data["output"]).abs().max().item() < 1e-5


@pytest.mark.parametrize(
    "build, fixture, expected",
    [
        (lambda: build_generator("resnet", ngf=16), "G_resnet_9blocks_ngf8.pt", "wrong ngf"),
        (lambda: build_generator("resnet_6blocks", ngf=8), "G_resnet_9blocks_ngf8.pt", "wrong n_blocks"),
        (lambda: build_generator("resnet", ngf=8), "G_unet_256_ngf8.pt", "unet generator"),
        (lambda: build_generator("unet_128", ngf=8), "G_unet_256_ngf8.pt", "wrong depth"),
        (lambda: build_generator("resnet", ngf=8, dropout=True), "G_resnet_9blocks_ngf8.pt", "wrong dropout"),
        (lambda: build_generator("resnet", ngf=8, norm="batch"), "G_resnet_9blocks_ngf8.pt", "wrong norm"),
        (lambda: build_generator("resnet", ngf=8, out_channels=1), "G_resnet_9blocks_ngf8.pt", "out_channels"),
        (lambda: build_discriminator("patch", ndf=8, n_layers=2), "D_basic_ndf8.pt", "wrong n_layers"),
    ],
)
def test_load_refuses_mismatch_with_clear_message(build, fixture, expected):
    with pytest.raises(ValueError) as info:
        load_reference_weights(build(), REF / fixture)
    msg = str(info.value)
    assert "\n" not in msg
    assert fixture in msg and "likely cause" in msg and expected in msg
    assert "key '" in msg  # names the first offending key


def test_load_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "extra": _NotATensor()}, path)
    with pytest.raises(ValueError, match="weights_only"):
        load_reference_weights(build_discriminator("pixel", ndf=4), path)


class _NotATensor:
    pass


# ------------------------------------------------------------------------------------------
# shapes and size checks
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, kwargs, size",
    [
        ("resnet", {"ngf": 4, "n_blocks": 2}, (64, 64)),
        ("resnet", {"ngf": 4, "n_blocks": 0, "in_channels": 1, "out_channels": 2}, (32, 48)),
        ("resnet", {"ngf": 4, "n_blocks": 1, "norm": "batch", "dropout": True}, (8, 8)),
        ("unet", {"ngf": 4, "depth": 5}, (32, 32)),
        ("unet", {"ngf": 2, "depth": 6, "norm": "none", "dropout": True}, (64, 128)),
        ("unet_keras", {"ngf": 2}, (256, 256)),
    ],
)
def test_generator_output_shape(name, kwargs, size):
    net = build_generator(name, **kwargs)
    x = torch.rand(2, kwargs.get("in_channels", 3), *size) * 2 - 1
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, kwargs.get("out_channels", 3), *size)
    assert y.abs().max() <= 1


def test_size_multiple_attribute():
    assert build_generator("resnet", ngf=2, n_blocks=0).size_multiple == 4
    assert build_generator("unet", ngf=2, depth=5).size_multiple == 32
    assert build_generator("unet_128", ngf=2).size_multiple == 128
    assert build_generator("unet_keras", ngf=2).size_multiple == 256


@pytest.mark.parametrize(
    "name, kwargs, size, fragments",
    [
        ("resnet", {"ngf": 4, "n_blocks": 1}, (30, 32), ["30x32", "multiples of 4", "28 or 32"]),
        ("resnet", {"ngf": 4, "n_blocks": 1}, (4, 4), ["4x4", "at least 8"]),
        ("unet", {"ngf": 4, "depth": 5}, (48, 32), ["48x32", "multiples of 32", "32 or 64"]),
        ("unet", {"ngf": 4, "depth": 5}, (32, 16), ["32x16", "width 16 -> 32"]),
        ("unet_keras", {"ngf": 2}, (128, 128), ["multiples of 256"]),
    ],
)
def test_generator_rejects_bad_sizes(name, kwargs, size, fragments):
    net = build_generator(name, **kwargs)
    with pytest.raises(ValueError) as info:
        net(torch.zeros(1, 3, *size))
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    "name, kwargs, size, out",
    [
        ("basic", {"ndf": 4}, 64, 6),
        ("patch", {"ndf": 4, "n_layers": 1}, 64, 30),
        ("pixel", {"ndf": 4, "in_channels": 6}, 64, 64),
        ("keras", {"ndf": 4}, 256, 30),
    ],
)
def test_discriminator_output_shape(name, kwargs, size, out):
    net = build_discriminator(name, **kwargs)
    with torch.no_grad():
        y = net(torch.randn(2, kwargs.get("in_channels", 3), size, size))
    assert y.shape == (2, 1, out, out)


def test_keras_variants_parameter_counts():
    # The tutorial's Keras models minus its affine InstanceNorm gamma/beta (ours are non-affine).
    assert count_parameters(build_generator("unet_keras", init_type="normal")) == 54_404_099
    assert count_parameters(build_discriminator("keras")) == 2_763_777


# ------------------------------------------------------------------------------------------
# memory format / compile
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, kwargs", [("resnet", {"ngf": 4, "n_blocks": 1}), ("unet", {"ngf": 4, "depth": 5})])
def test_channels_last_and_compile(name, kwargs):
    net = build_generator(name, **kwargs).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
        compiled = torch.compile(net, backend="eager", fullgraph=True)  # no graph breaks
        assert torch.allclose(compiled(x), ref, atol=1e-6)
        net_cl = net.to(memory_format=torch.channels_last)
        out_cl = net_cl(x.to(memory_format=torch.channels_last))
        assert torch.allclose(out_cl, ref, atol=1e-5)
        with pytest.raises(ValueError, match="not supported"):
            torch.compile(net, backend="eager")(torch.randn(1, 3, 30, 30))


# ------------------------------------------------------------------------------------------
# initialization
# ------------------------------------------------------------------------------------------
def _big_conv(init_type, gain):
    net = build_discriminator("basic", ndf=64, init_type=init_type, init_gain=gain)
    return net, net.model[8]  # Conv2d(256 -> 512, k4): 2M weights


@pytest.mark.parametrize("gain", [0.02, 0.1])
def test_init_normal_statistics(gain):
    net, conv = _big_conv("normal", gain)
    w = conv.weight
    assert abs(w.mean().item()) < gain * 0.01
    assert w.std().item() == pytest.approx(gain, rel=0.01)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            assert torch.count_nonzero(m.bias) == 0


def test_init_xavier_kaiming_orthogonal_statistics():
    fan_in, fan_out = 256 * 16, 512 * 16
    _, conv = _big_conv("xavier", 0.5)
    assert conv.weight.std().item() == pytest.approx(0.5 * math.sqrt(2 / (fan_in + fan_out)), rel=0.01)
    _, conv = _big_conv("kaiming", 0.02)  # gain ignored, as in the reference
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.01)
    _, conv = _big_conv("orthogonal", 0.7)
    w = conv.weight.reshape(512, -1)
    assert torch.allclose(w @ w.T, 0.49 * torch.eye(512), atol=1e-4)


def test_init_batchnorm_weights():
    net = build_discriminator("pixel", ndf=1024, norm="batch", init_gain=0.1)
    bn = net.net[3]
    assert isinstance(bn, torch.nn.BatchNorm2d)
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.02)
    assert bn.weight.std().item() == pytest.approx(0.1, rel=0.1)
    assert torch.count_nonzero(bn.bias) == 0


# ------------------------------------------------------------------------------------------
# argument validation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, fragments",
    [
        (lambda: build_generator("unett"), ["generator 'unett'", "resnet", "unet_keras"]),
        (lambda: build_generator("resnet", norm="group"), ["norm 'group'", "instance, batch, none"]),
        (lambda: build_generator("resnet", init_type="he"), ["init_type 'he'", "orthogonal"]),
        (lambda: build_generator("resnet", init_gain=0), ["init_gain"]),
        (lambda: build_generator("resnet", n_blocks=-1), ["n_blocks=-1"]),
        (lambda: build_generator("unet", depth=1), ["depth=1"]),
        (lambda: build_generator("resnet", ngf=0), ["ngf=0"]),
        (lambda: build_generator("resnet_6blocks", n_blocks=12), ["fixes n_blocks=6"]),
        (lambda: build_generator("unet_128", depth=5), ["fixes depth=7"]),
        (lambda: build_discriminator("patchgan"), ["discriminator 'patchgan'", "basic", "pixel"]),
        (lambda: build_discriminator("basic", n_layers=4), ["fixes n_layers=3"]),
        (lambda: build_discriminator("patch", n_layers=0), ["n_layers=0"]),
    ],
)
def test_invalid_arguments(call, fragments):
    with pytest.raises(ValueError) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value)


def test_aliases_accept_default_or_matching_values():
    assert count_parameters(build_generator("resnet_6blocks", ngf=4)) == count_parameters(
        build_generator("resnet", ngf=4, n_blocks=6))
    assert count_parameters(build_generator("unet_128", ngf=2, depth=7)) == count_parameters(
        build_generator("unet", ngf=2, depth=7))
