"""Inference: checkpoint loading, any-size translation, tiling, Kaggle zip, chains, CLI, safety."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cyclegan.models import build_generator
from cyclegan.inference.checkpoint import CheckpointError, load_generator, load_generators
from cyclegan.models.compile import is_compiled
from cyclegan.inference.chain import Chain, load_chain, parse_spec
from cyclegan.inference.kaggle import KaggleZipError, make_kaggle_zip
from cyclegan.inference.tiling import translate_tensor
from conftest import TINY_RESNET, RunsACommand, make_ckpt, rand_img
from cyclegan.common.imaging import to_rgb
from cyclegan.inference.batching import TranslateError, size_batches
from cyclegan.inference.translate import build_parser, main, translate_folder



# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
class Identity(nn.Module):
    """Identity 'generator' that insists on padded inputs and records the shapes it saw."""

    def __init__(self, m: int = 4):
        super().__init__()
        self.size_multiple = m
        self.shapes: list[tuple] = []

    def forward(self, x):
        assert x.shape[-2] % self.size_multiple == 0 and x.shape[-1] % self.size_multiple == 0
        self.shapes.append(tuple(x.shape))
        return x


class SmallConv(nn.Module):
    """Fully convolutional, receptive-field radius 2, zero padding: tiling must not show."""

    size_multiple = 4

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 3, 3, padding=1), nn.Tanh())

    def forward(self, x):
        return self.net(x)


def read(path):
    with Image.open(path) as im:
        return np.array(im.convert("RGB") if im.mode != "RGB" else im)


# ------------------------------------------------------------------------------------------
# any size, padding, formats
# ------------------------------------------------------------------------------------------
def test_any_size_roundtrip_identity(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    imgs = {
        "odd.png": rand_img(37, 53),
        "gray.png": rand_img(20, 31, "L", 1),
        "sub/rgba.png": rand_img(16, 9, "RGBA", 2),
        "tiny.png": rand_img(3, 2, seed=3),  # smaller than the padding: repeated reflection
    }
    pal = rand_img(11, 13, seed=4).convert("P", palette=Image.ADAPTIVE, colors=16)
    imgs["sub/pal.png"] = pal
    for name, im in imgs.items():
        im.save(src / name)
    rand_img(30, 40, seed=5).save(src / "photo.jpg", quality=90)
    (src / "notes.txt").write_text("not an image")

    g = Identity(m=8)
    written = translate_folder(g, src, out, batch_size=4, num_workers=0, progress=False)
    rel = sorted(p.relative_to(out).as_posix() for p in written)
    assert rel == sorted(list(imgs) + ["photo.jpg"])
    for name, im in imgs.items():
        res = Image.open(out / name)
        assert res.mode == "RGB" and res.size == im.size
        expected = np.array(to_rgb(im))  # transparency composited on white, as in training
        np.testing.assert_array_equal(np.array(res), expected)  # identity => exact through padding
    jpg = Image.open(out / "photo.jpg")
    assert jpg.format == "JPEG" and jpg.size == (40, 30)
    assert all(s[-2] % 8 == 0 and s[-1] % 8 == 0 for s in g.shapes)


def test_forced_ext_single_file_and_refusals(tmp_path):
    src = tmp_path / "a.jpg"
    rand_img(10, 14).save(src)
    out = translate_folder(Identity(), src, tmp_path / "o", ext="png", num_workers=0, progress=False)
    assert [p.name for p in out] == ["a.png"] and Image.open(out[0]).format == "PNG"
    one = translate_folder(Identity(), src, tmp_path / "x" / "b.webp", num_workers=0, progress=False)
    assert one[0].name == "b.webp" and Image.open(one[0]).size == (14, 10)
    with pytest.raises(TranslateError, match="overwrite the input"):
        translate_folder(Identity(), tmp_path, tmp_path, num_workers=0, progress=False)
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        translate_folder(Identity(), tmp_path / "missing_dir", tmp_path / "o2", progress=False)
    with pytest.raises(TranslateError, match="no images"):
        (tmp_path / "empty").mkdir()
        translate_folder(Identity(), tmp_path / "empty", tmp_path / "o3", progress=False)


def test_fixed_size_is_a_straight_batch(tmp_path):
    for i in range(5):
        rand_img(256, 256, seed=i).save(tmp_path / f"{i}.png")
    files = sorted(tmp_path.glob("*.png"))
    assert size_batches(files, 4, None, 4 * 512 * 512) == [[0, 1, 2, 3], [4]]
    g = Identity()
    translate_folder(g, tmp_path, tmp_path / "out", batch_size=4, num_workers=0, progress=False)
    assert g.shapes == [(4, 3, 256, 256), (1, 3, 256, 256)]


def test_mixed_sizes_grouped_and_workers(tmp_path):
    sizes = [(20, 24), (33, 17), (20, 24), (33, 17), (20, 24)]
    for i, (h, w) in enumerate(sizes):
        rand_img(h, w, seed=i).save(tmp_path / f"{i}.png")
    g = Identity()
    out = translate_folder(g, tmp_path, tmp_path / "out", batch_size=8, num_workers=2, progress=False)
    assert sorted(s[0] for s in g.shapes) == [2, 3]  # one batch per size
    for i, p in enumerate(sorted(out)):
        np.testing.assert_array_equal(read(p), read(tmp_path / f"{i}.png"))


def test_tiling_matches_whole_image():
    g = SmallConv().eval()
    x = torch.rand(2, 3, 70, 90) * 2 - 1
    ref = translate_tensor(g, x)
    for overlap in (None, 16):
        tiled = translate_tensor(g, x, tile=32, overlap=overlap, batch_size=3)
        assert tiled.shape == ref.shape
        torch.testing.assert_close(tiled, ref, atol=1e-5, rtol=1e-5)


def test_tiling_in_translate_folder(tmp_path):
    rand_img(70, 90).save(tmp_path / "big.png")
    g = SmallConv().eval()
    a = translate_folder(g, tmp_path / "big.png", tmp_path / "a", num_workers=0, progress=False)[0]
    b = translate_folder(g, tmp_path / "big.png", tmp_path / "b", tile=32, num_workers=0, progress=False)[0]
    assert np.abs(read(a).astype(int) - read(b).astype(int)).max() <= 1


def test_real_generators_any_size(tmp_path):
    """The project's generators, through padding: output has the input's size."""
    rand_img(37, 53).save(tmp_path / "x.png")
    for name, kw in (TINY_RESNET, ("unet", {"ngf": 4, "depth": 3})):
        g = build_generator(name, **kw)
        out = translate_folder(g, tmp_path / "x.png", tmp_path / name, num_workers=0, progress=False)
        assert Image.open(out[0]).size == (53, 37)


# ------------------------------------------------------------------------------------------
# Kaggle zip
# ------------------------------------------------------------------------------------------
def _kaggle_inputs(d):
    d.mkdir()
    for i in range(4):
        rand_img(256, 256, seed=i).save(d / f"photo_{i}.jpg", quality=95)
    rand_img(300, 200, seed=7).save(d / "wide.png")  # resized to 256x256
    rand_img(256, 256, "L", 8).save(d / "gray.jpg")
    return d


def test_kaggle_zip(tmp_path, monkeypatch):
    import cyclegan.inference.batching as tr

    monkeypatch.setattr(tr, "_PROCESS_POOL_MIN_IMAGES", 1)  # exercise the forked encoder processes
    monkeypatch.setattr(tr, "_PROCESS_POOL_MIN_CPUS", 1)
    photos = _kaggle_inputs(tmp_path / "photos")
    zp = make_kaggle_zip(Identity(), photos, tmp_path / "sub" / "images.zip", min_count=5, max_count=10,
                         batch_size=4, num_workers=2, progress=False)
    with zipfile.ZipFile(zp) as zf:
        names = zf.namelist()
        assert sorted(names) == sorted([f"photo_{i}.jpg" for i in range(4)] + ["wide.jpg", "gray.jpg"])
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            with Image.open(zf.open(info)) as im:
                assert (im.format, im.size, im.mode) == ("JPEG", (256, 256), "RGB")
    assert [p.name for p in zp.parent.iterdir()] == ["images.zip"]  # no temp file left


def test_compiled_kaggle_zip_pads_the_last_batch_and_writes_the_eager_images(tmp_path):
    photos = _kaggle_inputs(tmp_path / "photos")
    g = build_generator(TINY_RESNET[0], **TINY_RESNET[1])
    eager = make_kaggle_zip(copy.deepcopy(g), photos, tmp_path / "eager.zip", min_count=5, batch_size=4,
                            num_workers=0, progress=False)
    batches = []
    g.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    fast = make_kaggle_zip(g, photos, tmp_path / "fast.zip", min_count=5, batch_size=4, num_workers=0,
                           progress=False, compile={"backend": "aot_eager"})  # the compile path, without a C++ build
    assert is_compiled(g) and batches == [4, 4]  # 6 photos: the second batch of 2 was padded to 4
    with zipfile.ZipFile(eager) as ze, zipfile.ZipFile(fast) as zf:
        assert ze.namelist() == zf.namelist()
        for name in ze.namelist():
            assert np.abs(read(ze.open(name)).astype(int) - read(zf.open(name)).astype(int)).max() <= 1, name


def test_compile_defaults_to_auto_on_the_command_line_and_auto_means_large_cpu_jobs():
    from cyclegan.models.compile import COMPILE_AUTO_MIN_IMAGES, auto_compile

    base = ["--ckpt", "g.pt", "--input", "in", "--output", "out"]
    parse = build_parser().parse_args
    assert [parse(base + flag).compile for flag in ([], ["--compile"], ["--no-compile"])] == [None, True, False]
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert auto_compile("auto", cpu, COMPILE_AUTO_MIN_IMAGES) is True and auto_compile("auto", cpu, 10) is False
    assert auto_compile("auto", cuda, 7038) is False and auto_compile(True, cuda, 1) is True


@pytest.mark.parametrize("lo,hi", [(10, 20), (1, 5)])
def test_kaggle_zip_count_violation_leaves_no_zip(tmp_path, lo, hi):
    photos = _kaggle_inputs(tmp_path / "photos")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KaggleZipError, match=f"has 6 images.*between {lo} and {hi}"):
        make_kaggle_zip(Identity(), photos, out / "images.zip", min_count=lo, max_count=hi, progress=False)
    assert list(out.iterdir()) == []



def test_the_kaggle_zip_summary_flags_only_what_kaggle_would_refuse(tmp_path):
    from cyclegan.inference.kaggle import kaggle_zip_summary

    assert kaggle_zip_summary(tmp_path / "images.zip", 7038) == f"wrote 7038 images (256x256 JPEG) to {tmp_path}/images.zip"
    for count, size in ((6999, 256), (10001, 256), (7038, 128)):
        assert "NOT a valid Kaggle submission" in kaggle_zip_summary(tmp_path / "images.zip", count, size)


def test_kaggle_zip_failure_midway_leaves_no_zip(tmp_path, caplog):
    photos = _kaggle_inputs(tmp_path / "photos")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")  # skipped: 6 of 7 readable, fewer than min_count
    with pytest.raises(KaggleZipError, match="only 6 of 7 photos could be read.*at least 7"):
        make_kaggle_zip(Identity(), photos, tmp_path / "images.zip", min_count=7, num_workers=0, progress=False)
    assert not any(p.suffix in (".zip", ".part") or ".zip" in p.name for p in tmp_path.iterdir())
    assert any("broken.jpg" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_kaggle_zip_entries_are_safe_names_and_the_zip_follows_the_umask(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(["plain.jpg", "back\\slash.jpg", "dots..up.jpg", "tab\tname.png", "ünï.jpg"]):
        rand_img(256, 256, seed=i).save(photos / name)
    old = os.umask(0o027)
    try:
        zp = make_kaggle_zip(Identity(), photos, tmp_path / "images.zip", min_count=5, num_workers=0,
                             progress=False)
    finally:
        os.umask(old)
    assert zp.stat().st_mode & 0o777 == 0o640  # 0666 minus the umask, as open() would give; mkstemp gave 0600
    with zipfile.ZipFile(zp) as zf:
        names = [info.filename for info in zf.infolist()]
        raw = [info.orig_filename for info in zf.infolist()]
    assert len(names) == 5 and "plain.jpg" in names and "ünï.jpg" in names
    for name in raw:
        assert "/" not in name and "\\" not in name and ".." not in name and name.isprintable(), name
        name.encode("utf-8")


def test_kaggle_zip_refuses_a_file_name_that_is_not_utf8_in_one_line(tmp_path, capsys):
    photos = _kaggle_inputs(tmp_path / "photos")
    rand_img(256, 256).save(os.fsdecode(bytes(photos) + b"/latin1_\xe9t\xe9.jpg"))
    make_ckpt(tmp_path / "g.ckpt")
    rc = main(["--ckpt", str(tmp_path / "g.ckpt"), "--input", str(photos), "--kaggle-zip", str(tmp_path / "k.zip"),
               "--min-count", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "latin1_\\xe9t\\xe9.jpg" in err and "not valid UTF-8" in err
    assert not list(tmp_path.glob("*.zip*")) and not list(tmp_path.glob(".k*"))


def test_an_unreadable_image_among_many_is_skipped_with_a_warning_and_counted(tmp_path, caplog):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        rand_img(16, 20, seed=i).save(src / f"ok{i}.png")
    (src / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    written = translate_folder(Identity(), src, tmp_path / "out", num_workers=1, batch_size=2, progress=False)
    assert sorted(p.name for p in written) == ["ok0.png", "ok1.png", "ok2.png"]
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("bad.jpg" in m for m in messages) == 1
    assert any("skipped 1 of 4 image(s)" in m and "3 written" in m for m in messages)
    (src / "ok0.png").unlink(), (src / "ok1.png").unlink(), (src / "ok2.png").unlink()
    with pytest.raises(TranslateError, match="none of the 1 image"):  # nothing readable at all: an error
        translate_folder(Identity(), src, tmp_path / "out2", num_workers=0, progress=False)


def test_cli_refuses_bad_outputs_devices_and_sizes_in_one_line(tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    rand_img(16, 16).save(src / "a.png")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    (tmp_path / "folder.zip").mkdir()
    make_ckpt(tmp_path / "g.ckpt")
    for extra, needle in (
        (["--kaggle-zip", str(tmp_path / "folder.zip"), "--min-count", "1"], "folder.zip is a folder"),
        (["--output", str(a_file)], "is a file"),
        (["--output", str(a_file / "sub")], "is a file"),
        (["--kaggle-zip", str(a_file / "images.zip"), "--min-count", "1"], "a_file is a file"),
        (["--kaggle-zip", str(tmp_path), "--min-count", "1"], "must be a .zip"),
        (["--output", str(tmp_path / "out"), "--device", "gpu0"], "--device='gpu0' is not a device"),
        (["--output", str(tmp_path / "out"), "--device", "cuda:7"], "cuda:7"),
        (["--kaggle-zip", str(tmp_path / "k.zip"), "--min-count", "1", "--size", "128"], "256x256"),
    ):
        rc = main(["--ckpt", str(tmp_path / "g.ckpt"), "--input", str(src), "--quiet", "--num-workers", "0", *extra])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and needle in err and "Traceback" not in err, (extra, err)
    assert a_file.read_text() == "" and not (tmp_path / "out").exists() and not (tmp_path / "k.zip").exists()


# ------------------------------------------------------------------------------------------
# checkpoints and chains
# ------------------------------------------------------------------------------------------
def test_load_generator_from_lightning_ckpt(tmp_path):
    ck = tmp_path / "run.ckpt"
    g_ab, g_ba = make_ckpt(ck)
    x = torch.rand(1, 3, 16, 20) * 2 - 1
    with torch.no_grad():
        a, b = load_generator(ck, "AB"), load_generator(ck, direction="BA")
        assert not a.training
        torch.testing.assert_close(a(x), g_ab(x))
        torch.testing.assert_close(b(x), g_ba(x))
        both = load_generators(ck)
        torch.testing.assert_close(both["BA"](x), g_ba(x))
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_generator(tmp_path / "nope.ckpt")
    with pytest.raises(CheckpointError, match="direction"):
        load_generator(ck, "AC")


def test_reference_state_dict(tmp_path):
    torch.manual_seed(1)
    g = build_generator("resnet", ngf=4, n_blocks=2)
    torch.save(g.state_dict(), tmp_path / "latest_net_G_A.pth")
    h = load_generator(tmp_path / "latest_net_G_A.pth", gen="resnet", ngf=4, n_blocks=2)
    x = torch.rand(1, 3, 12, 12) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(h(x), g.eval()(x))
    with pytest.raises(CheckpointError, match="weights"):  # wrong architecture: one-line error
        load_generator(tmp_path / "latest_net_G_A.pth", gen="resnet", ngf=8, n_blocks=2)


def test_chain_equals_sequence(tmp_path):
    a, b = tmp_path / "monet2photo.ckpt", tmp_path / "vangogh2photo.ckpt"
    a_ab, _ = make_ckpt(a, seed=1)
    _, b_ba = make_ckpt(b, "unet", {"ngf": 4, "depth": 3}, seed=2)
    chain = load_chain([f"{a}:AB", f"{b}:BA"])
    assert isinstance(chain, Chain) and chain.size_multiple == 8
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(chain(x), b_ba(a_ab(x)))
    # any size through the chain: padded once to lcm(4, 8)
    y = translate_tensor(chain, torch.rand(1, 3, 13, 21) * 2 - 1)
    assert y.shape == (1, 3, 13, 21)


def test_parse_spec():
    assert parse_spec("runs/m2p.ckpt:BA") == (parse_spec("runs/m2p.ckpt")[0], "BA")
    assert parse_spec("runs/m2p.ckpt")[1] == "AB"
    assert parse_spec("C:/x/m.ckpt:ab")[1] == "AB"
    assert str(parse_spec("C:/x/m.ckpt", "BA")[0]) == "C:/x/m.ckpt"


def test_malicious_pickle_refused(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"G_AB.x": RunsACommand(marker)}, "hyper_parameters": {"gen": "resnet"}}, evil)
    with pytest.raises(CheckpointError) as exc:
        load_generator(evil)
    msg = str(exc.value)
    assert "arbitrary code" in msg and "weights_only" in msg and "system" in msg and "\n" not in msg
    assert "weights_only=False" not in msg  # no advice to unpickle a file that runs a shell command
    assert not marker.exists()
    rc = main(["--ckpt", str(evil), "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "arbitrary code" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not marker.exists()


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------
def test_cli_help_subprocess():
    r = subprocess.run([sys.executable, "-m", "cyclegan.translate", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0
    for s in ("--kaggle-zip", "--export", "--tile", "examples:", "vangogh2photo.ckpt:BA"):
        assert s in r.stdout


def test_cli_run_and_errors(tmp_path, capsys):
    ck = tmp_path / "m2p.ckpt"
    _, g_ba = make_ckpt(ck)
    src = tmp_path / "photos"
    src.mkdir()
    rand_img(21, 30).save(src / "a.png")
    rand_img(16, 16, seed=1).save(src / "b.jpg")
    rc = main(["--ckpt", str(ck), "--direction", "BA", "--input", str(src), "--output", str(tmp_path / "out"),
               "--batch-size", "2", "--num-workers", "0", "--quiet", "--ext", "png"])
    assert rc == 0
    assert Image.open(tmp_path / "out" / "a.png").size == (30, 21)
    expect = translate_folder(g_ba, src / "a.png", tmp_path / "ref.png", num_workers=0, progress=False)[0]
    np.testing.assert_array_equal(read(tmp_path / "out" / "a.png"), read(expect))

    rc = main(["--ckpt", f"{ck}:AB", "--ckpt", f"{ck}:BA", "--input", str(src), "--kaggle-zip",
               str(tmp_path / "images.zip"), "--min-count", "1", "--num-workers", "0", "--quiet"])
    assert rc == 0 and len(zipfile.ZipFile(tmp_path / "images.zip").namelist()) == 2
    last = capsys.readouterr().out.strip().splitlines()[-1]  # how many, where, and that Kaggle would refuse it
    assert f"wrote 2 images (256x256 JPEG) to {tmp_path / 'images.zip'}" in last
    assert "NOT a valid Kaggle submission" in last and "7,000" in last

    for argv, needle in (
        (["--ckpt", str(tmp_path / "missing.ckpt"), "--input", str(src), "--output", "o"], "missing.ckpt"),
        (["--ckpt", str(ck), "--input", str(tmp_path / "nowhere"), "--output", "o"], "nowhere"),
        (["--ckpt", str(ck), "--input", str(src)], "--output is required"),
        (["--ckpt", str(ck), "--input", str(src), "--kaggle-zip", str(tmp_path / "k.zip")], "between 7000"),
        (["--ckpt", str(ck), "--input", str(src), "--kaggle-zip", str(tmp_path / "k.zip")], "--min-count 2"),
        (["--ckpt", str(ck), "--input", str(src), "--output", "o", "--ext", "gif"], "extension"),
    ):
        rc = main(argv + ["--quiet"])
        err = capsys.readouterr().err
        assert rc == 2 and needle in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "k.zip").exists()
