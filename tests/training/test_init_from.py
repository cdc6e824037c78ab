"""model.init_from: a new training starts from given weights (a bundled painter, a training checkpoint)."""

import pytest
import torch

from cyclegan.gan.module import CycleGAN
from cyclegan.inference.checkpoint import load_generator
from cyclegan.inference.export import export_state_dict
from cyclegan.training.init_from import InitFromError, build_model, init_weights
from conftest import compose_config

PAINTER = "pretrained:photo2monet_cpu"
PAINTER_ARCH = dict(gen="resnet", ngf=32, n_blocks=6, upsample="resize", residual_output=True, ndf=8)
TINY = dict(gen="resnet", ngf=4, ndf=4, n_blocks=1)


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_bundled_painter_starts_the_generator_of_its_direction_only():
    torch.manual_seed(0)
    model = CycleGAN(**PAINTER_ARCH)
    g_ab_before = {k: v.clone() for k, v in model.G_AB.state_dict().items()}
    assert init_weights(model, PAINTER) == ["G_BA"]  # the model card says BA
    assert same(model.G_BA, load_generator(PAINTER))
    assert all(torch.equal(v, g_ab_before[k]) for k, v in model.G_AB.state_dict().items())
    assert all(p.requires_grad for p in model.G_BA.parameters())  # the model's own networks still train


def test_a_lone_generator_without_a_direction_says_how_to_give_one(tmp_path):
    source = CycleGAN(**TINY)
    path = export_state_dict(source.G_AB, tmp_path / "g.pt")  # an export that does not say its direction
    with pytest.raises(InitFromError) as err:
        init_weights(CycleGAN(**TINY), str(path))
    message = str(err.value)
    assert "\n" not in message and f"model.init_from={path}:BA" in message
    model = CycleGAN(**TINY)
    assert init_weights(model, f"{path}:AB") == ["G_AB"] and same(model.G_AB, source.G_AB)


def test_weights_that_do_not_fit_are_one_line_naming_the_key_and_both_shapes():
    with pytest.raises(InitFromError) as err:
        init_weights(CycleGAN(**TINY), PAINTER)
    message = str(err.value)
    assert "\n" not in message and "G_BA" in message and "model.init_from=null" in message
    assert "model.1.weight" in message and "[32, 3, 7, 7]" in message and "[4, 3, 7, 7]" in message


def test_a_training_checkpoint_starts_all_four_networks_and_a_resume_ignores_it(tmp_path, tiny_cfg):
    torch.manual_seed(1)
    source = CycleGAN(**TINY)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": source.state_dict(), "hyper_parameters": dict(source.hparams),
                "pytorch-lightning_version": "2.6.0"}, path)
    torch.manual_seed(2)
    model = CycleGAN(**TINY)
    assert sorted(init_weights(model, str(path))) == ["D_A", "D_B", "G_AB", "G_BA"]
    assert all(same(getattr(model, n), getattr(source, n)) for n in ("G_AB", "G_BA", "D_A", "D_B"))

    cfg = tiny_cfg(f"model.init_from={path}")
    assert same(build_model(cfg.model).G_AB, source.G_AB)
    assert not same(build_model(cfg.model, resuming=True).G_AB, source.G_AB)  # the resumed checkpoint wins


def test_the_main_job_fine_tunes_the_painter_and_real_datasets_do_not(tmp_path):
    main = compose_config(tmp_path)
    assert main.model.init_from == PAINTER
    assert (main.model.ngf, main.model.n_blocks, main.model.upsample, main.model.residual_output) == (32, 6, "resize", True)
    other = compose_config(tmp_path, "data=vangogh2photo", "model.gen=unet")
    assert other.model.init_from is None and other.model.gen == "unet" and other.model.ngf == 64
    assert other.trainer.max_time is None and other.trainer.precision == "32-true"
