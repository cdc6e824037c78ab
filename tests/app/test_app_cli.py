"""``python -m cyclegan.app`` before it serves: the painter list, and one line + exit 2 for what fails."""

from __future__ import annotations

import pytest

from cyclegan.app.cli import main
from cyclegan.app.painters import bundled_specs
from tests.conftest import make_ckpt


def test_list_shows_the_ckpt_painters_the_bundled_ones_and_chains(tmp_path, capsys):
    ckpt = tmp_path / "monet2photo.ckpt"
    make_ckpt(ckpt)
    assert main(["--list", "--ckpt", f"{ckpt}:AB", "--chain", f"{ckpt}:AB,pretrained:photo2monet_cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split("  ")[0] for line in lines]
    # the --ckpt painter, the bundled ones, the chains their names make, then --chain
    bundled = [s.name for s in bundled_specs()]
    assert names[0] == "monet2photo.ckpt AB" and names[1:1 + len(bundled)] == bundled
    assert "monet2photo.ckpt AB → photo2vangogh" in names
    # --chain comes last; the names alone make it a round trip (monet -> photo -> monet), not offered
    assert names[-1] == "monet2photo.ckpt AB → photo2monet_cpu" and names.count(names[-1]) == 1


@pytest.mark.parametrize("args, message", [
    (["--ckpt", "{tmp}/missing.ckpt"], "missing.ckpt"),
    (["--ckpt", "{tmp}/broken.ckpt:BA"], "broken.ckpt"),
    (["--chain", "{tmp}/broken.ckpt"], "--chain"),
    (["--max-megapixels", "0"], "--max-megapixels"),
    (["--no-bundled"], "no painter"),
])
def test_what_fails_at_start_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    (tmp_path / "broken.ckpt").write_bytes(b"garbage")
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m cyclegan.app: error: ") and message in err and "\n" not in err


def test_without_gradio_it_says_how_to_install_it(monkeypatch, capsys):
    import sys
    import tempfile

    # what the command sets before building the page, restored after this test
    for key in ("GRADIO_TEMP_DIR", "MPLCONFIGDIR", "TMPDIR"):
        monkeypatch.setenv(key, tempfile.gettempdir())
    monkeypatch.setattr(tempfile, "tempdir", tempfile.gettempdir())
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m cyclegan.app: error: the app needs Gradio") and err.endswith('pip install -e ".[app]"')

