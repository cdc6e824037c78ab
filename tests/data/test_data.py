"""Data layer tests: every source layout on synthetic data in tmp_path, offline, CPU."""

from __future__ import annotations

import io
import os
import shutil
import struct
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

import cyclegan.data.download as dl
from conftest import compose_config
from cyclegan.data import (
    BERKELEY_URL,
    DatasetNotFoundError,
    UnpairedDataModule,
    build_transforms,
    download_berkeley,
    sample_dir,
    scan_images,
)
from cyclegan.common.imaging import ImageLoadError, load_image
from cyclegan.data.tfrecord import crc32c, index_records, iter_examples, iter_records, masked_crc32c, parse_example

CONF_DATA = Path(__file__).resolve().parents[2] / "conf" / "data"


# ----------------------------------------------------------------------------- helpers
def make_image(path: Path, size=(40, 30), color=None, mode="RGB", fmt=None, **save_kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if color is None:  # a distinct colour per file name
        h = abs(hash(path.name)) % (256**3)
        color = (h & 255, (h >> 8) & 255, (h >> 16) & 255)
    Image.new("RGB", size, color).convert(mode).save(path, format=fmt, **save_kw)
    return path


def make_domain(folder: Path, n: int, prefix: str, size=(40, 30)) -> list[Path]:
    return [make_image(folder / f"{prefix}{i:03d}.jpg", size=size, color=(i * 10 % 256, 50, 200 - i)) for i in range(n)]


def make_berkeley(root: Path, n_train=(5, 3), n_test=(2, 4)) -> Path:
    make_domain(root / "trainA", n_train[0], "a")
    make_domain(root / "trainB", n_train[1], "b")
    make_domain(root / "testA", n_test[0], "ta")
    make_domain(root / "testB", n_test[1], "tb")
    return root


def dm_kwargs(**kw):
    base = dict(image_size=16, load_size=20, batch_size=2, num_workers=0, pin_memory=False, persistent_workers=False)
    base.update(kw)
    return base


# tiny independent TFRecord / tf.train.Example writer (bitwise CRC, hand-rolled protobuf)
def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    c = _crc32c_bitwise(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:  # length-delimited field
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def encode_example(features: dict, packed: bool = True) -> bytes:
    entries = b""
    for key, values in features.items():
        if isinstance(values[0], bytes):
            feature = _ld(1, b"".join(_ld(1, v) for v in values))
        elif isinstance(values[0], float):
            feature = _ld(2, _ld(1, b"".join(struct.pack("<f", v) for v in values)))
        elif packed:
            feature = _ld(3, _ld(1, b"".join(_varint(v) for v in values)))
        else:
            feature = _ld(3, b"".join(_varint(1 << 3 | 0) + _varint(v) for v in values))
        entries += _ld(1, _ld(1, key.encode()) + _ld(2, feature))
    return _ld(1, entries)


def write_tfrecord(path: Path, records: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for r in records:
            length = struct.pack("<Q", len(r))
            f.write(length + struct.pack("<I", _masked(length)) + r + struct.pack("<I", _masked(r)))
    return path


def jpeg_bytes(color, size=(24, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


def kaggle_records(n: int, prefix: str) -> list[bytes]:
    return [
        encode_example({"image_name": [f"{prefix}{i}".encode()], "image": [jpeg_bytes((i * 30, 0, 0))],
                        "target": [b"monet"]})
        for i in range(n)
    ]


def check_item(item, size):
    for k in ("A", "B"):
        t = item[k]
        assert t.shape == (3, size, size) and t.dtype == torch.float32
        assert t.min() >= -1.0 and t.max() <= 1.0
    assert isinstance(item["A_path"], str) and isinstance(item["B_path"], str)


# ----------------------------------------------------------------------------- scanning
def test_scan_recursive_mixed_case_sorted(tmp_path):
    for rel in ["z.JPG", "a/b.Png", "a/deep/c.jpeg", "d.webp", "e.BMP", "f.JpEg"]:
        ext = rel.rsplit(".", 1)[1].lower()
        make_image(tmp_path / rel, fmt={"png": "PNG", "webp": "WEBP", "bmp": "BMP"}.get(ext, "JPEG"))
    (tmp_path / "notes.txt").write_text("x")
    make_image(tmp_path / ".hidden.jpg", fmt="JPEG")
    (tmp_path / "._z.JPG").write_bytes(b"resource fork")  # macOS junk, not an image
    make_image(tmp_path / "__MACOSX" / "x.jpg")
    found = scan_images(tmp_path)
    rel = [os.path.relpath(p, tmp_path) for p in found]
    assert rel == sorted(rel)
    expected = {"z.JPG", os.path.join("a", "b.Png"), os.path.join("a", "deep", "c.jpeg"), "d.webp", "e.BMP", "f.JpEg"}
    assert set(rel) == expected


# ----------------------------------------------------------------------------- berkeley
def test_berkeley_splits_lengths_and_items(tmp_path):
    root = make_berkeley(tmp_path / "toy")
    dm = UnpairedDataModule(**dm_kwargs(name="toy", source="berkeley", root=str(root), val_size=3))
    dm.setup("fit")
    assert len(dm.data_train) == 5  # max(|A|=5, |B|=3)
    assert len(dm.files("train", "A")) == 5 and len(dm.files("test", "B")) == 4
    assert len(dm.files("val", "A")) == 2 and len(dm.files("val", "B")) == 3  # fixed subset of the test split
    assert set(dm.files("val", "B")) <= set(dm.files("test", "B"))
    assert len(dm.data_val) == 3
    for i in range(len(dm.data_train)):
        item = dm.data_train[i]
        check_item(item, 16)
        assert item["A_path"] == dm.files("train", "A")[i % 5]
        assert item["B_path"] in dm.files("train", "B")
    batch = next(iter(dm.train_dataloader()))
    assert batch["A"].shape == (2, 3, 16, 16) and len(batch["B_path"]) == 2
    dm.setup("test")
    assert len(dm.data_test) == 4
    assert len(dm.test_dataloader()) == 2

    dm2 = UnpairedDataModule(**dm_kwargs(name="toy", source="berkeley", root=str(root), epoch_length=11))
    dm2.setup("fit")
    assert len(dm2.data_train) == 11
    assert dm2.data_train[10]["A_path"] == dm2.files("train", "A")[10 % 5]
    # nested one level too deep (zip unpacked into root) is accepted
    nested = tmp_path / "outer"
    shutil.copytree(root, nested / "toy")
    dm3 = UnpairedDataModule(**dm_kwargs(name="toy", source="berkeley", root=str(nested)))
    assert len(dm3.files("train", "A")) == 5


def test_b_random_a_by_index(tmp_path):
    root = tmp_path / "ds"
    make_domain(root / "trainA", 4, "a", size=(8, 8))
    make_domain(root / "trainB", 25, "b", size=(8, 8))
    make_domain(root / "testA", 1, "a", size=(8, 8))
    make_domain(root / "testB", 1, "b", size=(8, 8))

    def sequence(seed, passes=2, global_seed=0, **kw):
        torch.manual_seed(global_seed)
        dm = UnpairedDataModule(**dm_kwargs(name="ds", source="berkeley", root=str(root), image_size=8, load_size=8,
                                            seed=seed, **kw))
        dm.setup("fit")
        ds = dm.data_train
        out = []
        for _ in range(passes):
            out.append([(ds[i]["A_path"], ds[i]["B_path"]) for i in range(len(ds))])
        return out

    e1, e2 = sequence(seed=1)
    assert len(e1) == 25
    assert [a for a, _ in e1] == [a for a, _ in e2]  # A by index, every epoch
    assert [b for _, b in e1] != [b for _, b in e2]  # B differs across epochs
    assert len({b for _, b in e1 + e2}) > 5
    f1, _ = sequence(seed=2)
    assert [b for _, b in f1] != [b for _, b in e1]  # ... and across seeds
    g1, g2 = sequence(seed=1)
    assert (g1, g2) == (e1, e2)  # reproducible for a fixed global + data seed
    (s1,) = sequence(seed=1, passes=1, serial_batches=True)
    files_b = sorted({b for _, b in e1 + e2 + f1} | {b for _, b in s1})
    assert [b for _, b in s1] == [files_b[i % 25] for i in range(25)]


def test_workers_draw_different_b(tmp_path):
    root = tmp_path / "ds"
    make_domain(root / "trainA", 8, "a", size=(8, 8))
    make_domain(root / "trainB", 40, "b", size=(8, 8))
    dm = UnpairedDataModule(**dm_kwargs(name="ds", source="folders", dir_a=str(root / "trainA"),
                                        dir_b=str(root / "trainB"), image_size=8, load_size=8, batch_size=1,
                                        num_workers=2, val_size=2))
    torch.manual_seed(0)
    paths = [b["B_path"][0] for b in dm.train_dataloader()]
    assert len(paths) == 38  # max(|A| = 8 - 2 held out, |B| = 40 - 2)
    # batches alternate between the two workers; their B draws must not be the same stream
    assert paths[0::2] != paths[1::2]


def test_eval_pipeline_deterministic_and_domain_dataset(tmp_path):
    root = make_berkeley(tmp_path / "toy", n_test=(2, 5))
    dm = UnpairedDataModule(**dm_kwargs(name="toy", source="berkeley", root=str(root), flip=True, rotate=30,
                                        color_jitter=0.4))
    dm.setup("test")
    ds = dm.data_test
    assert len(ds) == 5
    for i in range(len(ds)):
        x, y = ds[i], ds[i]
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"])
        assert x["A_path"] == dm.files("test", "A")[i % 2] and x["B_path"] == dm.files("test", "B")[i]
        check_item(x, 16)
    dd = dm.domain_dataset("train", "B")
    assert len(dd) == 3
    item = dd[0]
    assert set(item) == {"image", "path"}
    assert item["image"].shape == (3, 16, 16) and item["path"] == dm.files("train", "B")[0]
    assert torch.equal(dd[1]["image"], dd[1]["image"])


def test_eval_size_resizes_validation_and_test_images_but_not_training_crops(tmp_path):
    """data.eval_size: a run that crops at the images' own scale validates at that scale."""
    root = make_berkeley(tmp_path / "toy")
    default = UnpairedDataModule(**dm_kwargs(name="toy", source="berkeley", root=str(root)))
    assert default.eval_size == default.image_size == 16
    dm = UnpairedDataModule(**dm_kwargs(name="toy", source="berkeley", root=str(root), eval_size=20))
    dm.setup("fit")
    dm.setup("test")
    check_item(dm.data_train[0], 16)
    check_item(dm.data_val[0], 20)
    check_item(dm.data_test[0], 20)
    assert dm.domain_dataset("train", "A")[0]["image"].shape == (3, 20, 20)  # what the domain classifier sees
    with pytest.raises(ValueError, match="data.eval_size must be positive"):
        UnpairedDataModule(**dm_kwargs(name="toy", source="berkeley", root=str(root), eval_size=-1))


# ----------------------------------------------------------------------------- kaggle / folders / sample
def test_kaggle_holdout_deterministic(tmp_path):
    root = tmp_path / "kaggle_monet"
    make_domain(root / "monet_jpg", 10, "m")
    make_domain(root / "photo_jpg", 12, "p")
    dm = UnpairedDataModule(**dm_kwargs(name="k", source="kaggle", root=str(root), val_size=3))
    dm.setup()
    for d, n in (("A", 10), ("B", 12)):
        train, val, test = (dm.files(s, d) for s in ("train", "val", "test"))
        assert len(val) == 3 and val == test
        assert len(train) == n - 3 and not set(train) & set(val)
    assert len(dm.data_train) == 9 and len(dm.data_val) == 3
    # same hold-out from another location and another instance
    other = tmp_path / "elsewhere"
    shutil.copytree(root, other)
    dm2 = UnpairedDataModule(**dm_kwargs(name="k", source="kaggle", root=str(other), val_size=3))
    assert [Path(p).name for p in dm2.files("val", "A")] == [Path(p).name for p in dm.files("val", "A")]



def _kaggle_data(folder: Path, tfrec: bool = False) -> None:
    if tfrec:
        write_tfrecord(folder / "monet_tfrec" / "monet00-3.tfrec", kaggle_records(3, "m"))
        write_tfrecord(folder / "photo_tfrec" / "photo00-4.tfrec", kaggle_records(4, "p"))
    else:
        make_domain(folder / "monet_jpg", 3, "m")
        make_domain(folder / "photo_jpg", 4, "p")


@pytest.mark.parametrize("overrides,tfrec", [(["data=kaggle_monet"], False), (["data=kaggle_monet_tfrec"], True),
                                              (["experiment=kaggle_monet_resnet"], False)])
@pytest.mark.parametrize("layout", ["kaggle_input", "the_folder_itself", "former_name"])
def test_kaggle_configs_find_the_competitions_own_folders(tmp_path, overrides, tfrec, layout):
    # Kaggle mounts the competition at /kaggle/input/gan-getting-started/{monet_jpg,photo_jpg,...}
    kaggle_input = tmp_path / "kaggle" / "input"
    data_dir, folder = {
        "kaggle_input": (kaggle_input, kaggle_input / "gan-getting-started"),
        "the_folder_itself": (kaggle_input / "gan-getting-started", kaggle_input / "gan-getting-started"),
        "former_name": (tmp_path / "data", tmp_path / "data" / "kaggle_monet"),
    }[layout]
    _kaggle_data(folder, tfrec)
    cfg = compose_config(tmp_path, *overrides, f"paths.data_dir={data_dir}", "data.val_size=1")
    dm = instantiate(cfg.data)
    assert len(dm.files("train", "A")) == 2 and len(dm.files("train", "B")) == 3
    assert all(p.startswith(str(folder)) for p in dm.files("train", "B"))


@pytest.mark.parametrize("option", ["kaggle_monet", "kaggle_monet_tfrec"])
def test_kaggle_data_not_found_says_which_key_to_set(tmp_path, option):
    (tmp_path / "input" / "other-competition").mkdir(parents=True)
    cfg = compose_config(tmp_path, f"data={option}", f"paths.data_dir={tmp_path / 'input'}")
    with pytest.raises(DatasetNotFoundError) as e:
        instantiate(cfg.data).setup()
    msg = str(e.value)
    assert "\n" not in msg and "paths.data_dir" in msg and "data.root" in msg
    assert str(tmp_path / "input" / "gan-getting-started") in msg and "other-competition/" in msg


def test_folders_with_and_without_test_dirs(tmp_path):
    make_domain(tmp_path / "cats" / "x", 6, "c")  # nested
    make_domain(tmp_path / "dogs", 4, "d")
    make_domain(tmp_path / "cats_test", 2, "ct")
    dm = UnpairedDataModule(**dm_kwargs(name="f", source="folders", root=str(tmp_path), dir_a="cats",
                                        dir_b="dogs", val_size=2))
    assert len(dm.files("train", "A")) == 4 and len(dm.files("val", "B")) == 2
    dm = UnpairedDataModule(**dm_kwargs(name="f", source="folders", dir_a=str(tmp_path / "cats"),
                                        dir_b=str(tmp_path / "dogs"), test_dir_a=str(tmp_path / "cats_test"),
                                        val_size=1))
    assert len(dm.files("train", "A")) == 6 and len(dm.files("test", "A")) == 2 and len(dm.files("val", "A")) == 1
    assert len(dm.files("train", "B")) == 3  # B has no test dir: hold-out
    dm.setup()
    check_item(dm.data_train[0], 16)


def test_sample_source():
    folder = sample_dir()
    assert (folder / "SOURCES.md").is_file()
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 400_000
    dm = UnpairedDataModule(**dm_kwargs(name="sample", source="sample", root=None, val_size=4))
    dm.setup()
    assert len(dm.files("train", "A")) + len(dm.files("val", "A")) == len(scan_images(folder / "A")) >= 25
    assert len(dm.files("val", "B")) == 4
    check_item(dm.data_train[0], 16)
    check_item(dm.data_val[0], 16)


# ----------------------------------------------------------------------------- tfrecord
def test_tfrecord_reader_roundtrip_and_corruption(tmp_path):
    assert crc32c(b"123456789") == 0xE3069283
    assert masked_crc32c(b"abc") == _masked(b"abc")
    recs = [
        encode_example({"image_name": [b"x0"], "f": [0.5, -2.0], "i": [3, -1, 1 << 40], "image": [b"\x00\xff"]}),
        encode_example({"i": [7, 300]}, packed=False),
        encode_example({"image_name": [b"x2"]}),
    ]
    path = write_tfrecord(tmp_path / "t.tfrec", recs)
    ex = [parse_example(r) for r in iter_records(path)]
    assert ex[0]["image_name"] == [b"x0"] and ex[0]["image"] == [b"\x00\xff"]
    assert ex[0]["f"] == [0.5, -2.0] and ex[0]["i"] == [3, -1, 1 << 40]
    assert ex[1]["i"] == [7, 300] and ex[2] == {"image_name": [b"x2"]}
    assert len(index_records(path)) == 3

    data = bytearray(path.read_bytes())
    data[12 + 5] ^= 0xFF  # corrupt the payload of record 0
    bad = tmp_path / "bad.tfrec"
    bad.write_bytes(bytes(data) + b"\x01\x02\x03")  # and a truncated tail
    with pytest.warns(UserWarning) as rec:
        names = [e.get("image_name") for e in iter_examples(bad)]
    assert names == [None, [b"x2"]]  # record 0 skipped, record 1 has no name
    msgs = " ".join(str(w.message) for w in rec)
    assert "corrupt" in msgs and "truncated" in msgs


def test_tfrecord_datamodule(tmp_path):
    root = tmp_path / "kaggle_monet"
    write_tfrecord(root / "monet_tfrec" / "monet00-4.tfrec", kaggle_records(4, "m"))
    write_tfrecord(root / "monet_tfrec" / "monet01-3.tfrec", kaggle_records(3, "n"))
    write_tfrecord(root / "photo_tfrec" / "photo00-5.tfrec", kaggle_records(5, "p"))
    dm = UnpairedDataModule(**dm_kwargs(name="tf", source="tfrecord", root=str(root), val_size=2))
    dm.setup()
    assert len(dm.files("train", "A")) == 5 and len(dm.files("val", "A")) == 2
    assert len(dm.files("train", "B")) == 3
    assert all("#" in p and ".tfrec" in p for p in dm.files("train", "A"))
    item = dm.data_train[0]
    check_item(item, 16)
    assert item["A_path"] == dm.files("train", "A")[0]
    assert dm.domain_dataset("val", "B")[0]["image"].shape == (3, 16, 16)


# ----------------------------------------------------------------------------- decoding
@pytest.mark.parametrize(
    "mode,fmt,ext",
    [("L", "PNG", "png"), ("LA", "PNG", "png"), ("RGBA", "PNG", "png"), ("P", "PNG", "png"), ("1", "BMP", "bmp"),
     ("CMYK", "JPEG", "jpg"), ("RGBA", "WEBP", "webp")],
)
def test_modes_become_rgb(tmp_path, mode, fmt, ext):
    p = make_image(tmp_path / f"x.{ext}", color=(200, 100, 50), mode=mode, fmt=fmt)
    im = load_image(p)
    assert im.mode == "RGB" and im.size == (40, 30)
    t = build_transforms(16, 16, train=False)(image=np.asarray(im))["image"]
    assert t.shape == (3, 16, 16)


def test_special_modes(tmp_path):
    p16 = tmp_path / "g16.png"
    Image.fromarray(np.full((6, 5), 65535, np.uint16)).save(p16)
    assert Image.open(p16).mode == "I;16"
    im = load_image(p16)
    assert im.mode == "RGB" and np.asarray(im).min() == 255
    pt = tmp_path / "pt.png"
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.save(pt, transparency=0)
    assert np.asarray(load_image(pt)).min() == 255  # fully transparent -> white, not black
    rgba = tmp_path / "a.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(rgba)
    assert tuple(np.asarray(load_image(rgba))[0, 0]) == (255, 255, 255)


def test_exif_orientation_and_draft(tmp_path):
    p = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    Image.new("RGB", (40, 20), (10, 20, 30)).save(p, exif=exif)
    assert load_image(p).size == (20, 40)
    big = make_image(tmp_path / "big.jpg", size=(1600, 800), fmt="JPEG")
    im = load_image(big, draft_size=100)
    assert im.size[0] < 1600 and min(im.size) >= 100


def test_corrupt_image_raises_naming_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        load_image(bad)
    good = make_image(tmp_path / "trunc.jpg", size=(64, 64), fmt="JPEG").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageLoadError, match="trunc.jpg"):
        load_image(tmp_path / "trunc.jpg")
    # through a dataset too
    make_domain(tmp_path / "A", 2, "a")
    make_domain(tmp_path / "B", 2, "b")
    bad.replace(tmp_path / "A" / "zz_broken.jpg")
    dm = UnpairedDataModule(**dm_kwargs(name="f", source="folders", dir_a=str(tmp_path / "A"),
                                        dir_b=str(tmp_path / "B"), val_size=0,
                                        bad_image_policy="raise"))  # default "skip": tests/data/test_datasets.py
    dm.setup("fit")
    with pytest.raises(ImageLoadError, match="zz_broken.jpg"):
        dm.data_train[2]


def test_transforms():
    img = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    tr = build_transforms(32, 40, train=True, flip=True, rotate=15, color_jitter=0.3)
    out = tr(image=img)["image"]
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32 and out.min() >= -1 and out.max() <= 1
    te = build_transforms(32, 40, train=False)
    a, b = te(image=img)["image"], te(image=img)["image"]
    assert torch.equal(a, b) and a.shape == (3, 32, 32)
    white = te(image=np.full((8, 8, 3), 255, np.uint8))["image"]
    assert torch.allclose(white, torch.ones_like(white))
    with pytest.raises(ValueError, match="load_size"):
        build_transforms(32, 16, train=True)


# ----------------------------------------------------------------------------- errors
def test_errors(tmp_path):
    with pytest.raises(ValueError, match=r"load_size.*image_size"):
        UnpairedDataModule(**dm_kwargs(name="x", source="sample", image_size=64, load_size=32))
    with pytest.raises(ValueError, match="source"):
        UnpairedDataModule(**dm_kwargs(name="x", source="nope", root=str(tmp_path)))
    with pytest.raises(ValueError, match="dir_a"):
        UnpairedDataModule(**dm_kwargs(name="f", source="folders"))

    dm = UnpairedDataModule(**dm_kwargs(name="horse2zebra", source="berkeley", root=str(tmp_path / "horse2zebra")))
    with pytest.raises(DatasetNotFoundError) as e:
        dm.setup("fit")
    msg = str(e.value)
    assert BERKELEY_URL.format(name="horse2zebra") in msg and "paths.data_dir" in msg
    assert str(tmp_path / "horse2zebra") in msg and "trainA" in msg

    dm = UnpairedDataModule(**dm_kwargs(name="kaggle_monet", source="kaggle", root=str(tmp_path / "km")))
    with pytest.raises(DatasetNotFoundError, match="monet_jpg.*kaggle"):
        dm.setup()

    (tmp_path / "empty" / "sub").mkdir(parents=True)
    make_domain(tmp_path / "full", 2, "f")
    dm = UnpairedDataModule(**dm_kwargs(name="f", source="folders", dir_a=str(tmp_path / "full"),
                                        dir_b=str(tmp_path / "empty")))
    with pytest.raises(DatasetNotFoundError) as e:
        dm.setup()
    assert str(tmp_path / "empty") in str(e.value) and "Accepted layouts" in str(e.value)


# ----------------------------------------------------------------------------- download (no network)
class _FakeResponse(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def _zip_bytes(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for split in ("trainA", "trainB", "testA", "testB"):
            for i in range(2):
                zf.writestr(f"{name}/{split}/{i}.jpg", jpeg_bytes((i * 90, 10, 10)))
    return buf.getvalue()


def test_download_offline(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise URLError("no network")

    monkeypatch.setattr(dl, "urlopen", offline)
    with pytest.raises(RuntimeError) as e:
        download_berkeley("horse2zebra", tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and BERKELEY_URL.format(name="horse2zebra") in msg
    assert str(tmp_path / "horse2zebra.zip") in msg and str(tmp_path / "horse2zebra" / "trainA") in msg
    assert list(tmp_path.iterdir()) == []  # no partial files left behind
    dm = UnpairedDataModule(**dm_kwargs(name="horse2zebra", source="berkeley", root=str(tmp_path / "horse2zebra"),
                                        download=True))
    with pytest.raises(RuntimeError, match="offline"):
        dm.prepare_data()


def test_download_and_unpack(tmp_path, monkeypatch):
    payload = _zip_bytes("toyset")
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return _FakeResponse(payload)

    monkeypatch.setattr(dl, "urlopen", fake_urlopen)
    data_dir = tmp_path / "data"
    dm = UnpairedDataModule(**dm_kwargs(name="toyset", source="berkeley", root=str(data_dir / "toyset"),
                                        download=True))
    dm.prepare_data()
    assert calls == [BERKELEY_URL.format(name="toyset")]
    assert sorted(p.name for p in data_dir.iterdir()) == ["toyset"]  # zip and temp files gone
    dm.setup()
    assert len(dm.files("train", "A")) == 2 and len(dm.files("test", "B")) == 2
    dm.prepare_data()  # already there: no second download
    assert len(calls) == 1
    # a zip copied by hand is unpacked without network
    monkeypatch.setattr(dl, "urlopen", lambda *a, **k: pytest.fail("network used"))
    (data_dir / "other.zip").write_bytes(_zip_bytes("other"))
    out = download_berkeley("other", data_dir, progress=False)
    assert (out / "trainB" / "1.jpg").is_file() and not (data_dir / "other.zip").exists()


# ----------------------------------------------------------------------------- Hydra configs
def test_hydra_configs_instantiate(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DATA, conf / "data")
    (conf / "cfg.yaml").write_text(f"defaults:\n  - data: sample\n  - _self_\npaths:\n  data_dir: {tmp_path}/d\n")
    names = sorted(p.stem for p in CONF_DATA.glob("*.yaml") if not p.stem.startswith("_"))
    assert {"monet2photo", "horse2zebra", "facades", "maps", "kaggle_monet", "kaggle_monet_tfrec", "folders",
            "sample"} <= set(names)
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for name in names:
            overrides = [f"data={name}"]
            if name == "folders":
                overrides += ["data.dir_a=a", "data.dir_b=b"]
            cfg = compose("cfg", overrides=overrides)
            dm = instantiate(cfg.data)
            assert isinstance(dm, UnpairedDataModule)
            if dm.source == "berkeley":
                assert dm.name == name and dm.download and dm.root == tmp_path / "d" / name
        cfg = compose("cfg")
        assert cfg.data.source == "sample" and cfg.data.image_size == 64 and cfg.data.load_size == 72


def test_max_train_images_keeps_a_fixed_subset_per_domain(tmp_path):
    for domain in ("a", "b"):
        folder = tmp_path / domain
        folder.mkdir()
        for i in range(12):
            Image.new("RGB", (40, 40), (i * 20, 0, 0)).save(folder / f"{i:02d}.png")
    kwargs = dict(name="f", source="folders", dir_a=str(tmp_path / "a"), dir_b=str(tmp_path / "b"), image_size=32,
                  load_size=36, num_workers=0, val_size=2, max_train_images=5)
    first, second = UnpairedDataModule(**kwargs), UnpairedDataModule(**kwargs)
    assert len(first.files("train", "A")) == len(first.files("train", "B")) == 5
    assert first.files("train", "A") == second.files("train", "A")  # deterministic
    assert not set(first.files("train", "A")) & set(first.files("test", "A"))  # still disjoint from the hold-out
    with pytest.raises(ValueError, match="data.max_train_images"):
        UnpairedDataModule(**{**kwargs, "max_train_images": 0})
