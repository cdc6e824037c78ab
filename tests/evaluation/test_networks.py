"""Evaluation by direction (cyclegan.evaluation.networks): a file is scored for what it holds; a lone
generator (bundled painter, export) gives one direction, and the metrics it cannot have are n/a."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from conftest import compose_config
from cyclegan.common.errors import UserError
from cyclegan.evaluation.networks import load_for_evaluation
from cyclegan.evaluation.run import EvaluationError, evaluate
from cyclegan.inference.checkpoint import load_generator
from cyclegan.inference.export import export_generator
from cyclegan.models.spec import CycleGANNetworks

HPARAMS = {"gen": "resnet", "ngf": 4, "n_blocks": 1, "ndf": 4, "d_layers": 2, "gan_mode": "lsgan"}
EVAL = ["data.image_size=32", "data.load_size=36", "data.num_workers=0", "metrics.inception=tiny"]


def save_checkpoint(path, keep=("G_AB", "G_BA", "D_A", "D_B"), **extra):
    """A training checkpoint of a tiny CycleGAN holding only the networks in ``keep``."""
    torch.manual_seed(0)
    nets = CycleGANNetworks(HPARAMS)
    sd = {k: v for k, v in nets.state_dict().items() if k.split(".")[0] in keep}
    torch.save({"state_dict": sd, "hyper_parameters": HPARAMS, "epoch": 0, "global_step": 3,
                "pytorch-lightning_version": "2.6.0", **extra}, path)
    return path


def run(tmp_path, name, *overrides):
    cfg = compose_config(tmp_path / name, *EVAL, f"metrics.cache_dir={tmp_path / 'cache'}", *overrides,
                         config_name="evaluate")
    evaluate(cfg)
    out = tmp_path / name
    return json.loads((out / "metrics.json").read_text()), (out / "report.md").read_text()


def test_a_cyclegan_checkpoint_gives_both_directions_with_their_discriminators_and_reverses(tmp_path):
    nets, info = load_for_evaluation(save_checkpoint(tmp_path / "m.ckpt"))
    assert list(nets) == ["AB", "BA"] and info["global_step"] == 3 and info["kind"] == "lightning"
    assert nets["AB"].reverse is nets["BA"].generator and nets["BA"].reverse is nets["AB"].generator
    state = torch.load(tmp_path / "m.ckpt", weights_only=True)["state_dict"]
    torch.testing.assert_close(nets["AB"].discriminator.state_dict(),  # D_B judges A -> B
                               {k[4:]: v for k, v in state.items() if k.startswith("D_B.")})


def test_the_bundled_painter_is_evaluated_in_its_cards_direction(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        metrics, md = run(tmp_path, "painter", "ckpt_path=pretrained:photo2monet_cpu", "metrics.max_images=2")
    assert "AB" not in metrics and metrics["checkpoint"] == "pretrained:photo2monet_cpu"
    ba = metrics["BA"]
    assert ba["n_fake"] == ba["n_pairs"] == 2 and 0 < ba["ssim"] <= 1 and ba["fid"] is not None
    assert ba["cycle_l1"] is None and ba["d_accuracy"] is None and ba["d_n_fake"] == 0
    assert "no generator for the way back" in ba["not_applicable"]["cycle_l1"]
    assert "no discriminator" in ba["not_applicable"]["d_accuracy"]
    assert "| cycle L1 ↓ | n/a |" in md and "n/a for B → A: cycle_l1: pretrained:photo2monet_cpu holds" in md
    # FID/KID on 2 images: said once in the log and at the top of the report
    few = [r.getMessage() for r in caplog.records if "FID/KID on few images" in r.getMessage()]
    assert len(few) == 1 and "BA: 2 translated vs 2 real images" in few[0] and "below 100 images" in few[0]
    assert "> **Note:** FID/KID on few images" in md

    with pytest.raises(EvaluationError, match=r"translates BA only; ask for metrics.directions=\[BA\]") as e:
        run(tmp_path, "ab", "ckpt_path=pretrained:photo2monet_cpu", "metrics.directions=[AB]")
    assert "\n" not in str(e.value)


def test_an_export_carries_its_direction_and_direction_names_it_when_the_file_does_not(tmp_path):
    ckpt = save_checkpoint(tmp_path / "m.ckpt")
    export = export_generator(load_generator(ckpt, "BA"), tmp_path / "g.pt")
    assert torch.load(export, weights_only=True)["direction"] == "BA"  # as translate --export writes it
    metrics, _ = run(tmp_path, "ba", f"ckpt_path={export}")
    assert "BA" in metrics and "AB" not in metrics and metrics["BA"]["n_fake"] == 4
    both, _ = run(tmp_path, "ckpt", f"ckpt_path={ckpt}")
    for key in ("fid", "kid_mean", "ssim", "target_rate"):  # the same generator, the same numbers
        assert metrics["BA"][key] == pytest.approx(both["BA"][key], rel=1e-5), key

    anonymous = torch.load(export, weights_only=True)
    del anonymous["direction"]  # an export written before exports said their direction
    torch.save(anonymous, tmp_path / "old.pt")
    with pytest.raises(UserError, match="pass direction=AB") as e:
        run(tmp_path, "none", f"ckpt_path={tmp_path / 'old.pt'}")
    assert "\n" not in str(e.value) and "old.pt" in str(e.value)
    named, _ = run(tmp_path, "named", f"ckpt_path={tmp_path / 'old.pt'}", "direction=B2A")
    assert named["BA"]["fid"] == pytest.approx(metrics["BA"]["fid"], rel=1e-5)
    swapped, _ = run(tmp_path, "swapped", f"ckpt_path={export}", "direction=AB")  # direction= overrides the file
    assert "AB" in swapped and "BA" not in swapped


def test_a_one_direction_family_checkpoint_scores_that_direction_with_its_discriminator(tmp_path, caplog):
    """What a family such as CUT writes: ``generators`` and ``discriminators`` entries, one direction."""
    ckpt = save_checkpoint(tmp_path / "cut.ckpt", keep=("G_AB", "D_B"),
                           generators={"AB": {"prefix": "G_AB.", "spec": {}}},
                           discriminators={"AB": {"prefix": "D_B."}})
    nets, _ = load_for_evaluation(ckpt)
    assert list(nets) == ["AB"] and nets["AB"].reverse is None and nets["AB"].discriminator is not None
    with caplog.at_level(logging.INFO):
        metrics, _ = run(tmp_path, "cut", f"ckpt_path={ckpt}")
    assert "BA" not in metrics and any("B → A skipped" in r.getMessage() for r in caplog.records)
    ab = metrics["AB"]
    assert set(ab["not_applicable"]) == {"cycle_l1"} and ab["d_n_real"] == ab["d_n_fake"] == 4
    assert 0 <= ab["d_accuracy"] <= 1
