"""ResNet generator options of the CPU painter: resize-convolution upsampling and the identity start."""

import pytest
import torch
from torch import nn

from cyclegan.inference.checkpoint import load_generator
from cyclegan.models import build_generator
from cyclegan.models.networks.resnet import RESIDUAL_CLAMP, ResizeConv
from cyclegan.gan.module import CycleGAN


def images(n=2, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_residual_output_starts_as_the_identity_and_stays_in_range():
    G = build_generator("resnet", ngf=4, n_blocks=1, residual_output=True)
    x = images()
    with torch.no_grad():
        y = G(x)
    assert torch.allclose(y, x.clamp(-RESIDUAL_CLAMP, RESIDUAL_CLAMP), atol=1e-6)
    last = G.model[-2]
    assert torch.count_nonzero(last.weight) == 0 and torch.count_nonzero(last.bias) == 0
    # a non-zero residual moves the output, which stays strictly inside (-1, 1)
    nn.init.normal_(last.weight, 0, 0.05)
    with torch.no_grad():
        y = G(x)
    assert not torch.allclose(y, x, atol=1e-2) and y.abs().max() < 1


def test_residual_output_learns_from_the_first_step():
    G = build_generator("resnet", ngf=4, n_blocks=1, residual_output=True)
    x = images()
    loss = (G(x) - x.flip(-1)).abs().mean()
    loss.backward()
    assert G.model[-2].weight.grad.abs().sum() > 0  # the zeroed conv gets a gradient, so it moves


def test_the_options_keep_the_default_keys_or_name_their_own():
    default = build_generator("resnet", ngf=4, n_blocks=2)
    residual = build_generator("resnet", ngf=4, n_blocks=2, residual_output=True)
    resize = build_generator("resnet", ngf=4, n_blocks=2, upsample="resize")
    assert list(residual.state_dict()) == list(default.state_dict())  # reference checkpoints still load
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in resize.modules())
    assert sum(isinstance(m, ResizeConv) for m in resize.modules()) == 2
    changed = sorted(set(resize.state_dict()) ^ set(default.state_dict()))
    assert changed == sorted(f"model.{i}.{part}{kind}" for i in (12, 15) for part in ("", "conv.")
                             for kind in ("weight", "bias"))
    with torch.no_grad():
        assert resize(images(size=36)).shape == (2, 3, 36, 36)


def test_resize_convolution_paints_no_checkerboard_on_a_flat_image():
    # A stride-2 transposed conv gives the even and odd output pixels different kernel taps: on a flat
    # input it paints a 2-pixel period pattern. Nearest upsampling + conv cannot (away from the border).
    torch.manual_seed(0)
    flat = torch.full((1, 8, 8, 8), 0.5)
    deconv = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
    resize = ResizeConv(8, 4, bias=True)
    with torch.no_grad():
        d, r = deconv(flat)[..., 2:-2, 2:-2], resize(flat)[..., 2:-2, 2:-2]
    assert (d - d.mean(dim=(2, 3), keepdim=True)).abs().max() > 1e-3
    assert (r - r.mean(dim=(2, 3), keepdim=True)).abs().max() < 1e-6


def test_options_are_resnet_only_and_checked():
    with pytest.raises(ValueError, match="residual_output=True is an option of the resnet generator, not of 'unet'"):
        build_generator("unet", ngf=2, depth=5, residual_output=True)
    with pytest.raises(ValueError, match="unknown upsample 'bilinear'; choose one of: deconv, resize"):
        build_generator("resnet", ngf=2, upsample="bilinear")


def test_a_training_checkpoint_with_the_options_loads_for_inference(tmp_path):
    import pytorch_lightning as pl

    model = CycleGAN(ngf=4, ndf=4, n_blocks=1, d_layers=2, upsample="resize", residual_output=True)
    trainer = pl.Trainer(accelerator="cpu", logger=False, max_steps=0, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.strategy.connect(model)
    path = tmp_path / "opts.ckpt"
    trainer.save_checkpoint(path)
    G = load_generator(path, "BA")
    assert any(isinstance(m, ResizeConv) for m in G.modules()) and G.residual_output
    x = images()
    with torch.no_grad():
        assert torch.equal(G(x), model.G_BA.eval()(x))
