"""Scanning image folders (cyclegan.data.sources.scan_images): link loops, unreadable folders, no file opened."""

from __future__ import annotations

import builtins
import logging
import os
from pathlib import Path

from PIL import Image

from conftest import folders_dm, write_image
from cyclegan.data import scan_images


def test_link_loops_neither_hang_nor_count_an_image_twice(tmp_path, caplog):
    from cyclegan.inference.batching import list_images

    a = tmp_path / "A"
    write_image(a / "a.jpg")
    write_image(a / "sub" / "b.png")
    (a / "self").symlink_to(".")  # a loop: A/self/self/... is A
    with caplog.at_level(logging.WARNING):
        assert scan_images(a) == [str(a / "a.jpg"), str(a / "sub" / "b.png")]
    (a / "sub" / "up").symlink_to("..")  # a second loop: without the cut, 2**40 paths
    (a / "link.jpg").symlink_to("a.jpg")  # the same file under another name
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert scan_images(a) == [str(a / "a.jpg"), str(a / "sub" / "b.png")]
        assert list_images(a)[1] == [Path("a.jpg"), Path("sub/b.png")]  # translate and compare list the same way
    warnings = [r.getMessage() for r in caplog.records if "symbolic link" in r.getMessage()]
    assert len(warnings) == 2  # one per scan
    assert "3 symbolic link(s)" in warnings[0] and all(n in warnings[0] for n in ("self", "up", "link.jpg"))


def test_an_unreadable_subfolder_is_one_warning_and_the_rest_is_used(tmp_path, monkeypatch, caplog):
    a, b = tmp_path / "A", tmp_path / "B"
    write_image(a / "a.jpg")
    write_image(a / "locked" / "x.jpg")
    write_image(b / "b.jpg")
    real_scandir = os.scandir

    def scandir(path="."):  # chmod 000 means nothing to root, so the refusal is simulated
        if Path(path) == a / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with caplog.at_level(logging.WARNING):
        dm = folders_dm(a, b)
        dm.setup("fit")
    assert dm.files("train", "A") == [str(a / "a.jpg")]
    warnings = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(warnings) == 1 and str(a / "locked") in warnings[0] and "Permission denied" in warnings[0]


def test_scanning_20k_files_opens_none_of_them(tmp_path, monkeypatch):
    exts = [".jpg", ".JPG", ".Jpeg", ".png", ".PNG", ".webp", ".bmp", ".txt"]
    for d in range(20):
        folder = tmp_path / f"d{d:02d}" / "nested"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"{i:04d}{exts[i % len(exts)]}").write_bytes(b"x")

    def forbidden(*args, **kwargs):
        raise AssertionError(f"a file was opened while scanning: {args[:1]}")

    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(os, "open", forbidden)
    monkeypatch.setattr(Image, "open", forbidden)
    paths = scan_images(tmp_path)
    monkeypatch.undo()
    assert len(paths) == 20 * 1000 * 7 // 8 and paths == sorted(paths)
