"""Reference weights that are not there: one line saying where the official ones come from."""

import pytest

from cyclegan.common.errors import MissingFileError
from cyclegan.inference.checkpoint import load_generator
from cyclegan.models import build_generator, load_reference_weights


def test_a_missing_reference_file_says_where_official_weights_come_from(tmp_path):
    missing = tmp_path / "latest_net_G_A.pth"
    with pytest.raises(MissingFileError) as snippet:  # the README's Python snippet
        load_reference_weights(build_generator("resnet", ngf=4, n_blocks=1), missing)
    with pytest.raises(MissingFileError) as cli:  # translate --ckpt latest_net_G_A.pth
        load_generator(missing)
    for err in (snippet, cli):
        message = str(err.value)
        assert "\n" not in message and str(missing) in message
        assert "junyanz/pytorch-CycleGAN-and-pix2pix" in message and "download_cyclegan_model.sh" in message
