"""Generator export (state dict with metadata, TorchScript, ONNX) and loading it back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cyclegan.models import build_generator
from cyclegan.inference.checkpoint import CheckpointError, build_from_spec, load_exported, load_generator
from cyclegan.inference.export import export_generator, export_onnx, export_state_dict, export_torchscript
from cyclegan.inference.chain import Chain
from cyclegan.inference.tiling import translate_tensor
from cyclegan.inference.translate import main


def tiny(name="resnet", seed=0, **kw):
    kw = kw or {"ngf": 4, "n_blocks": 1}
    torch.manual_seed(seed)
    net = build_generator(name, **kw)
    return build_from_spec(name, kw, net.state_dict())  # as load_generator returns it (eval, spec attached)


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(123)
    return torch.rand(2, 3, 20, 28) * 2 - 1  # not the size used while tracing/exporting


def _out(g, x):
    with torch.no_grad():
        return g(x)


def test_state_dict_export_roundtrip(tmp_path, x):
    g = tiny()
    p = export_state_dict(g, tmp_path / "g.pt")
    obj = torch.load(p, weights_only=True)
    assert obj["format"] == "cyclegan-generator" and obj["version"] == 1
    assert obj["gen"] == "resnet" and obj["size_multiple"] == 4
    assert {k: obj["gen_kwargs"][k] for k in ("ngf", "n_blocks")} == {"ngf": 4, "n_blocks": 1}
    for h in (load_exported(p), load_generator(p), load_generator(p, direction="BA")):
        assert not h.training and h.size_multiple == 4
        assert torch.equal(_out(h, x), _out(g, x))


def test_state_dict_export_needs_architecture(tmp_path):
    built = build_generator("resnet", ngf=4, n_blocks=1)  # remembers how it was built
    assert load_exported(export_state_dict(built, tmp_path / "built.pt")).size_multiple == 4
    foreign = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.Tanh())  # not one of ours
    with pytest.raises(CheckpointError, match="architecture"):
        export_state_dict(foreign, tmp_path / "g.pt")
    bare = build_generator("resnet", ngf=4, n_blocks=1)
    export_state_dict(bare, tmp_path / "g.pt", gen="resnet", gen_kwargs={"ngf": 4, "n_blocks": 1})
    with pytest.raises(CheckpointError, match="ts' or 'onnx"):
        export_state_dict(Chain([tiny(), tiny(seed=1)]), tmp_path / "c.pt")


def test_torchscript_roundtrip(tmp_path, x):
    g = tiny("unet", ngf=4, depth=3)
    p = export_torchscript(g, tmp_path / "g.ts")
    h = load_exported(p, allow_torchscript=True)
    assert h.size_multiple == 8
    xu = torch.rand(3, 3, 24, 40) * 2 - 1
    torch.testing.assert_close(_out(h, xu), _out(g, xu), atol=1e-6, rtol=1e-5)
    # load_generator recognises TorchScript too, and translate pads any size for it
    assert translate_tensor(load_generator(p, allow_torchscript=True), torch.rand(1, 3, 13, 30) * 2 - 1).shape == (1, 3, 13, 30)


def test_torchscript_chain(tmp_path, x):
    chain = Chain([tiny(seed=1), tiny(seed=2)])
    h = load_exported(export_generator(chain, tmp_path / "chain.ts", "torchscript"), allow_torchscript=True)
    torch.testing.assert_close(_out(h, x), _out(chain, x), atol=1e-6, rtol=1e-5)


def test_onnx_export(tmp_path, x):
    onnx = pytest.importorskip("onnx")
    g = tiny()
    p = export_onnx(g, tmp_path / "g.onnx")
    model = onnx.load(str(p))
    onnx.checker.check_model(model)
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input]
    assert len(dims) == 1 and dims[0][1] == 3 and all(isinstance(d, str) for d in (dims[0][0], *dims[0][2:]))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["cyclegan"])["size_multiple"] == 4
    try:
        import onnxruntime as ort

        run = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run
    except ImportError:  # numerics via onnx's reference evaluator instead (slow, fine for a tiny net)
        from onnx.reference import ReferenceEvaluator

        run = ReferenceEvaluator(str(p)).run
    y = run(None, {"image": x.numpy()})[0]
    np.testing.assert_allclose(y, _out(g, x).numpy(), atol=1e-5)


def test_cli_export(tmp_path, x):
    torch.manual_seed(0)
    kw = {"ngf": 4, "n_blocks": 1}
    g_ab, g_ba = (build_generator("resnet", **kw).eval() for _ in range(2))
    sd = {f"G_AB.{k}": v for k, v in g_ab.state_dict().items()} | {f"G_BA.{k}": v for k, v in g_ba.state_dict().items()}
    ck = tmp_path / "run.ckpt"
    torch.save({"state_dict": sd, "hyper_parameters": {"gen": "resnet", **kw, "unet_depth": 8, "norm": "instance",
                                                       "dropout": False}}, ck)
    assert main(["--ckpt", f"{ck}:BA", "--export", "state_dict", "--output", str(tmp_path / "ba.pt")]) == 0
    assert torch.equal(_out(load_generator(tmp_path / "ba.pt"), x), _out(g_ba, x))
    assert main(["--ckpt", f"{ck}:AB", "--ckpt", f"{ck}:BA", "--export", "ts",
                 "--output", str(tmp_path / "aba.ts")]) == 0
    torch.testing.assert_close(_out(load_exported(tmp_path / "aba.ts", allow_torchscript=True), x), _out(g_ba, _out(g_ab, x)),
                               atol=1e-6, rtol=1e-5)
    assert main(["--ckpt", f"{ck}:AB", "--ckpt", f"{ck}:BA", "--export", "state_dict",
                 "--output", str(tmp_path / "no.pt")]) == 2
    assert not (tmp_path / "no.pt").exists()


def test_half_export_stores_float16_and_loads_into_a_float32_network_that_matches(tmp_path, x):
    g = tiny(ngf=8, n_blocks=2)
    full, half = export_state_dict(g, tmp_path / "g.pt"), export_generator(g, tmp_path / "g16.pt", "half")
    stored = torch.load(half, weights_only=True)["state_dict"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    assert half.stat().st_size < 0.7 * full.stat().st_size
    h = load_exported(half)
    assert all(p.dtype == torch.float32 for p in h.parameters())
    torch.testing.assert_close(_out(h, x), _out(g, x), atol=5e-3, rtol=0)  # float16 rounding of the weights
    assert not torch.equal(_out(h, x), _out(g, x))
