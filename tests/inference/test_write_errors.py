"""An output that cannot be written is one line naming the user's path: never a traceback, never the
hidden temporary file beside it, never an errno without the path."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pytest

from cyclegan.inference.compare import main as compare_main
from cyclegan.inference.kaggle import make_kaggle_zip
from cyclegan.inference.translate import main as translate_main
from cyclegan.inference.write_errors import OutputWriteError, reporting_write_errors, without_temp_names
from cyclegan.models import build_generator
from conftest import make_ckpt


def _cannot_create_files_in(folder: Path) -> bool:
    probe = folder / f".probe-{uuid.uuid4().hex}"
    try:
        probe.open("x").close()
    except OSError:
        return True
    probe.unlink()
    return False


@pytest.fixture()
def unwritable(tmp_path):
    """A folder nobody can create files in: a read-only folder, or for root (whom permissions do not
    stop) the root of sysfs, where no process can create a file."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        for candidate in (folder, Path("/sys")):
            if candidate.is_dir() and _cannot_create_files_in(candidate):
                yield candidate
                return
        pytest.skip("no folder here refuses new files")
    finally:
        folder.chmod(0o755)


@pytest.fixture()
def ckpt(tmp_path):
    path = tmp_path / "run.ckpt"
    make_ckpt(path)
    return path


def _one_clean_line(err: str, path) -> bool:
    return (err.count("\n") == 1 and str(path) in err and "Traceback" not in err and ".tmp-" not in err
            and "[Errno" not in err)


@pytest.mark.parametrize("fmt", ["state_dict", "half", "ts"])
def test_export_into_a_folder_that_cannot_be_written_is_one_line(fmt, ckpt, unwritable, capsys):
    target = unwritable / f"g-{uuid.uuid4().hex}.out"
    assert translate_main(["--ckpt", f"{ckpt}:BA", "--export", fmt, "--output", str(target)]) == 2
    err = capsys.readouterr().err
    assert _one_clean_line(err, target) and "choose a folder you can write to" in err
    assert not target.exists()


def test_export_onto_an_existing_folder_names_it(ckpt, tmp_path, capsys):
    folder = tmp_path / "exports"
    folder.mkdir()
    assert translate_main(["--ckpt", f"{ckpt}:BA", "--export", "state_dict", "--output", str(folder)]) == 2
    err = capsys.readouterr().err
    assert _one_clean_line(err, folder) and "is a folder" in err and list(folder.iterdir()) == []
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for target in (a_file / "g.pt", a_file / "sub" / "g.pt"):  # mkdir's "File exists" / "Not a directory"
        assert translate_main(["--ckpt", f"{ckpt}:BA", "--export", "half", "--output", str(target)]) == 2
        err = capsys.readouterr().err
        assert _one_clean_line(err, target) and f"{a_file} is a file" in err


def test_translated_images_and_grids_that_cannot_be_written_are_one_line(ckpt, photos, unwritable, capsys):
    out = unwritable / f"out-{uuid.uuid4().hex}"
    assert translate_main(["--ckpt", str(ckpt), "--input", str(photos), "--output", str(out), "--quiet",
                           "--device", "cpu"]) == 2
    assert _one_clean_line(capsys.readouterr().err, out)
    grid = unwritable / f"grid-{uuid.uuid4().hex}.jpg"
    assert compare_main(["--ckpt", str(ckpt), "--input", str(photos), "--output", str(grid), "--size", "16",
                         "--device", "cpu"]) == 2
    assert _one_clean_line(capsys.readouterr().err, grid)


def test_a_kaggle_zip_that_cannot_be_written_names_the_zip_not_its_temporary_file(photos, unwritable):
    g = build_generator("resnet", ngf=4, n_blocks=1)
    target = unwritable / f"images-{uuid.uuid4().hex}.zip"
    with pytest.raises(OutputWriteError) as e:
        make_kaggle_zip(g, photos, target, min_count=1, size=16, device="cpu", num_workers=0, progress=False)
    assert str(target) in str(e.value) and ".tmp-" not in str(e.value)


def test_a_full_disk_names_the_output_and_says_so(tmp_path):
    target = tmp_path / "images.zip"
    with pytest.raises(OutputWriteError) as e, reporting_write_errors(target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # write() names no file
    assert str(e.value).startswith(f"cannot write {target}: the disk is full")
    with pytest.raises(OutputWriteError) as e, reporting_write_errors(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(tmp_path / f".images.zip.tmp-{os.getpid()}"))
    assert str(target) in str(e.value) and "[Errno" not in str(e.value) and ".tmp-" not in str(e.value)
    # an error about another file (an input) is not passed off as a failed write
    with pytest.raises(PermissionError), reporting_write_errors(target):
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/else/input.png")


def test_temporary_names_are_replaced_by_the_names_they_stand_for():
    assert without_temp_names("ONNX export failed (cannot open /o/.g.onnx.tmp-1234.onnx)") == \
        "ONNX export failed (cannot open /o/g.onnx)"
    assert without_temp_names("/data/.x.zip.tmp-7") == "/data/x.zip"


def test_torch_writer_errors_name_the_output(tmp_path):
    target = tmp_path / "g.pt"
    with pytest.raises(OutputWriteError, match=f"cannot write {target}: permission denied"), \
            reporting_write_errors(target, torch_writer=True):
        raise RuntimeError("[enforce fail at inline_container.cc:747] . open file failed with strerror: "
                           "Permission denied")  # what torch.save raises, without any path
