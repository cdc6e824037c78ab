import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Timer
from torch.utils.data import DataLoader

from conftest import TINY_MODEL, RandomPairs, compose_config, tiny_fit
from cyclegan.config.checks import ConfigError, validate_config
from cyclegan.gan.module import CycleGAN
from cyclegan.gan.schedulers import PlateauMonitorError, build_scheduler, linear_decay_factor, time_decay_factor


def lrs(policy, epochs, **kw):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    sched = build_scheduler(opt, policy, **kw)
    values = []
    for _ in range(epochs):
        values.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(1.0) if policy == "plateau" else sched.step()
    return values


def test_linear_policy_matches_reference_formula_at_epoch_boundaries():
    values = lrs("linear", 200, n_epochs=100, n_epochs_decay=100)
    assert values[0] == pytest.approx(2e-4)
    assert values[99] == pytest.approx(2e-4)  # 100th epoch still at the initial rate
    assert values[100] == pytest.approx(2e-4 * (1 - 1 / 101))
    assert values[199] == pytest.approx(2e-4 * (1 - 100 / 101))
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_linear_factor_function():
    assert linear_decay_factor(0, 3, 3) == 1.0
    assert linear_decay_factor(2, 3, 3) == 1.0
    assert linear_decay_factor(3, 3, 3) == pytest.approx(0.75)
    assert linear_decay_factor(5, 3, 3) == pytest.approx(0.25)


def test_step_cosine_plateau():
    step = lrs("step", 5, step_epochs=2, gamma=0.1)
    assert step == pytest.approx([2e-4, 2e-4, 2e-5, 2e-5, 2e-6])
    cos = lrs("cosine", 5, n_epochs=2, n_epochs_decay=2)
    assert cos[0] == pytest.approx(2e-4) and cos[2] == pytest.approx(1e-4) and cos[4] == pytest.approx(0.0, abs=1e-12)
    plateau = lrs("plateau", 10, plateau_patience=2)
    assert plateau[0] == pytest.approx(2e-4) and plateau[-1] < 2e-4


def test_unknown_policy():
    with pytest.raises(ValueError, match="model.lr_policy 'cyclic'"):
        lrs("cyclic", 1)


# ------------------------------------------------------------------------------ linear_time
def test_time_decay_factor_is_constant_then_linear_to_zero():
    assert [time_decay_factor(f, 0.5) for f in (0.0, 0.25, 0.5, 0.75, 1.0, 1.2)] == [1, 1, 1, 0.5, 0, 0]
    assert time_decay_factor(0.5, 0.0) == pytest.approx(0.5) and time_decay_factor(0.9, 0.8) == pytest.approx(0.5)


class StepClock(Timer):
    """Lightning's Timer on a fake clock: 10 s per training step."""

    def on_train_start(self, trainer, pl_module):
        self.trainer = trainer

    def time_elapsed(self, stage="train"):
        return 10.0 * self.trainer.global_step + self._offset if hasattr(self, "trainer") else self._offset


class RecordLR(pl.Callback):
    def __init__(self):
        self.rates = []

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.rates.append([g["lr"] for opt in trainer.optimizers for g in opt.param_groups])


def test_linear_time_decays_over_the_time_budget_and_the_timer_stops_training(tmp_path):
    model = CycleGAN(**TINY_MODEL, lr=1e-3, lr_D=4e-3, lr_policy="linear_time",
                     lr_decay_start=0.5)
    rates = RecordLR()
    trainer = pl.Trainer(max_epochs=-1, callbacks=[StepClock(duration={"seconds": 100}), rates], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(model, DataLoader(RandomPairs(3, size=32), batch_size=1))
    assert trainer.global_step == 10  # 100 s of budget at 10 s a step
    # the rate of step k (set before it, at k x 10 s spent): full for the first half, then linear to zero
    expected = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2]
    assert [r[0] for r in rates.rates] == pytest.approx([1e-3 * f for f in expected])
    assert [r[1] for r in rates.rates] == pytest.approx([4e-3 * f for f in expected])  # lr_D decays alike


def test_linear_time_without_a_time_budget_fails_with_the_fix():
    model = CycleGAN(**TINY_MODEL, lr_policy="linear_time")
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", limit_val_batches=0)
    with pytest.raises(ValueError, match="trainer.max_time=00:00:09:00"):
        trainer.fit(model, DataLoader(RandomPairs(2, size=32), batch_size=1))


def test_the_config_check_names_the_missing_budget_and_a_bad_decay_start(tmp_path):
    with pytest.raises(ConfigError, match=r"model.lr_policy=linear_time .* add trainer.max_time=00:00:09:00"):
        validate_config(compose_config(tmp_path, "model.lr_policy=linear_time", "trainer.max_time=null"))  # the demo preset sets one
    with pytest.raises(ConfigError, match=r"model.lr_decay_start"):
        validate_config(compose_config(tmp_path, "model.lr_policy=linear_time", "trainer.max_time=00:00:01:00",
                                       "model.lr_decay_start=1.0"))
    validate_config(compose_config(tmp_path, "model.lr_policy=linear_time", "trainer.max_time=00:00:01:00"))


def test_a_plateau_monitor_that_is_not_logged_is_one_line_listing_what_is(tmp_path):
    model = CycleGAN(**TINY_MODEL, lr_policy="plateau", plateau_monitor="train/G_los_epoch")
    with pytest.raises(PlateauMonitorError) as e:
        tiny_fit(tmp_path, model, [], max_steps=8)  # the first epoch's end (4 batches) reads the monitor
    message = str(e.value)
    assert message.startswith("model.plateau_monitor='train/G_los_epoch' was not logged") and "\n" not in message
    assert "train/G_loss_epoch" in message and "_step" not in message
