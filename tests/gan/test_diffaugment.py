"""DiffAugment (model.diffaugment): differentiable, before every discriminator call, and off = today's step."""

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from conftest import TINY_MODEL, RandomPairs
from cyclegan.gan.diffaugment import DiffAugment, cutout, parse_policy, translation
from cyclegan.gan.module import CycleGAN

POLICY = "color,translation,cutout"


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", POLICY])
def test_gradients_flow_through_every_transform_to_the_input(policy):
    torch.manual_seed(0)
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    y = DiffAugment(policy)(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_moves_pixels_and_fills_the_border_with_zeros():
    torch.manual_seed(1)
    x = torch.arange(1, 65, dtype=torch.float32).view(1, 1, 8, 8).repeat(8, 3, 1, 1)
    y = translation(x, ratio=0.25)
    for img, out in zip(x, y):
        kept = out[out != 0]
        assert set(kept.tolist()) <= set(img.flatten().tolist())  # values only moved, never mixed
        assert kept.numel() >= 3 * 6 * 6  # at most 2 of 8 rows and columns shifted out
    assert not torch.equal(y, x)


def test_cutout_zeroes_one_square_of_half_the_size_at_most():
    torch.manual_seed(2)
    y = cutout(torch.ones(16, 3, 16, 16))
    zeros = (y == 0).all(dim=1).flatten(1).sum(1)  # per image, the same pixels in every channel
    assert zeros.max() <= 8 * 8 and zeros.min() > 0
    assert ((y == 0) | (y == 1)).all()


def test_policy_parsing_and_errors():
    assert parse_policy(None) == parse_policy("") == parse_policy("none") == ()
    assert parse_policy(" color, cutout ") == ("color", "cutout")
    assert parse_policy(["translation"]) == ("translation",)
    with pytest.raises(ValueError, match="unknown transform 'colour'.*color, translation, cutout"):
        parse_policy("colour,cutout")


def one_step(seed=0, **kw):
    pl.seed_everything(seed)
    model = CycleGAN(**TINY_MODEL, **kw)
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, DataLoader(RandomPairs(n=4), batch_size=2))
    return model


def test_every_discriminator_call_sees_an_augmented_image_real_and_fake_alike():
    pl.seed_everything(0)
    model = CycleGAN(**TINY_MODEL, diffaugment=POLICY)
    outputs, seen = [], []
    model.augment.register_forward_hook(lambda m, args, out: outputs.append(out))
    for name in ("D_A", "D_B"):
        getattr(model, name).register_forward_pre_hook(
            lambda m, args, name=name: seen.append((name, any(args[0] is o for o in outputs))))
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, DataLoader(RandomPairs(n=4), batch_size=2))
    # G step: D_B(fake B), D_A(fake A); D step: each D on a real and a pooled fake batch
    assert sorted(n for n, _ in seen) == ["D_A"] * 3 + ["D_B"] * 3
    assert all(augmented for _, augmented in seen)
    assert model.augment.policy == ("color", "translation", "cutout")


def test_off_is_the_same_training_step_bit_for_bit_and_on_changes_it():
    base = one_step()
    state = {k: v.clone() for k, v in base.state_dict().items()}
    for off in (None, "", "none"):
        other = one_step(diffaugment=off)
        assert other.augment is None
        assert all(torch.equal(state[k], v) for k, v in other.state_dict().items())
    on = one_step(diffaugment=POLICY)
    assert set(on.state_dict()) == set(state)  # the policy adds no weights
    assert not all(torch.equal(state[k], v) for k, v in on.state_dict().items() if k.startswith("D_"))
