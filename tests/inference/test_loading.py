"""What the inference loader agrees to load: weights only by default, TorchScript only when asked for."""

from __future__ import annotations

import datetime
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.inference.checkpoint import CheckpointError, load_generator
from cyclegan.inference.compare import main as compare_main
from cyclegan.inference.export import export_torchscript
from cyclegan.inference.translate import main as translate_main
from cyclegan.models import build_generator
from cyclegan.common.serialization import safe_load


@pytest.fixture()
def scripted(tmp_path):
    """A TorchScript generator saved under a checkpoint's name (model.ckpt), and an input folder."""
    torch.manual_seed(0)
    g = build_generator("resnet", ngf=4, n_blocks=1).eval()
    ts = export_torchscript(g, tmp_path / "g.ts")
    disguised = tmp_path / "model.ckpt"
    shutil.copy(ts, disguised)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(photos / "p.png")
    return g, disguised, photos


def _one_line_refusal(text: str) -> bool:
    return "TorchScript" in text and "--allow-torchscript" in text and text.strip().count("\n") == 0


def test_a_torchscript_file_named_like_a_checkpoint_is_refused_by_every_loader(scripted, tmp_path, capsys):
    _, disguised, photos = scripted
    with pytest.raises(CheckpointError) as e:
        load_generator(disguised)
    assert _one_line_refusal(str(e.value))

    out = tmp_path / "out"
    assert translate_main(["--ckpt", str(disguised), "--input", str(photos), "--output", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert _one_line_refusal(err) and "Traceback" not in err and not out.exists()

    grid = tmp_path / "grid.jpg"
    assert compare_main(["--ckpt", str(disguised), "--input", str(photos), "--output", str(grid), "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert _one_line_refusal(err) and not grid.exists()

    # train.py's resume check and evaluate.py read files with safe_load: refused there too
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        safe_load(disguised)


def test_torchscript_is_loaded_when_the_user_asks_for_it(scripted, tmp_path, capsys):
    g, disguised, photos = scripted
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    for loaded in (load_generator(disguised, allow_torchscript=True), load_generator(tmp_path / "g.ts",
                                                                                     allow_torchscript=True)):
        torch.testing.assert_close(loaded(x), g(x), atol=1e-6, rtol=1e-5)
    out = tmp_path / "out"
    assert translate_main(["--ckpt", str(disguised), "--allow-torchscript", "--input", str(photos),
                           "--output", str(out), "--quiet", "--device", "cpu"]) == 0
    assert (out / "p.png").is_file()


def test_a_harmless_foreign_object_gets_advice_that_never_unpickles_code(tmp_path):
    # (a pickle that runs a command gets no advice at all: tests/inference/test_untrusted_files.py)
    odd = tmp_path / "odd.ckpt"
    torch.save({"state_dict": {}, "saved": datetime.datetime(2026, 12, 1)}, odd)
    with pytest.raises(CheckpointError, match=r"datetime\.datetime.*safe_globals\(\[datetime\.datetime\]\)") as e:
        safe_load(odd)
    assert "weights_only=False" not in str(e.value)
