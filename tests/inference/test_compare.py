"""python -m cyclegan.compare: inputs in the first row, one row of translations per model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_ckpt, rand_img
from cyclegan.inference.compare import comparison_grid, main, pick_evenly
from cyclegan.inference.chain import load_chain
from cyclegan.inference.tiling import translate_tensor
from cyclegan.common.pixels import to_uint8

SIZE, PAD = 32, 2


@pytest.fixture()
def photos(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(6):
        rand_img(40 + i, 48, seed=i).save(d / f"p{i}.png")  # odd sizes: resized to SIZE x SIZE
    return d


def cell(grid: np.ndarray, row: int, col: int) -> np.ndarray:
    y, x = PAD + row * (SIZE + PAD), PAD + col * (SIZE + PAD)
    return grid[y : y + SIZE, x : x + SIZE]


def test_pick_evenly_spreads_over_the_sorted_files():
    files = [f"f{i}" for i in range(10)]
    assert pick_evenly(files, 3) == ["f0", "f4", "f9"] and pick_evenly(files, 20) == files


def test_the_grid_has_the_inputs_then_each_models_translations(tmp_path, photos):
    make_ckpt(tmp_path / "a.ckpt", seed=1)
    make_ckpt(tmp_path / "b.ckpt", seed=2)
    models = [load_chain([f"{tmp_path / 'a.ckpt'}:BA"]).generators[0],
              load_chain([f"{tmp_path / 'a.ckpt'}:AB", f"{tmp_path / 'b.ckpt'}:BA"])]
    files = pick_evenly(sorted(photos.iterdir()), 4)
    grid = comparison_grid(models, files, size=SIZE)
    assert grid.shape == (3 * (SIZE + PAD) + PAD, 4 * (SIZE + PAD) + PAD, 3)
    x = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB").resize((SIZE, SIZE), Image.BICUBIC)))
                     for f in files]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    for row, model in enumerate(models, start=1):
        expected = to_uint8(translate_tensor(model.eval(), x)).permute(0, 2, 3, 1).numpy()
        for col in range(4):
            assert np.array_equal(cell(grid, row, col), expected[col]), (row, col)
    assert np.array_equal(cell(grid, 0, 1), to_uint8(x).permute(0, 2, 3, 1).numpy()[1])


def test_cli_writes_a_small_jpeg_and_fails_in_one_line(tmp_path, photos, capsys):
    make_ckpt(tmp_path / "a.ckpt", seed=1)
    out = tmp_path / "grid.jpg"
    rc = main(["--ckpt", f"{tmp_path / 'a.ckpt'}:BA", "--ckpt", str(tmp_path / "a.ckpt"), "--input", str(photos),
               "--output", str(out), "--count", "3", "--size", str(SIZE), "--device", "cpu", "--no-labels"])
    assert rc == 0 and "3 inputs x 2 model(s)" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (3 * (SIZE + PAD) + PAD, 3 * (SIZE + PAD) + PAD)

    (photos / "broken.jpg").write_bytes(b"not an image")
    rc = main(["--ckpt", str(tmp_path / "a.ckpt"), "--input", str(photos), "--output", str(out), "--count", "7"])
    err = capsys.readouterr().err
    assert rc == 2 and "broken.jpg" in err and err.count("\n") == 1
    rc = main(["--ckpt", str(tmp_path / "missing.ckpt"), "--input", str(photos), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "missing.ckpt" in err and err.count("\n") == 1


def test_rows_are_labelled_with_the_checkpoints_and_columns_with_the_inputs(tmp_path, photos):
    from cyclegan.inference.compare import checkpoint_label

    assert checkpoint_label("outputs/train/run1/checkpoints/last.ckpt:BA") == "run1/last:BA"
    assert checkpoint_label("fast.ckpt", "BA") == "fast:BA"
    assert checkpoint_label("m2p.ckpt:AB,v2p.ckpt:BA") == "m2p:AB → v2p:BA"

    run = tmp_path / "outputs" / "train" / "run1" / "checkpoints"
    run.mkdir(parents=True)
    make_ckpt(run / "last.ckpt", seed=1)
    bare, labelled = tmp_path / "bare.png", tmp_path / "labelled.png"
    argv = ["--ckpt", f"{run / 'last.ckpt'}:BA", "--input", str(photos), "--count", "3", "--size", str(SIZE),
            "--device", "cpu"]
    assert main(argv + ["--output", str(bare), "--no-labels"]) == 0
    assert main(argv + ["--output", str(labelled)]) == 0
    grid, out = np.array(Image.open(bare)), np.array(Image.open(labelled))
    top, left = out.shape[0] - grid.shape[0], out.shape[1] - grid.shape[1]
    assert top > 0 and left > 0 and np.array_equal(out[top:, left:], grid)  # cells untouched, margins added
    for row in range(2):  # "input" and "run1/last:BA": dark text left of each row
        band = out[top + PAD + row * (SIZE + PAD): top + PAD + row * (SIZE + PAD) + SIZE, :left]
        assert (band < 128).any(), row
    assert (out[:top, left:] < 128).any()  # the column labels (file names)
    assert main(argv + ["--output", str(labelled), "--label", "a", "--label", "b"]) == 2  # one per --ckpt


def test_cli_refuses_a_bad_device_and_an_output_in_a_file_in_one_line(tmp_path, photos, capsys):
    make_ckpt(tmp_path / "a.ckpt", seed=1)
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for extra, needle in ((["--output", str(tmp_path / "g.jpg"), "--device", "gpu0"], "--device='gpu0'"),
                          (["--output", str(a_file / "g.jpg")], "a_file is a file"),
                          (["--output", str(tmp_path / "grid.txt")], ".jpg or .png")):
        rc = main(["--ckpt", str(tmp_path / "a.ckpt"), "--input", str(photos), "--size", str(SIZE), *extra])
        err = capsys.readouterr().err
        assert rc == 2 and needle in err and err.count("\n") == 1, (extra, err)
    assert a_file.read_text() == "" and not (tmp_path / "g.jpg").exists()
