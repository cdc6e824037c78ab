"""The network registry (cyclegan/models/registry.py): a generator is one class plus one registry line,
and every stage (config checks, training, resume, checkpoint, export, translation) takes it from there."""

from __future__ import annotations

import re
from typing import Literal

import pytest
import torch
from conftest import TINY_CLI, compose_config, rand_img, run_cli
from torch import nn

from cyclegan.config.checks import ConfigError, validate_config
from cyclegan.inference.checkpoint import load_generator
from cyclegan.inference.translate import translate_folder
from cyclegan.models import GENERATORS, Network, build_generator, network_spec
from cyclegan.models.networks import ImageGenerator
from cyclegan.models.options import Width
from cyclegan.training.preflight import architecture_keys


class ToyGenerator(ImageGenerator):
    """A 3x3 conv, ReLU, a 1x1 conv and tanh: the smallest network that trains; ``width`` is its option."""

    def __init__(self, in_channels: Width = 3, out_channels: Width = 3, width: Width = 4,
                 activation: Literal["relu", "tanh"] = "relu") -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1),
                                   nn.ReLU() if activation == "relu" else nn.Tanh(),
                                   nn.Conv2d(width, out_channels, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(GENERATORS, "toy", Network(ToyGenerator))  # the one registry line


def test_a_registered_generator_trains_checkpoints_resumes_and_translates(toy, tmp_path, capsys):
    run = tmp_path / "run"
    run_cli(*TINY_CLI, "model.gen=toy", "+model.width=3", "logger=none", f"hydra.run.dir={run}")
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2 and ckpt["hyper_parameters"]["width"] == 3
    assert ckpt["state_dict"]["G_AB.model.0.weight"].shape == (3, 3, 3, 3)  # width 3 reached the network

    # resume in place (an added key is repeated: a run folder's stored additions are not trusted)
    run_cli("ckpt_path=last", f"hydra.run.dir={run}", "+model.width=3", "trainer.max_steps=4")
    resumed = torch.load(last, map_location="cpu", weights_only=True)
    assert resumed["global_step"] == 4
    assert not torch.equal(resumed["state_dict"]["G_AB.model.0.weight"], ckpt["state_dict"]["G_AB.model.0.weight"])
    other = tmp_path / "other"
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:  # the toy's own option is part of the architecture
        run_cli(*TINY_CLI, "model.gen=toy", "+model.width=5", "logger=none", f"ckpt_path={last}",
                f"hydra.run.dir={other}", "trainer.max_steps=6")
    assert refused.value.code == 2 and "model.width=3 in the checkpoint but 5 here" in capsys.readouterr().out

    G = load_generator(last, "AB")
    assert isinstance(G, ToyGenerator) and network_spec(G) == {"name": "toy", "options": {"width": 3}}
    photos = tmp_path / "photos"
    photos.mkdir()
    rand_img(20, 28).save(photos / "a.png")
    (out,) = translate_folder(G, photos, tmp_path / "out", device="cpu", progress=False, num_workers=0)
    assert out.name == "a.png" and out.stat().st_size > 0


def test_a_registered_generators_options_are_checked_from_its_signature(toy, tmp_path):
    assert "width" in architecture_keys() and "dropout" in architecture_keys()
    for override, fragment in (("+model.width=0", "model.width=0 must be an integer >= 1"),
                               ("+model.activation=gelu", "model.activation='gelu' is not one of: relu, tanh")):
        with pytest.raises(ConfigError, match=re.escape(fragment)):
            validate_config(compose_config(tmp_path, "model.gen=toy", override))
    with pytest.raises(ConfigError, match=re.escape("model.residual_output=True is an option of the resnet generator, "
                                                    "not of model.gen=toy")):
        validate_config(compose_config(tmp_path, "model.gen=toy", "model.residual_output=true"))


def test_aliases_pin_their_option_and_specs_keep_only_what_differs():
    assert network_spec(build_generator("resnet_9blocks", ngf=2)) == {"name": "resnet_9blocks", "options": {"ngf": 2}}
    spec = network_spec(build_generator("unet_128", ngf=2, n_blocks=6))  # a size the U-Net lacks: ignored
    assert spec == {"name": "unet_128", "options": {"ngf": 2, "depth": 7}}
    with pytest.raises(ValueError, match="generator 'unet_128' fixes depth=7, but depth=5 was given; use 'unet'"):
        build_generator("unet_128", depth=5)
    with pytest.raises(ValueError, match="generator 'resnet' has no option 'widht'"):
        build_generator("resnet", widht=3)
