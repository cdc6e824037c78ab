import pytest
import torch

from cyclegan.schedulers import build_scheduler, linear_decay_factor


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
