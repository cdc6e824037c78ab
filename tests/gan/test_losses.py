import pytest
import torch
from torch import nn

from cyclegan.gan.losses import GANLoss, gradient_penalty


def test_lsgan_is_mse_to_labels():
    pred = torch.tensor([[0.0, 0.5], [1.0, 2.0]])
    loss = GANLoss("lsgan")
    assert loss(pred, True).item() == pytest.approx(((pred - 1) ** 2).mean().item())
    assert loss(pred, False).item() == pytest.approx((pred**2).mean().item())


def test_vanilla_is_bce_with_logits():
    pred = torch.tensor([0.0, 2.0, -1.0])
    loss = GANLoss("vanilla")
    # -log(sigmoid(x)) for real, -log(1 - sigmoid(x)) for fake
    expected_real = -torch.log(torch.sigmoid(pred)).mean()
    expected_fake = -torch.log(1 - torch.sigmoid(pred)).mean()
    assert loss(pred, True).item() == pytest.approx(expected_real.item(), rel=1e-6)
    assert loss(pred, False).item() == pytest.approx(expected_fake.item(), rel=1e-6)
    assert loss(torch.zeros(4), True).item() == pytest.approx(torch.log(torch.tensor(2.0)).item())


def test_hinge_discriminator_and_generator_terms():
    pred = torch.tensor([-2.0, 0.5, 3.0])
    loss = GANLoss("hinge")
    assert loss(pred, True).item() == pytest.approx((3.0 + 0.5 + 0.0) / 3)
    assert loss(pred, False).item() == pytest.approx((0.0 + 1.5 + 4.0) / 3)
    assert loss(pred, True, for_discriminator=False).item() == pytest.approx(-pred.mean().item())


def test_wgan_critic_signs():
    pred = torch.tensor([1.0, 3.0])
    loss = GANLoss("wgangp")
    assert loss(pred, True).item() == pytest.approx(-2.0)
    assert loss(pred, False).item() == pytest.approx(2.0)


def test_unknown_mode_names_the_key_and_choices():
    with pytest.raises(ValueError, match=r"model.gan_mode 'lsgann'.*lsgan, vanilla, hinge, wgangp"):
        GANLoss("lsgann")


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = sum(w * x): the gradient is w everywhere, so the penalty is weight * (||w|| - 1)^2.
    critic = nn.Conv2d(1, 1, kernel_size=2, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[[[3.0, 0.0], [0.0, 4.0]]]]))
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    gp = gradient_penalty(critic, real, fake, weight=10.0)
    assert gp.item() == pytest.approx(10.0 * (5.0 - 1.0) ** 2, rel=1e-5)
    gp.backward()  # differentiable w.r.t. the critic (create_graph=True)
    assert critic.weight.grad is not None
