"""What Hydra says about the running job: its runtime config, and whether it is part of a multirun."""

from __future__ import annotations

from omegaconf import DictConfig


def hydra_job() -> DictConfig | None:
    """Hydra's runtime config of the job being run, or None outside a Hydra app (compose API, tests)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get() if HydraConfig.initialized() else None
    except Exception:  # noqa: BLE001 - no Hydra app running
        return None


def in_multirun(hydra_cfg: DictConfig | None = None) -> bool:
    """Whether this job is one of a multirun (``-m``). ``hydra_cfg``: the ``hydra`` node when the
    caller has it (Hydra callbacks get the config before ``HydraConfig`` is set); else the running job's."""
    from hydra.types import RunMode

    job = hydra_cfg if hydra_cfg is not None else hydra_job()
    return job is not None and job.mode == RunMode.MULTIRUN
