"""Speed switches: channels_last / compiled networks compute the same thing, keep checkpoint keys,
compose through Hydra with mixed precision; the image cache changes nothing but speed; the bench runs."""

from __future__ import annotations

import json
import re

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from conftest import TINY_MODEL, RandomPairs
from cyclegan.gan.module import CycleGAN
from cyclegan.models import build_generator
from cyclegan.gan.speed import adam_kwargs, apply_speedups
from cyclegan.models.compile import compile_for_inference, compile_options, eager_fallback, is_compiled

AOT_EAGER = {"backend": "aot_eager"}  # AOTAutograd graphs without the C++ build of inductor: fast on CPU


def images(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def losses_and_grads(model: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor):
    """One generator loss and one discriminator loss, as the training step composes them."""
    model.zero_grad(set_to_none=True)
    fake_B, fake_A = model.G_AB(real_A), model.G_BA(real_B)
    rec_A, rec_B = model.G_BA(fake_B), model.G_AB(fake_A)
    loss_G, _ = model.generator_loss(real_A, real_B, fake_A, fake_B, rec_A, rec_B)
    loss_D = model.discriminator_loss(model.D_A, real_A, fake_A) + model.discriminator_loss(model.D_B, real_B, fake_B)
    (loss_G + loss_D).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return torch.stack([loss_G.detach(), loss_D.detach()]), fake_B.detach(), grads


@pytest.mark.parametrize("channels_last,compile", [(True, False), (True, AOT_EAGER)])
def test_fast_paths_match_the_plain_fp32_step(channels_last, compile):
    torch.manual_seed(0)
    plain = CycleGAN(**TINY_MODEL)
    fast = CycleGAN(**TINY_MODEL, channels_last=channels_last, compile=compile)
    fast.load_state_dict(plain.state_dict())
    fast.configure_model()  # what the Trainer calls before fitting
    assert is_compiled(fast.G_AB) == bool(compile)
    if channels_last:
        assert fast.G_AB.model[1].weight.is_contiguous(memory_format=torch.channels_last)
    real_A, real_B = images(1), images(2)
    ref = losses_and_grads(plain, real_A, real_B)
    cl = (lambda x: x.contiguous(memory_format=torch.channels_last)) if channels_last else (lambda x: x)
    out = losses_and_grads(fast, cl(real_A), cl(real_B))
    torch.testing.assert_close(out[0], ref[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[1], ref[1], rtol=1e-5, atol=1e-6)
    assert out[2].keys() == ref[2].keys()
    # Conv biases in front of an instance norm get ~1e-6 of cancellation noise as their gradient
    # (the norm removes them), so compare all gradients as one vector, and each loosely.
    flat_ref = torch.cat([g.flatten() for g in ref[2].values()])
    flat_out = torch.cat([out[2][n].flatten() for n in ref[2]])
    assert (flat_out - flat_ref).norm() / flat_ref.norm() < 5e-6  # fp32 rounding (a different reduction order)
    for name in ref[2]:
        torch.testing.assert_close(out[2][name], ref[2][name], rtol=1e-4, atol=1e-5)


def test_inductor_compiled_generator_matches_eager():
    """The default backend (inductor, C++ on CPU) on a generator forward: same numbers."""
    torch.manual_seed(0)
    model = CycleGAN(**TINY_MODEL)
    x = images(3, n=1, size=16)
    with torch.no_grad():
        ref = model.G_AB(x)
        apply_speedups(model, compile=True)
        torch.testing.assert_close(model.G_AB(x), ref, rtol=1e-5, atol=1e-6)


def test_compiled_channels_last_training_keeps_checkpoint_keys(tmp_path):
    model = CycleGAN(**TINY_MODEL, channels_last=True, compile=AOT_EAGER, pool_size=2)
    d_before = [p.clone() for p in model.D_A.parameters()]
    g_before = [p.clone() for p in model.G_AB.parameters()]
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path,
                         callbacks=[pl.callbacks.ModelCheckpoint(dirpath=tmp_path, filename="last")])
    trainer.fit(model, DataLoader(RandomPairs(n=4), batch_size=2))
    assert trainer.global_step == 2 and is_compiled(model.G_AB) and is_compiled(model.D_B)
    # toggle_optimizer still freezes the right parameters: both optimizers stepped their own networks
    assert all(not torch.equal(a, b) for a, b in zip(d_before, model.D_A.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(g_before, model.G_AB.parameters()))
    ckpt = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=False)
    plain = CycleGAN(**TINY_MODEL)
    assert list(ckpt["state_dict"]) == list(plain.state_dict())  # no _orig_mod. prefixes
    plain.load_state_dict(ckpt["state_dict"])  # strict: a compiled run's checkpoint loads into a plain model
    assert ckpt["hyper_parameters"]["compile"] == AOT_EAGER


def test_bf16_mixed_and_channels_last_compose_through_hydra_and_fit(tiny_cfg):
    from cyclegan.training.run import train

    cfg = tiny_cfg("trainer.precision=bf16-mixed", "model.channels_last=true", "data.cache_images=true",
                   "logger=none")
    metrics = train(cfg)
    losses = {k: v for k, v in metrics.items() if k.startswith("train/") and k.endswith("_step")}
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values()), metrics


def test_fp16_mixed_steps_through_the_loss_scaler():
    """16-mixed under manual optimization: Lightning scales manual_backward and steps/updates the scaler.

    Lightning turns `precision="16-mixed"` into bf16 on a CPU, so the plugin is built by hand here
    (fp16 autocast + a CPU GradScaler): the same code path `trainer=fp16` takes on a GPU.
    """
    from pytorch_lightning.plugins.precision import MixedPrecision

    model = CycleGAN(**TINY_MODEL, pool_size=0)
    before = [p.clone() for p in model.parameters()]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    plugin = MixedPrecision(precision="16-mixed", device="cpu", scaler=scaler)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", plugins=[plugin], logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(model, DataLoader(RandomPairs(n=4), batch_size=2))
    assert trainer.precision_plugin.scaler is scaler
    # two optimizer steps per iteration, each followed by scaler.update(): the scale grew 4 times
    assert scaler.get_scale() == 2.0**14
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_option_validation_and_fused_adam_choice():
    with pytest.raises(ValueError, match="model.compile"):
        CycleGAN(**TINY_MODEL, compile="fastest")
    assert compile_options("max-autotune-no-cudagraphs") == {"mode": "max-autotune-no-cudagraphs"}
    assert compile_options("false") is None and compile_options(True) == {}
    cpu_params = [torch.nn.Parameter(torch.zeros(2))]
    assert adam_kwargs(cpu_params, None) == {}  # auto: fused only on a GPU
    assert adam_kwargs(cpu_params, False) == {}
    assert adam_kwargs(cpu_params, True) == {"fused": True}  # torch has a fused CPU Adam too
    optimizers, _ = CycleGAN(**TINY_MODEL, fused_adam=True).configure_optimizers()
    assert all(o.defaults["fused"] for o in optimizers)


def test_wgangp_keeps_discriminators_eager_under_compile():
    model = CycleGAN(**TINY_MODEL, gan_mode="wgangp", compile=AOT_EAGER)
    model.configure_model()
    assert is_compiled(model.G_AB) and is_compiled(model.G_BA)
    assert not is_compiled(model.D_A) and not is_compiled(model.D_B)


def test_image_cache_gives_the_same_items():
    from cyclegan.data import UnpairedDataModule

    def items(cache):
        dm = UnpairedDataModule(source="sample", image_size=32, load_size=36, num_workers=0, val_size=2,
                                cache_images=cache, seed=3)
        dm.setup("fit")
        torch.manual_seed(0)
        train = [dm.data_train[i] for i in range(3)]
        return train + [dm.data_val[i] for i in range(2)], dm

    plain, _ = items(False)
    cached, dm = items(True)
    assert len(dm.data_train._decoded["images_a"]) == len(dm.data_train.images_a)
    for a, b in zip(plain, cached):
        assert a["A_path"] == b["A_path"] and a["B_path"] == b["B_path"]
        assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"])


def test_bench_runs_on_cpu(capsys):
    from cyclegan.tools import bench

    rc = bench.main(["--device", "cpu", "--configs", "fp32+b1+nofused", "bf16+cl+b2", "--image-size", "32",
                     "--ngf", "4", "--ndf", "4", "--n-blocks", "1", "--warmup", "1", "--steps", "1",
                     "--inference-batch", "2", "--no-inference-compile", "--data-workers", "--profile", "bf16+cl+b2",
                     "--profile-steps", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "G_AB inference fp32 b2" in out and "G_AB inference bf16 b2" in out and "compile b2" not in out
    assert "fp32+b1+nofused" in out and "bf16+cl+b2" in out and "FAILED" not in out
    assert "GFLOP per image pair" in out and "profile of bf16+cl+b2" in out
    assert " nan" not in out  # e.g. `peak nan MiB`
    assert re.search(r"fp32\+b1\+nofused: [\d.]+ pairs/s, peak [1-9]\d* MiB", out)  # the process's peak on a CPU


def test_bench_times_the_default_callbacks_against_a_bare_step_and_the_kaggle_zip(capsys, tmp_path):
    from cyclegan.tools import bench

    rc = bench.main(["--device", "cpu", "--configs", "fp32+b1", "--image-size", "32", "--ngf", "4", "--ndf", "4",
                     "--n-blocks", "1", "--warmup", "1", "--steps", "2", "--no-inference", "--data-workers",
                     "--callbacks", "--repeats", "1", "--zip-photos", "3", "--inference-batch", "2",
                     "--json", str(tmp_path / "bench.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "FAILED" not in out
    assert "fp32+b1 bare" in out and "fp32+b1 default callbacks" in out
    assert re.search(r"default callbacks: [+-][\d.]+ ms/step \([+-][\d.]+ % of the bare", out)
    assert "Kaggle zip of 3 photos" in out
    report = json.loads((tmp_path / "bench.json").read_text())
    assert len(report["callbacks_overhead"]) == 1
    zip_row = next(r for r in report["results"] if r["config"].startswith("Kaggle zip"))
    assert zip_row["extra"]["wall_s"] > 0 and zip_row["pairs_per_s"] > 0


def test_a_machine_that_cannot_compile_runs_the_networks_eagerly(monkeypatch):
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    G = build_generator("resnet", ngf=4, n_blocks=1).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = G(x)
        monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++",))  # no C++ compiler
        assert compile_for_inference([G], True) and is_compiled(G)
        with eager_fallback():
            assert torch.equal(G(x), expected)
        with pytest.raises(Exception, match="C\\+\\+ compiler"):  # outside the block the failure is not hidden
            torch._dynamo.reset()
            G(x)


def test_a_compile_mapping_from_hydra_is_stored_as_a_plain_dict(tmp_path):
    """model.compile={backend:aot_eager} arrives as a DictConfig; stored as such, the checkpoint's
    hyper_parameters would need omegaconf to unpickle and every weights_only load would refuse it."""
    from omegaconf import OmegaConf

    model = CycleGAN(**TINY_MODEL, compile=OmegaConf.create({"backend": "aot_eager"}))
    assert type(model.hparams.compile) is dict and model.hparams.compile == {"backend": "aot_eager"}
    torch.save({"hyper_parameters": dict(model.hparams)}, tmp_path / "h.ckpt")
    assert torch.load(tmp_path / "h.ckpt", weights_only=True)["hyper_parameters"]["compile"] == {"backend": "aot_eager"}
