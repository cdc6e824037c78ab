"""cyclegan.data.download: an offline download is one line and exit 2."""

from __future__ import annotations

import logging

import pytest

from conftest import TINY, compose_config
from cyclegan.common.errors import exit_on_user_error
from cyclegan.training.run import train


def test_offline_download_of_a_berkeley_set_is_one_line_and_exit_2(tmp_path, monkeypatch, caplog):
    from urllib.error import URLError

    import cyclegan.data.download as download

    def offline(*args, **kwargs):
        raise URLError("Name or service not known")

    monkeypatch.setattr(download, "urlopen", offline)
    cfg = compose_config(tmp_path, *TINY, "data=vangogh2photo", f"paths.data_dir={tmp_path / 'data'}",
                         "data.image_size=32", "data.load_size=36")
    with pytest.raises(SystemExit) as exit_info, caplog.at_level(logging.ERROR):
        with exit_on_user_error():
            train(cfg)
    assert exit_info.value.code == 2
    message = caplog.records[-1].getMessage()
    assert "vangogh2photo.zip" in message and "paths.data_dir" in message and "\n" not in message
