"""model.compile: the log says that the first steps compile and roughly how long that takes."""

import logging

from cyclegan.gan.module import CycleGAN
from cyclegan.gan.speed import apply_speedups


def test_compiling_is_announced_with_its_rough_duration(caplog):
    model = CycleGAN(gen="resnet", ngf=4, ndf=4, n_blocks=1)
    with caplog.at_level(logging.INFO, logger="cyclegan.gan.speed"):
        apply_speedups(model, compile=True)  # nn.Module.compile is lazy: nothing compiles here
    notice = [r.getMessage() for r in caplog.records if r.getMessage().startswith("model.compile:")]
    assert len(notice) == 1 and "G_AB, G_BA, D_A, D_B compile during the first training steps" in notice[0]
    assert "0 %" in notice[0] and "minutes on a CPU" in notice[0]
