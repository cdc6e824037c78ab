"""The LightningModule: loss composition, step order, frozen discriminators, schedules, and learning."""

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from conftest import TINY_MODEL, RandomPairs
from cyclegan.gan.module import CycleGAN


def fit(model, max_epochs=1, max_steps=-1, data=None, batch_size=2, **trainer_kw):
    trainer = pl.Trainer(max_epochs=max_epochs, max_steps=max_steps, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, **trainer_kw)
    trainer.fit(model, DataLoader(data or RandomPairs(n=4), batch_size=batch_size))
    return trainer


class Shift(nn.Module):
    """A generator stand-in: x + offset (exactly computable losses)."""

    size_multiple = 1

    def __init__(self, offset):
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(float(offset)))

    def forward(self, x):
        return x + self.offset


class ConstantD(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x):
        return self.value.expand(x.size(0), 1, 2, 2)


def test_generator_loss_composition_matches_the_paper():
    model = CycleGAN(**TINY_MODEL, lambda_cycle=10.0, lambda_identity=0.5)
    model.G_AB, model.G_BA = Shift(0.1), Shift(0.3)
    model.D_A, model.D_B = ConstantD(0.25), ConstantD(0.5)
    real_A, real_B = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    fake_B, fake_A = model.G_AB(real_A), model.G_BA(real_B)
    rec_A, rec_B = model.G_BA(fake_B), model.G_AB(fake_A)
    total, logs = model.generator_loss(real_A, real_B, fake_A, fake_B, rec_A, rec_B)
    assert logs["G_adv_AB"].item() == pytest.approx((0.5 - 1) ** 2)  # D_B judges fake_B (lsgan)
    assert logs["G_adv_BA"].item() == pytest.approx((0.25 - 1) ** 2)
    assert logs["cycle_A"].item() == pytest.approx(0.4 * 10)  # |A + 0.1 + 0.3 - A| * lambda_A
    assert logs["cycle_B"].item() == pytest.approx(0.4 * 10)
    assert logs["idt_AB"].item() == pytest.approx(0.1 * 10 * 0.5)  # G_AB(B) vs B, weighted with lambda_B
    assert logs["idt_BA"].item() == pytest.approx(0.3 * 10 * 0.5)
    assert total.item() == pytest.approx(sum(v.item() for k, v in logs.items() if k != "G_loss"))


def test_identity_zero_disables_the_term_and_lambdas_are_per_direction():
    model = CycleGAN(**TINY_MODEL, lambda_identity=0.0, lambda_A=2.0, lambda_B=5.0)
    model.G_AB, model.G_BA = Shift(0.1), Shift(0.1)
    model.D_A, model.D_B = ConstantD(1.0), ConstantD(1.0)
    x = torch.zeros(1, 3, 4, 4)
    _, logs = model.generator_loss(x, x, x + 0.1, x + 0.1, x + 0.2, x + 0.2)
    assert "idt_AB" not in logs
    assert logs["cycle_A"].item() == pytest.approx(0.2 * 2.0)
    assert logs["cycle_B"].item() == pytest.approx(0.2 * 5.0)


def test_discriminator_loss_is_half_real_plus_fake():
    model = CycleGAN(**TINY_MODEL, gan_mode="lsgan")
    d = ConstantD(0.25)
    loss = model.discriminator_loss(d, torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))
    assert loss.item() == pytest.approx(0.5 * ((0.25 - 1) ** 2 + 0.25**2))


def test_generator_step_runs_first_with_discriminators_frozen_then_discriminator_step():
    model = CycleGAN(**TINY_MODEL, pool_size=2)
    events = []
    model.configure_optimizers_original = model.configure_optimizers

    def configure():
        (opt_g, opt_d), scheds = model.configure_optimizers_original()

        def frozen(*nets):
            return all(not p.requires_grad for net in nets for p in net.parameters())

        def g_hook(opt, args, kwargs):
            events.append(("G", frozen(model.D_A, model.D_B)))

        def d_hook(opt, args, kwargs):
            events.append(("D", frozen(model.G_AB, model.G_BA)))

        opt_g.register_step_pre_hook(g_hook)
        opt_d.register_step_pre_hook(d_hook)
        return [opt_g, opt_d], scheds

    model.configure_optimizers = configure
    trainer = fit(model, max_steps=2)
    assert events == [("G", True), ("D", True), ("G", True), ("D", True)]
    assert trainer.global_step == 2  # one global step per iteration, not one per optimizer
    assert len(model.pool_A) == 2 and len(model.pool_B) == 2


def test_global_step_advances_once_per_cyclegan_iteration():
    """Lightning counts each optimizer step under manual optimization (Lightning-AI/pytorch-lightning#17958);
    CycleGAN._step_without_counting patches its private LightningOptimizer._on_after_step so that one
    iteration (G step + D step) is one global step. A Lightning release that changes the hook fails here."""
    model = CycleGAN(**TINY_MODEL, pool_size=0)
    iterations, steps = [], []
    original = model.training_step
    model.training_step = lambda batch, batch_idx: (iterations.append(batch_idx), original(batch, batch_idx))[1]
    model.configure_optimizers_original = model.configure_optimizers

    def configure():
        optimizers, schedulers = model.configure_optimizers_original()
        for name, opt in zip("GD", optimizers):
            opt.register_step_post_hook(lambda opt, args, kwargs, name=name: steps.append(name))
        return optimizers, schedulers

    model.configure_optimizers = configure
    trainer = fit(model, max_steps=3, data=RandomPairs(n=8), batch_size=1)
    assert iterations == [0, 1, 2] and steps == ["G", "D"] * 3
    assert trainer.global_step == 3  # max_steps counts CycleGAN iterations, not optimizer steps


@pytest.mark.parametrize("gan_mode", ["lsgan", "vanilla", "hinge", "wgangp"])
def test_every_gan_mode_trains_a_step(gan_mode):
    model = CycleGAN(**TINY_MODEL, gan_mode=gan_mode)
    before = [p.clone() for p in model.D_A.parameters()]
    fit(model, max_steps=1)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.D_A.parameters()))


def test_linear_schedule_is_stepped_once_per_epoch():
    model = CycleGAN(**TINY_MODEL, lr=1e-3, n_epochs=1, n_epochs_decay=3)
    lrs = []

    class Record(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    fit(model, max_epochs=4, callbacks=[Record()])
    # n_epochs=1 epoch at the initial rate, then 1 - k/(n_epochs_decay + 1) for the k-th decay epoch
    assert lrs == pytest.approx([1e-3, 1e-3 * 0.75, 1e-3 * 0.5, 1e-3 * 0.25])


def test_checkpoint_keeps_image_pools():
    model = CycleGAN(**TINY_MODEL, pool_size=3)
    model.pool_A.query(torch.ones(2, 3, 8, 8))
    ckpt = {}
    model.on_save_checkpoint(ckpt)
    other = CycleGAN(**TINY_MODEL, pool_size=3)
    other.on_load_checkpoint(ckpt)
    assert len(other.pool_A) == 2 and torch.equal(other.pool_A.images[0], torch.ones(1, 3, 8, 8))


class CastAndStripes(Dataset):
    """A: smooth colour blobs. B: the same kind of images with a red cast and horizontal stripes."""

    def __init__(self, n=16, size=32):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    @staticmethod
    def smooth(seed, size):
        g = torch.Generator().manual_seed(seed)
        low = torch.rand(1, 3, 4, 4, generator=g) * 1.2 - 0.9
        return nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)[0]

    @classmethod
    def to_b(cls, a):
        stripes = (torch.arange(a.size(1)) % 4 < 2).float().view(1, -1, 1) * 0.3
        cast = torch.tensor([0.6, -0.2, -0.2]).view(3, 1, 1)
        return (a + cast + stripes).clamp(-1, 1)

    def __getitem__(self, i):
        return {"A": self.smooth(i, self.size), "B": self.to_b(self.smooth(1000 + i, self.size))}


def test_a_tiny_model_learns_to_move_a_toward_b():
    torch.manual_seed(0)
    data = CastAndStripes()
    probe = torch.stack([CastAndStripes.smooth(5000 + i, 32) for i in range(8)])
    target_mean = torch.stack([CastAndStripes.to_b(a) for a in probe]).mean(dim=(0, 2, 3))

    def colour_error(model):
        with torch.no_grad():
            error = (model.G_AB.eval()(probe).mean(dim=(0, 2, 3)) - target_mean).abs().sum().item()
        model.G_AB.train()  # Lightning would start training with it in eval mode (and warn about it)
        return error

    model = CycleGAN(ngf=8, ndf=8, n_blocks=2, d_layers=2, lr=2e-3, lambda_identity=0.0, pool_size=0,
                     lr_policy="constant")
    untrained = colour_error(model)
    fit(model, max_epochs=25, data=data, batch_size=4)
    trained = colour_error(model)
    source_error = (probe.mean(dim=(0, 2, 3)) - target_mean).abs().sum().item()
    assert trained < 0.5 * untrained and trained < 0.5 * source_error, (untrained, source_error, trained)
