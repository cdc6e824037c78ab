"""Multi-process training (DDP on CPU with gloo) and the multi-node / SLURM configs."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from conftest import CONF_DIR

STEPS = 3


class CheckRanksAgree(pl.Callback):
    """After every step: parameters identical on all ranks; records which B images each rank drew."""

    def __init__(self):
        self.b_checksums: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        flat = torch.cat([p.detach().flatten() for p in pl_module.parameters()])
        gathered = trainer.strategy.all_gather(flat)
        assert gathered.shape[0] == 2 and torch.equal(gathered[0], gathered[1]), f"ranks differ at step {batch_idx}"
        self.b_checksums.append(trainer.strategy.all_gather(batch["B"].double().sum()))

    def on_train_end(self, trainer, pl_module):
        picks = torch.stack(self.b_checksums)  # [steps, ranks]
        # Each rank draws its own random B images (the data RNG is seeded per rank).
        assert not torch.equal(picks[:, 0], picks[:, 1]), "both ranks drew the same B images"
        Path(trainer.default_root_dir, f"checked_rank{trainer.global_rank}_steps{len(picks)}").touch()


def test_two_process_ddp_keeps_ranks_in_sync_and_writes_once(tiny_cfg, tmp_path):
    from cyclegan.training.run import train

    cfg = tiny_cfg(
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp_spawn_find_unused_parameters_true",
        f"trainer.max_steps={STEPS}", "trainer.limit_val_batches=0", "data.epoch_length=8",
        "callbacks.image_grid.every_n_steps=1", "callbacks.progress_bar.refresh_rate=0",
        "+callbacks.check_ranks._target_=test_ddp.CheckRanksAgree", "logger=csv",
        "callbacks.model_checkpoint.every_n_train_steps=1", "callbacks.model_checkpoint.every_n_epochs=null", "callbacks.model_checkpoint.save_last=false",
        "callbacks.model_checkpoint.save_top_k=-1", "callbacks.model_checkpoint.filename='step_{step}'",
    )
    train(cfg)

    markers = sorted(p.name for p in tmp_path.glob("checked_rank*"))
    assert markers == [f"checked_rank{r}_steps{STEPS}" for r in (0, 1)]  # the checks ran on both ranks
    ckpts = sorted((tmp_path / "checkpoints").glob("*.ckpt"))
    assert [c.name for c in ckpts] == [f"step_{s}.ckpt" for s in range(1, STEPS + 1)]  # one file per save
    state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    assert state["global_step"] == STEPS
    plain = hydra.utils.instantiate(cfg.model)
    assert list(state["state_dict"]) == list(plain.state_dict())  # no "module." (DDP) prefixes
    metrics = list(tmp_path.rglob("metrics.csv"))
    assert len(metrics) == 1, metrics  # one logger directory: rank 0's
    images = sorted((tmp_path / "images").glob("*.png"))
    assert len(images) == STEPS, images  # the image grid of each step once, not once per rank


def compose_with_hydra_config(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def test_slurm_launcher_config_composes_for_multi_node_ddp():
    cfg = compose_with_hydra_config("hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.devices=4",
                                    "trainer.num_nodes=2", "hydra.launcher.partition=gpu")
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    # Lightning on SLURM: one task per GPU on every node, as many nodes as trainer.num_nodes
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert launcher["partition"] == "gpu"
    assert cfg.trainer.num_nodes == 2 and cfg.trainer.strategy.startswith("ddp")


def test_local_launcher_config_composes():
    cfg = compose_with_hydra_config("hydra/launcher=submitit_local", "trainer=ddp", "trainer.devices=2")
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("submitit_launcher.LocalLauncher")
    assert launcher["tasks_per_node"] == 1 and launcher["gpus_per_node"] == 2


def test_ddp_trainer_config_instantiates_with_multi_node_keys(tmp_path):
    from conftest import compose_config

    cfg = compose_config(tmp_path, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.num_nodes=1")
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert trainer.num_devices == 2 and trainer.num_nodes == 1
