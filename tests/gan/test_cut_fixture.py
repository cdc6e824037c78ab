"""CUT and FastCUT are exact to the official code: one recorded training step, replayed.

tests/fixtures/cut/{cut,fastcut}_ngf8.pt were made with the official code (taesungp/contrastive-unpaired-translation):
weights after its data-dependent initialisation, the step's inputs, the patch positions and the flip it
drew, every loss, and every parameter after one ``optimize_parameters()``. The CUT LightningModule, built
from the fixture's options (as conf/model/{cut,fastcut}.yaml set them), loads the weights, draws the
recorded positions and flip, and takes one step under a Lightning Trainer.

Tolerance: the losses to 1e-6 relative, the parameters to 1e-6 (a float32 step of Adam moves a weight by
about lr = 2e-4). One documented exception (docs/ARCHITECTURE.md): a conv bias followed by an instance
norm has a gradient of exactly zero in exact arithmetic (the norm subtracts the mean), so its float32
gradient is rounding noise whose sign depends on how many threads summed it, and Adam's first step moves
it by +-lr whatever its size. Those biases are checked to have moved by at most lr. (With torch's thread
count at 2 on a 2-core machine every parameter matched bit for bit; docs/ARCHITECTURE.md.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from conftest import compose_config
from cyclegan.gan.cut import CUT

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cut"
MODES = ("cut", "fastcut")


def load_fixture(mode: str) -> dict:
    return torch.load(FIXTURES / f"{mode}_ngf8.pt", weights_only=True)


def options(opt: dict) -> dict:
    """CUT's arguments for the official options ``opt``."""
    return dict(
        ngf=opt["ngf"], ndf=opt["ndf"], n_blocks=9, d_layers=opt["n_layers_D"], norm=opt["normG"],
        dropout=not opt["no_dropout"], antialias=not opt["no_antialias"], init_type=opt["init_type"],
        init_gain=opt["init_gain"], netF_nc=opt["netF_nc"], gan_mode=opt["gan_mode"], lambda_GAN=opt["lambda_GAN"],
        lambda_NCE=opt["lambda_NCE"], nce_idt=opt["nce_idt"], nce_layers=opt["nce_layers"], nce_T=opt["nce_T"],
        num_patches=opt["num_patches"], flip_equivariance=opt["flip_equivariance"], pool_size=opt["pool_size"],
        nce_includes_all_negatives_from_minibatch=opt["nce_includes_all_negatives_from_minibatch"],
        lr=opt["lr"], beta1=opt["beta1"], beta2=opt["beta2"], n_epochs=opt["n_epochs"],
        n_epochs_decay=opt["n_epochs_decay"],
    )


def cancelled_biases(net: nn.Module, prefix: str) -> set[str]:
    """State-dict names of conv biases that an instance norm right after the conv cancels."""
    names = set()
    for name, module in net.named_modules():
        children = list(module.named_children()) if isinstance(module, nn.Sequential) else []
        for (child_name, child), (_, following) in zip(children, children[1:]):
            if isinstance(child, nn.Conv2d) and child.bias is not None and isinstance(following, nn.InstanceNorm2d):
                names.add(f"{prefix}{name}.{child_name}.bias".replace("..", ".").lstrip("."))
    return names


def replay(fx: dict) -> tuple[CUT, pl.Trainer]:
    model = CUT(**options(fx["opt"]))
    for name in ("G", "F", "D"):
        getattr(model, name).load_state_dict(fx[name])
    recorded = iter(fx["patch_ids"])
    model.F.draw_patch_ids = lambda feats, num_patches: next(recorded)
    model.draw_flip = lambda: bool(fx["flipped"])
    batch = [{"A": a, "B": b} for a, b in zip(fx["real_A"], fx["real_B"])]
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, DataLoader(batch, batch_size=len(batch)))
    assert next(recorded, None) is None, "the step did not use every recorded set of patch positions"
    return model, trainer


@pytest.fixture(scope="module", params=MODES)
def replayed(request):
    fx = load_fixture(request.param)
    return fx, *replay(fx)


def test_the_generator_and_its_encoder_features_match_the_official_ones():
    fx = load_fixture("cut")
    model = CUT(**options(fx["opt"]))
    model.G.load_state_dict(fx["G"])
    with torch.no_grad():
        torch.testing.assert_close(model.G(fx["real_A"]), fx["G_out"], rtol=0, atol=1e-6)
        feats = model.G.encode(fx["real_A"], model.hparams.nce_layers)
    assert [f.shape for f in feats] == [f.shape for f in fx["feats_A"]]
    for ours, official in zip(feats, fx["feats_A"]):
        torch.testing.assert_close(ours, official, rtol=0, atol=1e-6)


def test_F_is_built_at_construction_with_the_official_keys_and_shapes():
    fx = load_fixture("cut")
    model = CUT(**options(fx["opt"]))  # no batch seen: the MLPs exist already
    assert {k: v.shape for k, v in model.F.state_dict().items()} == {k: v.shape for k, v in fx["F"].items()}


def test_one_step_reproduces_every_official_loss(replayed):
    fx, model, trainer = replayed
    assert trainer.global_step == 1  # one iteration (D step + G/F step) is one step
    logged = {k[len("train/"):-len("_step")]: v for k, v in trainer.callback_metrics.items() if k.endswith("_step")}
    names = {"D": "D_loss", "G": "G_loss"}
    for name, official in fx["losses"].items():
        torch.testing.assert_close(logged[names.get(name, name)], official, rtol=1e-6, atol=1e-9, msg=name)


def test_one_step_reproduces_every_official_parameter(replayed):
    fx, model, trainer = replayed
    lr = fx["opt"]["lr"]
    for name in ("G", "F", "D"):
        net, before, after = getattr(model, name), fx[name], fx[f"{name}_after"]
        noisy = cancelled_biases(net, "")
        ours = net.state_dict()
        assert ours.keys() == after.keys()
        for key, expected in after.items():
            if key in noisy:  # see the module doc: the update is +-lr of rounding noise
                assert (ours[key] - before[key]).abs().max() <= lr * (1 + 1e-3), f"{name}.{key}"
            else:
                torch.testing.assert_close(ours[key], expected, rtol=0, atol=1e-6, msg=f"{name}.{key}")
    assert cancelled_biases(model.D, "") and "model.30.bias" not in cancelled_biases(model.G, "")


@pytest.mark.parametrize("mode", MODES)
def test_the_model_configs_hold_the_official_options_of_each_mode(tmp_path, mode):
    opt = load_fixture(mode)["opt"]
    model = compose_config(tmp_path, f"model={mode}", "data=folders", "data.dir_a=a", "data.dir_b=b").model
    expected = options(opt)
    for key in ("netF_nc", "num_patches", "ngf", "ndf"):  # the fixture's small sizes are not the defaults
        expected.pop(key)
    expected["nce_layers"] = [int(i) for i in expected["nce_layers"].split(",")]
    for key, value in expected.items():
        assert model[key] == value, key
    assert (model.netF_nc, model.num_patches, model.ngf, model.ndf) == (256, 256, 64, 64)
