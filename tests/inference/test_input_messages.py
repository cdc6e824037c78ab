"""Wrong inputs to translate / compare / evaluate get one line that says what is wrong with them."""

from __future__ import annotations

import pytest
import torch

from conftest import make_ckpt
from cyclegan.evaluation.networks import load_for_evaluation
from cyclegan.inference.chain import parse_spec
from cyclegan.inference.checkpoint import CheckpointError, load_generator
from cyclegan.inference.compare import main as compare_main
from cyclegan.inference.export import export_state_dict
from cyclegan.inference.translate import main as translate_main
from cyclegan.models import build_generator


def test_a_mistyped_direction_is_named_as_such_not_as_a_missing_file(tmp_path, photos, capsys):
    ckpt = tmp_path / "run.ckpt"
    make_ckpt(ckpt)
    with pytest.raises(Exception, match=r"unknown direction 'XY'.*run\.ckpt:AB"):
        parse_spec(f"{ckpt}:XY")
    assert translate_main(["--ckpt", f"{ckpt}:XY", "--input", str(photos), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown direction 'XY'" in err and "no such file" not in err and err.count("\n") == 1
    assert parse_spec(f"{ckpt}:ba")[1] == "BA"  # the accepted spellings still work


@pytest.mark.parametrize("quality", ["500", "0", "-3"])
def test_a_quality_outside_1_to_100_is_refused(quality, tmp_path, photos, capsys):
    ckpt = tmp_path / "run.ckpt"
    make_ckpt(ckpt)
    assert translate_main(["--ckpt", str(ckpt), "--input", str(photos), "--output", str(tmp_path / "o"),
                           "--quality", quality]) == 2
    assert compare_main(["--ckpt", str(ckpt), "--input", str(photos), "--output", str(tmp_path / "g.jpg"),
                         "--quality", quality]) == 2
    err = capsys.readouterr().err
    assert err.count(f"--quality {quality}") == 2 and "1 to 100" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "g.jpg").exists()


def test_weights_of_the_wrong_shape_name_the_key_and_both_shapes(tmp_path):
    g = build_generator("resnet", ngf=4, n_blocks=1)
    path = export_state_dict(g, tmp_path / "g.pt")
    obj = torch.load(path, weights_only=True)
    obj["state_dict"]["model.1.weight"] = torch.zeros(5, 3, 7, 7)
    torch.save(obj, path)
    with pytest.raises(CheckpointError) as e:
        load_generator(path)
    msg = str(e.value)
    assert "model.1.weight" in msg and "[5, 3, 7, 7]" in msg and "[4, 3, 7, 7]" in msg and "\n" not in msg


def test_gen_applies_to_bare_state_dicts_only_in_a_chain(tmp_path, photos, capsys):
    ckpt = tmp_path / "run.ckpt"
    make_ckpt(ckpt)  # a tiny resnet: its own architecture is in its hyper_parameters
    bare = tmp_path / "latest_net_G_A.pth"
    torch.manual_seed(0)
    torch.save(build_generator("resnet_6blocks").state_dict(), bare)  # the official release's layout
    out = tmp_path / "out"
    assert translate_main(["--ckpt", f"{ckpt}:AB", "--ckpt", str(bare), "--gen", "resnet_6blocks",
                           "--input", str(photos), "--output", str(out), "--quiet", "--device", "cpu"]) == 0, \
        capsys.readouterr().err
    assert (out / "p.png").is_file()


def test_evaluate_given_a_folder_says_it_is_one_and_names_its_checkpoints(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    make_ckpt(run / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointError) as e:
        load_for_evaluation(run)
    msg = str(e.value)
    assert "is a folder" in msg and str(run / "checkpoints" / "last.ckpt") in msg and "no such file" not in msg
