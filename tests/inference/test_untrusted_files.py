"""Files a user is handed are untrusted: neither a TorchScript file's name nor its layout makes its code
run, and a refused pickle is named without advice to unpickle it. Every file here is generated; no
payload is ever executed (each one would create a marker file, checked to be absent)."""

from __future__ import annotations

import logging
import shutil
import zipfile

import pytest
import torch

from cyclegan.inference.checkpoint import CheckpointError, load_generator
from cyclegan.inference.compare import main as compare_main
from cyclegan.inference.export import export_torchscript
from cyclegan.inference.translate import main as translate_main
from cyclegan.models import build_generator
from cyclegan.common.serialization import is_torchscript, pickle_globals, safe_load


class _Talks(torch.nn.Module):
    """A TorchScript program whose forward prints: the proof that its code ran."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("PAYLOAD RAN")
        return x


@pytest.fixture()
def talking(tmp_path):
    """The same TorchScript program under the names --export ts writes and the documented alias."""
    src = tmp_path / "talks.pt"
    torch.jit.save(torch.jit.script(_Talks()), str(src))
    named = [tmp_path / "painter.ts", tmp_path / "painter.torchscript.pt"]
    for path in named:
        shutil.copy(src, path)
    return named


def test_a_torchscript_name_is_not_consent(talking, photos, tmp_path, capfd):
    for path in talking:
        with pytest.raises(CheckpointError, match="TorchScript archive.*--allow-torchscript"):
            load_generator(path)
        out = tmp_path / f"out_{path.name}"
        assert translate_main(["--ckpt", str(path), "--input", str(photos), "--output", str(out), "--quiet"]) == 2
        grid = tmp_path / "grid.png"
        assert compare_main(["--ckpt", str(path), "--input", str(photos), "--output", str(grid), "--size", "16"]) == 2
        text = capfd.readouterr()
        assert "PAYLOAD RAN" not in text.out + text.err
        assert text.err.count("--allow-torchscript") == 2 and "Traceback" not in text.err
        assert not out.exists() and not grid.exists()


def test_the_flag_loads_it_and_says_in_one_line_that_its_code_runs(talking, photos, tmp_path, caplog, capfd):
    with caplog.at_level(logging.WARNING, logger="cyclegan.inference.checkpoint"):
        assert translate_main(["--ckpt", str(talking[0]), "--allow-torchscript", "--input", str(photos),
                               "--output", str(tmp_path / "out"), "--quiet", "--device", "cpu"]) == 0
    said = [r.getMessage() for r in caplog.records if "TorchScript" in r.getMessage()]
    assert len(said) == 1 and str(talking[0]) in said[0] and "code" in said[0] and "runs" in said[0]
    assert "PAYLOAD RAN" in capfd.readouterr().out  # it was asked for, so it ran
    assert (tmp_path / "out" / "p.png").is_file()


def _padded(archive, target, padding=250):
    """``archive``'s entries after ``padding`` harmless ones: a detector that reads the first 200 names misses it."""
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(target, "w") as dst:
        for i in range(padding):
            dst.writestr(f"padding/{i:04d}", b"")
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return target


def test_the_detector_reads_the_archive_structure_whatever_its_length(tmp_path):
    g = build_generator("resnet", ngf=4, n_blocks=1).eval()
    padded = _padded(export_torchscript(g, tmp_path / "g.ts"), tmp_path / "model.ckpt")
    with zipfile.ZipFile(padded) as zf:
        names = zf.namelist()
    assert len(names) > 250 and not any("/code/" in n or n.endswith("constants.pkl") for n in names[:200])
    assert is_torchscript(padded)
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        safe_load(padded)
    with pytest.raises(CheckpointError, match="TorchScript archive.*--allow-torchscript"):
        load_generator(padded)
    # a weights file with as many entries is still weights
    many = tmp_path / "many.pt"
    torch.save({f"w{i}": torch.zeros(1) for i in range(300)}, many)
    assert not is_torchscript(many) and len(safe_load(many)) == 300


class _CallsPosixSystem:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import posix

        return (posix.system, (f"touch {self.marker}",))


class _CallsNumpyRunstring:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from numpy.testing._private.utils import runstring

        return (runstring, (f"open({str(self.marker)!r}, 'w').close()", {}))


@pytest.mark.parametrize("payload, name, protocol", [
    (_CallsPosixSystem, "posix.system", 4),
    (_CallsPosixSystem, "posix.system", 2),
    (_CallsNumpyRunstring, "numpy.testing._private.utils.runstring", 2),
    (_CallsNumpyRunstring, "numpy.testing._private.utils.runstring", 4),
])
def test_a_refused_pickle_names_its_global_and_never_advises_unpickling(payload, name, protocol, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": payload(marker)}, evil, pickle_protocol=protocol)
    assert name in pickle_globals(evil)
    with pytest.raises(CheckpointError) as e:
        safe_load(evil)
    msg = str(e.value)
    assert name in msg and "malicious" in msg and "weights_only=False" not in msg and "\n" not in msg
    assert translate_main(["--ckpt", str(evil), "--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert name in err and "weights_only=False" not in err and err.count("\n") == 1
    assert not marker.exists()


def test_a_legacy_format_pickle_is_read_for_its_globals_too(tmp_path):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "old.pth"
    torch.save({"x": _CallsPosixSystem(marker)}, evil, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=r"posix\.system.*malicious"):
        load_generator(evil)
    assert not marker.exists()
