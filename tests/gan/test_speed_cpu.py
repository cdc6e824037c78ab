"""CPU speed work of issue 25: reflection padding outside CPU autocast's fp32 list changes no number, no key;
the bench's reference-equivalent row keeps the reference's settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cyclegan.gan.module import CycleGAN
from cyclegan.gan.speed import AutocastFreeReflectionPad2d, fold_reflection_grad, replace_reflection_pads

PAINTER = dict(ngf=4, ndf=4, n_blocks=2, d_layers=2, upsample="resize", residual_output=True)


def images(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def bf16_step(model: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor):
    """Both losses of a training step under CPU bf16 autocast (as Lightning's bf16-mixed runs it), their gradients."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        fake_B, fake_A = model.G_AB(real_A), model.G_BA(real_B)
        rec_A, rec_B = model.G_BA(fake_B), model.G_AB(fake_A)
        loss_G, _ = model.generator_loss(real_A, real_B, fake_A, fake_B, rec_A, rec_B)
        loss_D = model.discriminator_loss(model.D_A, real_A, fake_A) + model.discriminator_loss(model.D_B, real_B, fake_B)
    (loss_G + loss_D).backward()
    return torch.stack([loss_G.detach(), loss_D.detach()]), fake_B.detach(), {
        n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("options", [PAINTER, dict(ngf=4, ndf=4, n_blocks=1, d_layers=2)], ids=["painter", "reference"])
def test_autocast_free_padding_gives_the_same_bf16_step_bit_for_bit(options):
    torch.manual_seed(0)
    plain = CycleGAN(**options)
    fast = CycleGAN(**options)
    fast.load_state_dict(plain.state_dict())
    fast.configure_model()  # what the Trainer calls: swaps the pads
    swapped = [m for m in fast.G_AB.modules() if isinstance(m, AutocastFreeReflectionPad2d)]
    assert len(swapped) == sum(type(m) is nn.ReflectionPad2d for m in plain.G_AB.modules()) > 0
    assert fast.state_dict().keys() == plain.state_dict().keys()
    real_A, real_B = images(1), images(2)
    ref_losses, ref_fake, ref_grads = bf16_step(plain, real_A, real_B)
    losses, fake, grads = bf16_step(fast, real_A, real_B)
    assert torch.equal(losses, ref_losses) and torch.equal(fake, ref_fake)
    assert grads.keys() == ref_grads.keys()
    assert all(torch.equal(grads[n], ref_grads[n]) for n in ref_grads), "a gradient changed"


def test_the_pad_runs_in_bf16_under_cpu_autocast_and_is_plain_elsewhere():
    pad = nn.Sequential(nn.ReflectionPad2d(1))
    assert replace_reflection_pads(pad) == 1 and type(pad[0]) is AutocastFreeReflectionPad2d
    x = torch.randn(2, 4, 6, 5)
    assert torch.equal(pad(x), nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"))  # fp32, no autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert nn.ReflectionPad2d(1)(x.bfloat16()).dtype == torch.float32  # what CPU autocast does (the cast pair)
        y = pad(x.bfloat16())
    assert y.dtype == torch.bfloat16
    assert torch.equal(y.float(), nn.functional.pad(x.bfloat16().float(), (1, 1, 1, 1), mode="reflect"))


FOLD_CASES = [(padding, size) for padding in [(1, 1, 1, 1), (3, 3, 3, 3), (1, 2, 0, 3), (0, 0, 2, 2), (2, 3, 3, 2)]
              for size in [(8, 8), (5, 7), (3, 6), (2, 2)]
              if max(padding[2:]) < size[0] and max(padding[:2]) < size[1]]  # reflection needs pad < size


@pytest.mark.parametrize("padding,size", FOLD_CASES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_border_strip_fold_is_the_whole_fp32_fold_bit_for_bit(padding, size, dtype):
    left, right, top, bottom = padding
    rows, cols = size
    shape = (2, 3, rows + top + bottom, cols + left + right)
    g = torch.Generator().manual_seed(rows * 100 + cols)
    spread = 6.0 if dtype is torch.bfloat16 else 1.0  # magnitudes far apart: fp32 sums that round, in bf16's range
    grad = (torch.randn(shape, generator=g) * torch.exp(spread * torch.randn(shape, generator=g))).to(dtype)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        grad = grad.contiguous(memory_format=memory_format)
        x = torch.zeros(2, 3, rows, cols, requires_grad=True)  # the autocast path: fp32 pad, one rounding at the end
        nn.functional.pad(x, padding, mode="reflect").backward(grad.float())
        assert torch.equal(fold_reflection_grad(grad, rows, cols, padding), x.grad.to(dtype))


def test_the_bench_reference_row_keeps_the_reference_settings(monkeypatch):
    from cyclegan.tools import bench, bench_training
    from cyclegan.tools.bench_common import Config

    ref = Config.parse("ref")
    assert (ref.reference, ref.precision, ref.batch, ref.fused_adam, ref.compile, ref.channels_last) == (
        True, "32-true", 1, False, False, False)
    built = []

    class Recording(CycleGAN):
        def __init__(self, **kwargs):
            built.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(bench_training, "CycleGAN", Recording)
    args = bench.parse_args(["--device", "cpu", "--image-size", "32", "--ngf", "4", "--ndf", "4", "--n-blocks", "1",
                             "--warmup", "1", "--steps", "1", "--model", "lambda_identity=0", "upsample=resize"])
    for text in ("ref", "bf16+b2"):
        assert not bench_training.bench_training(Config.parse(text), args, torch.device("cpu")).error
    assert "lambda_identity" not in built[0] and "upsample" not in built[0] and built[0]["fused_adam"] is False
    assert built[1]["lambda_identity"] == 0 and built[1]["upsample"] == "resize"


def test_the_bench_adds_the_reference_row_and_divides_by_it(capsys):
    from cyclegan.tools import bench

    rc = bench.main(["--device", "cpu", "--configs", "fp32+b2", "--image-size", "32", "--ngf", "4", "--ndf", "4",
                     "--n-blocks", "1", "--warmup", "1", "--steps", "1", "--no-inference", "--data-workers"])
    out = capsys.readouterr().out
    assert rc == 0 and "FAILED" not in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("ref ", "fp32+b2 "))]
    assert [r[0] for r in rows] == ["ref", "fp32+b2"]
    assert float(rows[0][4]) == 1.0  # the x ref column
    assert float(rows[1][4]) == pytest.approx(float(rows[1][2]) / float(rows[0][2]), rel=0.05)


@pytest.mark.parametrize("affine", [False, True])
def test_the_layout_free_norm_on_a_cpu_is_instance_norm_and_keeps_channels_last(affine):
    from cyclegan.gan.speed import LayoutFreeInstanceNorm2d

    torch.manual_seed(0)
    plain = nn.InstanceNorm2d(6, affine=affine)
    if affine:
        nn.init.normal_(plain.weight), nn.init.normal_(plain.bias)
    free = LayoutFreeInstanceNorm2d(plain)
    x = (torch.randn(3, 6, 9, 7) * 3 + 1).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = free(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, plain(x.contiguous()), rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = free(x.bfloat16())
    assert y16.dtype == torch.bfloat16  # statistics in fp32 inside the kernel, no fp32 activation
    torch.testing.assert_close(y16.float(), plain(x.bfloat16().float().contiguous()), rtol=0.02, atol=0.02)
