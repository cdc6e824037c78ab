"""model=cut / model=fastcut through train(): the real configs, tiny; checkpoints, exact resume, the grids
and plots, the validation KID, and the checkpoint going on to translation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import TINY, compose_config
from cyclegan.evaluation.run import evaluate
from cyclegan.inference.checkpoint import load_generator
from cyclegan.inference.translate import main as translate_main
from cyclegan.common.serialization import safe_load
from cyclegan.training.preflight import ResumeError, check_resume_checkpoint
from cyclegan.training.run import train

# 2 epochs of 2 steps; the rate decays over the second epoch, so a missed scheduler step shows
SCHEDULE = ["data.epoch_length=2", "model.n_epochs=1", "model.n_epochs_decay=1", "model.num_patches=32",
            "callbacks.progress_bar.refresh_rate=0", "callbacks.val_kid.num_images=2"]


def run(output_dir: Path, *overrides: str) -> dict:
    return train(compose_config(output_dir, *TINY, *SCHEDULE, *overrides))


def last(output_dir: Path) -> dict:
    return safe_load(output_dir / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("cut_uninterrupted")
    metrics = run(out, "model=cut", "trainer.max_steps=-1")  # the whole schedule: 2 epochs of 2 steps
    return out, metrics


def test_cut_trains_logs_its_losses_and_the_validation_kid_of_its_one_direction(uninterrupted):
    out, metrics = uninterrupted
    for name in ("G_GAN", "NCE", "NCE_Y", "G_loss", "D_real", "D_fake", "D_loss"):
        assert f"train/{name}_epoch" in metrics
    assert "val/kid_AB" in metrics and "val/kid_BA" not in metrics and metrics["val/kid"] == metrics["val/kid_AB"]
    ckpt = last(out)
    assert ckpt["global_step"] == 4 and set(ckpt["generators"]) == {"AB"}
    assert {k.split(".")[0] for k in ckpt["state_dict"]} == {"G", "D", "F"}
    assert (out / "loss_curves.png").is_file() and list((out / "images").glob("step_*.png"))


def test_cut_resumed_with_ckpt_path_last_ends_exactly_where_an_uninterrupted_run_ends(tmp_path, uninterrupted):
    expected = last(uninterrupted[0])
    run(tmp_path, "model=cut", "trainer.max_steps=2")
    assert last(tmp_path)["global_step"] == 2
    run(tmp_path, "model=cut", "trainer.max_steps=-1", "ckpt_path=last")  # on to the end of the schedule
    resumed = last(tmp_path)
    assert resumed["global_step"] == expected["global_step"] == 4
    for name, weight in expected["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], weight), name
    for ours, theirs in zip(resumed["optimizer_states"], expected["optimizer_states"]):
        assert ours["param_groups"][0]["lr"] == theirs["param_groups"][0]["lr"]
        for key, state in theirs["state"].items():
            assert torch.equal(ours["state"][key]["exp_avg_sq"], state["exp_avg_sq"])


def test_fastcut_trains_photo_to_painting_with_one_override_and_its_generator_translates(tmp_path):
    run(tmp_path, "model=fastcut", "model.direction=BA", "trainer.max_steps=2", "~callbacks.val_kid")
    ckpt = last(tmp_path)
    assert list(ckpt["generators"]) == ["BA"] and ckpt["hyper_parameters"]["flip_equivariance"] is True
    G = load_generator(tmp_path / "checkpoints" / "last.ckpt", direction="BA")
    weights = {k[len("G."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("G.")}
    assert all(torch.equal(G.state_dict()[k], v) for k, v in weights.items())
    x = torch.rand(1, 3, 40, 40) * 2 - 1
    assert G(x).shape == x.shape
    # without a direction, translate takes the one this checkpoint has (a CycleGAN checkpoint: AB)
    photos = Path(__file__).resolve().parents[2] / "cyclegan" / "data" / "sample" / "B"
    assert translate_main(["--ckpt", str(tmp_path / "checkpoints" / "last.ckpt"), "--input", str(photos), "--output",
                           str(tmp_path / "out"), "--quiet", "--num-workers", "0", "--no-compile"]) == 0


def test_a_cut_checkpoint_is_evaluated_in_its_direction_with_cycle_l1_not_applicable(tmp_path, uninterrupted):
    ckpt = uninterrupted[0] / "checkpoints" / "last.ckpt"
    report = evaluate(compose_config(tmp_path / "eval", f"ckpt_path={ckpt}", f"metrics.cache_dir={tmp_path / 'c'}",
                                     "data.image_size=32", "data.num_workers=0", "metrics.inception=tiny",
                                     config_name="evaluate"))
    assert "BA" not in report and report["AB"]["n_fake"] > 0 and report["AB"]["d_n_fake"] > 0  # its D judges
    assert report["AB"]["cycle_l1"] is None and "way back" in report["AB"]["not_applicable"]["cycle_l1"]


def test_translate_takes_a_cut_checkpoint_alone_and_in_a_chain_with_cyclegan(tmp_path, uninterrupted, capsys):
    ckpt = uninterrupted[0] / "checkpoints" / "last.ckpt"
    photos = Path(__file__).resolve().parents[2] / "cyclegan" / "data" / "sample" / "A"
    cyclegan = tmp_path / "cg"
    train(compose_config(cyclegan, *TINY, "trainer.max_steps=1", "~callbacks.val_kid", "trainer.limit_val_batches=0",
                         "callbacks.progress_bar.refresh_rate=0"))
    chain = [f"{cyclegan / 'checkpoints' / 'last.ckpt'}:AB", f"{cyclegan / 'checkpoints' / 'last.ckpt'}:BA", f"{ckpt}:AB"]
    args = ["--input", str(photos), "--quiet", "--num-workers", "0", "--no-compile"]
    assert translate_main(["--ckpt", str(ckpt), "--output", str(tmp_path / "out"), *args]) == 0
    assert len(list((tmp_path / "out").iterdir())) == len(list(photos.iterdir()))
    chained = [a for spec in chain for a in ("--ckpt", spec)]
    assert translate_main([*chained, "--output", str(tmp_path / "chain"), *args]) == 0
    assert translate_main(["--ckpt", str(ckpt), "--export", "ts", "--output", str(tmp_path / "g.ts")]) == 0
    capsys.readouterr()
    assert translate_main(["--ckpt", f"{ckpt}:BA", "--output", str(tmp_path / "no"), *args]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and str(ckpt) in error and "AB only" in error and "model.direction=BA" in error


def test_resuming_a_cut_checkpoint_with_another_family_is_one_line_before_anything_is_built(tmp_path, uninterrupted):
    ckpt = uninterrupted[0] / "checkpoints" / "last.ckpt"
    assert last(uninterrupted[0])["model_family"] == "cyclegan.gan.cut.CUT"
    check_resume_checkpoint(ckpt, compose_config(tmp_path, "model=cut", "data=sample", *TINY[1:]).model)
    with pytest.raises(ResumeError, match=r"trained by CUT \(cyclegan.gan.cut.CUT\), but this run builds CycleGAN"):
        check_resume_checkpoint(ckpt, compose_config(tmp_path, "data=sample").model)
