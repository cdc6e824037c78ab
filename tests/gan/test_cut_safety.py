"""The NaN guard with a CUT model: a non-finite loss stops the run with a resumable checkpoint naming the
networks of the bad update (G and F share the generator step's optimizer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tiny_fit
from cyclegan.gan.cut import CUT
from cyclegan.training.nan_guard import NaNGuard, TrainingDiverged

TINY = dict(ngf=4, ndf=4, n_blocks=1, d_layers=2, netF_nc=8, num_patches=16)


@pytest.mark.filterwarnings("ignore:You.re resuming from a checkpoint that ended before the epoch ended")
def test_a_nan_cut_loss_stops_with_a_checkpoint_that_resumes(tmp_path):
    model = CUT(**TINY)
    original = model.generator_loss

    def bad_generator_loss(*args):
        total, logs = original(*args)
        if model.trainer.global_step == 1:
            total = total * float("nan")
            logs["G_loss"] = total
        return total, logs

    model.generator_loss = bad_generator_loss
    with pytest.raises(TrainingDiverged) as info:
        tiny_fit(tmp_path / "run", model, [NaNGuard(policy="stop")], max_steps=5)
    message = str(info.value)
    assert "step 1" in message and "G_loss=nan" in message and "(G, F)" in message
    trainer = tiny_fit(tmp_path / "resumed", CUT(**TINY), [NaNGuard()], max_steps=3,
                       ckpt_path=str(Path(info.value.checkpoint)))
    assert trainer.global_step == 3
