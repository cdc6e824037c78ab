"""OmegaConf resolvers used by the configs under conf/ (registered once, on import)."""

from __future__ import annotations

import warnings
from typing import Any

from omegaconf import OmegaConf

from cyclegan.config.help import app_help
from cyclegan.common.errors import UserError


class LauncherDevicesError(UserError, ValueError):
    """trainer.devices cannot be turned into the integer a submitit launcher needs."""


def _device_count(accelerator: Any, devices: Any) -> int | None:
    """The devices of one node as an integer; None for `auto` / -1 (all the machine has)."""
    if OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)):
        return len(devices)
    text = str(devices).strip()
    if text.lstrip("-").isdigit() and int(text) >= 0:
        return int(text)
    return None


def _uses_gpu(accelerator: Any) -> bool:
    return str(accelerator).lower() in ("auto", "gpu", "cuda")


def local_launcher_gpus(accelerator: Any, devices: Any) -> int:
    """hydra.launcher.gpus_per_node of submitit_local (an int, as submitit requires): trainer.devices,
    and for `auto` the GPUs this machine has (the jobs run here); 0 on a CPU."""
    if not _uses_gpu(accelerator):
        return 0
    count = _device_count(accelerator, devices)
    if count is None:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return count


def slurm_launcher_devices(accelerator: Any, devices: Any, what: str = "tasks") -> int:
    """hydra.launcher.tasks_per_node / gpus_per_node of submitit_slurm: one task per device. `auto`
    cannot be resolved on the submitting machine (a login node often has no GPU), so it is refused."""
    count = _device_count(accelerator, devices)
    if count is None:
        raise LauncherDevicesError(
            f"hydra/launcher=submitit_slurm needs trainer.devices=N, the GPUs (tasks) per node as an integer; "
            f"trainer.devices={devices} cannot be known on the submitting machine: e.g. trainer=ddp trainer.devices=4")
    return count if what == "tasks" or _uses_gpu(accelerator) else 0


def quiet_launcher_schema_warning() -> None:
    """conf/hydra/launcher/submitit_*.yaml replace the plugin's configs of the same name on purpose, and
    Hydra 1.3 still validates them against the plugin's schema (which types gpus_per_node etc. as ints,
    hence the resolvers above); its deprecation warning about that, shown three times per run, is dropped."""
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against ConfigStore schema")


def register_resolvers() -> None:
    # trainer.max_epochs = model.n_epochs + model.n_epochs_decay, as in the reference schedule.
    if not OmegaConf.has_resolver("add"):
        OmegaConf.register_new_resolver("add", lambda *values: sum(values))
    # conf/hydra/launcher/submitit_*.yaml: submitit takes integers only, trainer.devices may be auto
    if not OmegaConf.has_resolver("local_launcher_gpus"):
        OmegaConf.register_new_resolver("local_launcher_gpus", local_launcher_gpus)
    if not OmegaConf.has_resolver("slurm_launcher_devices"):
        OmegaConf.register_new_resolver("slurm_launcher_devices", slurm_launcher_devices)
    # --help: the curated page (cyclegan.config.help), each group's options without the internal _*.yaml bases
    if not OmegaConf.has_resolver("cyclegan_help"):
        OmegaConf.register_new_resolver("cyclegan_help", app_help)


register_resolvers()
quiet_launcher_schema_warning()
