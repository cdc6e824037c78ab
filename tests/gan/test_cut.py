"""The CUT family: PatchNCE maths, F built from the generator's widths, direction, the family interface
and its checkpoint entry (the replay of an official step is tests/gan/test_cut_fixture.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cyclegan.gan.cut import CUT
from cyclegan.gan.module import CycleGAN
from cyclegan.gan.patchnce import PatchSampleF, l2_normalize, patch_nce_loss
from cyclegan.inference.checkpoint import CheckpointError, load_generator, load_generators

TINY = dict(ngf=4, ndf=4, n_blocks=1, d_layers=2, netF_nc=8, num_patches=16)


def naive_patch_nce(q: torch.Tensor, k: torch.Tensor, batch: int, T: float) -> torch.Tensor:
    """PatchNCE written out: for query i of image b, softmax over [k_i] + [k_j of image b, j != i]."""
    patches = q.size(0) // batch
    losses = []
    for b in range(batch):
        for i in range(patches):
            row = b * patches + i
            positive = q[row] @ k[row]
            negatives = [q[row] @ k[b * patches + j] for j in range(patches) if j != i]
            logits = torch.stack([positive, *negatives]) / T
            losses.append(-torch.log_softmax(logits, 0)[0])
    return torch.stack(losses)


def test_patch_nce_is_cross_entropy_to_the_positive_among_the_same_images_patches():
    torch.manual_seed(0)
    q, k = l2_normalize(torch.randn(2 * 5, 8)), l2_normalize(torch.randn(2 * 5, 8))
    loss = patch_nce_loss(q, k, batch_size=2, temperature=0.07)
    # the masked diagonal adds exp(-10 / T) ~ 1e-62 to each denominator: nothing in float32
    torch.testing.assert_close(loss, naive_patch_nce(q, k, 2, 0.07), rtol=1e-5, atol=1e-6)


def test_negatives_come_from_the_same_image_unless_asked_for_the_whole_batch():
    torch.manual_seed(1)
    q, k = l2_normalize(torch.randn(2 * 4, 6)), l2_normalize(torch.randn(2 * 4, 6))
    k_other = k.clone()
    k_other[4:] = l2_normalize(torch.randn(4, 6))  # change image 1's keys only
    same = patch_nce_loss(q, k, 2, 0.07)[:4]
    assert torch.equal(same, patch_nce_loss(q, k_other, 2, 0.07)[:4])  # image 0 never sees image 1
    everywhere = patch_nce_loss(q, k, 2, 0.07, negatives_from_minibatch=True)
    assert not torch.allclose(everywhere[:4], patch_nce_loss(q, k_other, 2, 0.07, negatives_from_minibatch=True)[:4])


def test_the_key_side_gets_no_gradient():
    q = l2_normalize(torch.randn(8, 4)).requires_grad_(True)
    k = l2_normalize(torch.randn(8, 4)).requires_grad_(True)
    patch_nce_loss(q, k, 2, 0.07).mean().backward()
    assert q.grad is not None and k.grad is None


def test_l2_normalize_is_the_official_division_by_norm_plus_1e7():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert torch.equal(l2_normalize(x), torch.stack([x[0] / (5.0 + 1e-7), x[1]]))


def test_an_all_zero_feature_row_gets_a_finite_gradient_not_nan():
    x = torch.zeros(2, 3)
    x[0] = torch.tensor([1.0, 2.0, 2.0])
    x.requires_grad_(True)
    (l2_normalize(x) * torch.arange(3.0)).sum().backward()
    assert torch.isfinite(x.grad).all()  # the official code gives NaN here
    torch.testing.assert_close(x.grad[1], torch.arange(3.0) / 1e-7, rtol=1e-4, atol=0)  # d(x / 1e-7) / dx


def test_F_has_one_mlp_per_layer_sized_from_the_encoder_and_initialised_like_init_net():
    model = CUT(**{**TINY, "ngf": 8, "netF_nc": 32})
    widths = [f.shape[1] for f in model.G.encode(torch.zeros(1, 3, 32, 32), model.hparams.nce_layers)]
    # the padded input, the two downsamplings, the one residual block, then (n_blocks=1) a decoder layer
    assert model.F.widths == widths == [3, 16, 32, 32, 16]
    for i, width in enumerate(widths):
        first, last = model.F.mlp(i)[0], model.F.mlp(i)[2]
        assert (first.in_features, first.out_features, last.out_features) == (width, 32, 32)
        assert torch.count_nonzero(first.bias) == 0 and torch.count_nonzero(last.bias) == 0
    # xavier-normal with gain 0.02: std = 0.02 * sqrt(2 / (fan_in + fan_out))
    big = PatchSampleF([256], nc=256).mlp(0)[2].weight
    assert big.std().item() == pytest.approx(0.02 * math.sqrt(2 / 512), rel=0.05)


def test_F_samples_the_same_positions_of_query_and_key_and_normalises_them():
    sampler = PatchSampleF([3], nc=4, init_gain=1.0)  # (at gain 0.02 the norms are ~1e-6: the +1e-7 shows)
    feat = torch.randn(2, 3, 5, 5)
    samples, ids = sampler([feat], num_patches=7)
    assert samples[0].shape == (2 * 7, 4) and ids[0].unique().numel() == 7
    torch.testing.assert_close(samples[0].norm(dim=1), torch.ones(14), rtol=0, atol=1e-3)
    again, _ = sampler([feat], num_patches=7, patch_ids=ids)
    assert torch.equal(again[0], samples[0])
    rows = feat.permute(0, 2, 3, 1).reshape(2, 25, 3)[:, ids[0]].reshape(14, 3)  # image-major rows
    torch.testing.assert_close(samples[0], l2_normalize(sampler.mlp(0)(rows)))
    small, small_ids = sampler([torch.randn(1, 3, 2, 2)], num_patches=256)  # fewer positions than asked
    assert small[0].shape[0] == 4 and sorted(small_ids[0].tolist()) == [0, 1, 2, 3]


def test_direction_decides_the_source_domain_and_the_family_interface():
    a, b = torch.full((1, 3, 32, 32), -0.5), torch.full((1, 3, 32, 32), 0.5)
    ab, ba = CUT(**TINY, direction="AB"), CUT(**TINY, direction="B2A")
    assert ab._source_target({"A": a, "B": b})[0] is a and ba._source_target({"A": a, "B": b})[0] is b
    assert ba.generators() == {"BA": ba.G} and ba.discriminators() == {"BA": ba.D}
    assert ba.hparams.direction == "BA"
    with pytest.raises(ValueError, match="translates BA only"):
        ba(a, direction="AB")
    cg = CycleGAN(ngf=4, ndf=4, n_blocks=1)
    assert cg.generators() == {"AB": cg.G_AB, "BA": cg.G_BA}
    assert cg.discriminators() == {"AB": cg.D_B, "BA": cg.D_A}


@pytest.mark.parametrize("bad, match", [
    (dict(gen="unet"), "antialias=True is an option of the resnet"),
    (dict(gen="unet", antialias=False), "use model.gen=resnet"),
    (dict(nce_layers=[0, 4, 99]), "layers 0..23"),
    (dict(nce_layers=[8, 4]), "increasing"),
    (dict(num_patches=0), "num_patches"),
    (dict(direction="sideways"), "model.direction"),
])
def test_bad_cut_settings_are_one_line_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        CUT(**{**TINY, **bad})


def test_every_checkpoint_names_its_generators_and_inference_rebuilds_a_cut_one(tmp_path):
    model = CUT(**TINY, direction="BA")
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "pytorch-lightning_version": "2.6.0"}
    model.on_save_checkpoint(checkpoint)
    entry = checkpoint["generators"]
    assert list(entry) == ["BA"] and entry["BA"]["prefix"] == "G."
    assert entry["BA"]["spec"]["name"] == "resnet" and entry["BA"]["spec"]["options"]["antialias"] is True
    path = tmp_path / "cut.ckpt"
    torch.save(checkpoint, path)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    G = load_generator(path, direction="BA")
    with torch.no_grad():
        torch.testing.assert_close(G(x), model.G.eval()(x))
    assert list(load_generators(path)) == ["BA"]
    with pytest.raises(CheckpointError) as info:
        load_generator(path, direction="AB")
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "BA only" in message and "model.direction=AB" in message

    cg = CycleGAN(ngf=4, ndf=4, n_blocks=1)
    cg_checkpoint: dict = {}
    cg.on_save_checkpoint(cg_checkpoint)
    assert {d: e["prefix"] for d, e in cg_checkpoint["generators"].items()} == {"AB": "G_AB.", "BA": "G_BA."}
    assert "image_pools" in cg_checkpoint


def test_losses_and_d_terms_are_logged_under_their_official_names():
    model = CUT(**TINY)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    fake, idt = model.translate(x, y, flipped=False)
    total, logs = model.generator_loss(x, y, fake, idt, flipped=False)
    assert set(logs) == {"G_GAN", "NCE", "NCE_Y", "G_loss"}
    torch.testing.assert_close(total, logs["G_GAN"] + (logs["NCE"] + logs["NCE_Y"]) * 0.5)
    loss_d, parts = model.discriminator_terms(model.D, y, fake)
    torch.testing.assert_close(loss_d, 0.5 * (parts["real"] + parts["fake"]))
    no_gan = CUT(**TINY, lambda_GAN=0.0, nce_idt=False)
    _, logs = no_gan.generator_loss(x, y, *no_gan.translate(x, y, flipped=False), flipped=False)
    assert set(logs) == {"NCE", "G_loss"} and F.l1_loss(logs["G_loss"], logs["NCE"]) == 0
