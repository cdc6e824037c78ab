"""CUT under two-process DDP (CPU, gloo): F exists from step 0 on every rank, so DDP wraps all three
networks and the ranks stay in sync (checked on the parameters after every step)."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch

from cyclegan.training.run import train

STEPS = 2


class RanksAgree(pl.Callback):
    """After every step: G, D and F identical on both ranks; a marker file per rank at the end."""

    def __init__(self):
        self.steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        flat = torch.cat([p.detach().flatten() for p in pl_module.parameters()])
        gathered = trainer.strategy.all_gather(flat)
        assert torch.equal(gathered[0], gathered[1]), f"ranks differ at step {batch_idx}"
        self.steps += 1

    def on_train_end(self, trainer, pl_module):
        Path(trainer.default_root_dir, f"checked_rank{trainer.global_rank}_steps{self.steps}").touch()


def test_two_process_ddp_trains_fastcut_with_ranks_in_sync(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        "model=fastcut", "model.num_patches=16", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.strategy=ddp_spawn_find_unused_parameters_true", f"trainer.max_steps={STEPS}",
        "trainer.limit_val_batches=0", "data.epoch_length=8", "callbacks.progress_bar.refresh_rate=0",
        "+callbacks.check_ranks._target_=test_cut_ddp.RanksAgree", "logger=csv", "~callbacks.val_kid",
    )
    train(cfg)
    assert sorted(p.name for p in tmp_path.glob("checked_rank*")) == [f"checked_rank{r}_steps{STEPS}" for r in (0, 1)]
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == STEPS and list(state["generators"]) == ["AB"]
    assert list(state["state_dict"]) == list(hydra.utils.instantiate(cfg.model).state_dict())  # no "module."
