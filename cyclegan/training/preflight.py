"""Start-up checks of the filesystem: fail in the first second, not at the first checkpoint.

- :func:`check_output_dir`: the run folder can be created and written (a probe file is
  written and removed) and has room for the checkpoints (free space vs an estimate).
- :func:`check_resume_checkpoint`: ``ckpt_path`` is a training checkpoint that loads with
  ``torch.load(weights_only=True)`` (a pickle that would run code is refused) and was written
  for the same architecture as the configured model.
- :func:`preflight_run`: both, for a composed train config (called by ``train()``).
- :class:`OutputDirPreflight`: a Hydra callback that checks ``hydra.run.dir`` before Hydra
  itself creates it (Hydra would otherwise crash with a traceback on an unwritable path).
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cyclegan.common.errors import UserError, one_line
from cyclegan.models import build_discriminator, build_generator
from cyclegan.models.spec import discriminator_args, generator_args, network_keys
from cyclegan.common.serialization import CheckpointError, safe_load
from cyclegan.training.atomic_checkpoint import remove_stale_temporaries
from cyclegan.training.resume_checkpoint import ResumeError, newest_checkpoint

__all__ = [
    "OutputDirError",
    "ResumeError",
    "DiskFullError",
    "check_output_dir",
    "estimate_checkpoint_bytes",
    "check_resume_checkpoint",
    "architecture_keys",
    "preflight_run",
    "OutputDirPreflight",
]

MB = 1024**2
# Checkpoint files that can exist at once: best/epoch + last + the one being written + an emergency one.
CHECKPOINT_COPIES = 3
MARGIN_BYTES = 100 * MB  # logs, image grids, loss curves


def architecture_keys() -> tuple[str, ...]:
    """hyper_parameters that fix the saved weights' keys and shapes (they must match to resume): the network
    names and every key that sets a network option, read from the registry (``dropout`` shifts a conv's key,
    ``antialias`` adds blur filters, a new network's options count as soon as it is registered)."""
    return ("gen", "disc", *(key for key in network_keys() if key not in ("init_type", "init_gain")))


class OutputDirError(UserError, OSError):
    """The output folder cannot be created or written, or lacks the space the checkpoints need."""


class DiskFullError(UserError, OSError):
    """The disk filled up during training; the message names the last good checkpoint."""


def check_output_dir(path: str | os.PathLike, need_bytes: int = 0, key: str = "paths.output_dir") -> Path:
    """Create ``path``, write and remove a probe file, and check ``need_bytes`` are free."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write_probe_{uuid.uuid4().hex}"
        with open(probe, "wb") as f:
            f.write(b"probe")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputDirError(
            f"{key}={folder} is not writable ({reason}): choose another folder, e.g. "
            "hydra.run.dir=/path/with/space/${now:%Y-%m-%d_%H-%M-%S}"
        ) from None
    if need_bytes > 0:
        free = shutil.disk_usage(folder).free
        if free < need_bytes:
            raise OutputDirError(
                f"{key}={folder} has {free / MB:.0f} MB free but this run's checkpoints need about "
                f"{need_bytes / MB:.0f} MB: free some space or choose another folder (hydra.run.dir=...)"
            )
    return folder


def estimate_checkpoint_bytes(cfg: DictConfig) -> int:
    """Bytes of one training checkpoint: fp32 weights + Adam's two moments + the image pools.

    The networks are built on the ``meta`` device (no memory), so this is exact for the
    weights whatever their size.
    """
    import torch

    model, data = cfg.get("model"), cfg.get("data")
    if not isinstance(model, DictConfig):
        return 0
    gen, gen_kwargs = generator_args(model)
    disc, disc_kwargs = discriminator_args(model)
    with torch.device("meta"):
        G = build_generator(gen, **gen_kwargs)
        D = build_discriminator(disc, **disc_kwargs)
    params = 2 * sum(p.numel() for p in G.parameters()) + 2 * sum(p.numel() for p in D.parameters())
    size = int(data.get("image_size", 256)) if isinstance(data, DictConfig) else 256
    pools = 2 * int(model.get("pool_size", 50) or 0) * 3 * size * size
    return 4 * (3 * params + pools)


def _safe_load(path: Path) -> Any:
    try:
        return safe_load(path)
    except CheckpointError as exc:
        raise ResumeError(f"ckpt_path={path}: {one_line(exc)}") from None


def check_resume_checkpoint(path: str | os.PathLike, model_cfg: DictConfig | None = None) -> Path:
    """Refuse a resume checkpoint that is missing, unsafe, not a training checkpoint, or for another model.

    The file is read with ``torch.load(weights_only=True)`` (no code runs while unpickling);
    Lightning then loads it again, also with ``weights_only=True`` (see ``train()``).
    """
    ckpt = Path(path)
    if not ckpt.is_file():
        hint = " (a directory: pass the .ckpt file inside it)" if ckpt.is_dir() else ""
        raise ResumeError(f"ckpt_path={ckpt}: no such file{hint}; runs write checkpoints to "
                          "<run dir>/checkpoints/last.ckpt")
    obj = _safe_load(ckpt)
    needed = ("state_dict", "optimizer_states", "loops", "global_step")
    if not isinstance(obj, dict) or any(k not in obj for k in needed):
        raise ResumeError(
            f"ckpt_path={ckpt} is not a training checkpoint written by train.py (it lacks optimizer/loop "
            "state, e.g. an exported generator): resume from <run dir>/checkpoints/last.ckpt"
        )
    saved = obj.get("hyper_parameters") or {}
    if model_cfg is not None:
        _check_family(ckpt, obj, model_cfg)
        diffs = [f"model.{k}={saved[k]!r} in the checkpoint but {model_cfg.get(k)!r} here"
                 for k in architecture_keys() if k in saved and k in model_cfg and saved[k] != model_cfg.get(k)]
        if diffs:
            raise ResumeError(f"ckpt_path={ckpt} was trained with a different architecture ({'; '.join(diffs)}): "
                              "pass the same model settings to resume")
    return ckpt


def _check_family(ckpt: Path, obj: dict, model_cfg: DictConfig) -> None:
    """The checkpoint's model family (``checkpoint["model_family"]``, gan/family.py; older checkpoints with
    ``G_AB.`` weights are CycleGAN's) is the one ``model._target_`` builds."""
    wanted = model_cfg.get("_target_")
    family = obj.get("model_family")
    if family is None and any(str(k).startswith("G_AB.") for k in obj.get("state_dict") or {}):
        family = "cyclegan.gan.module.CycleGAN"
    if family and wanted and family != wanted:
        raise ResumeError(f"ckpt_path={ckpt} was trained by {family.rsplit('.', 1)[-1]} ({family}), but this run "
                          f"builds {str(wanted).rsplit('.', 1)[-1]} ({wanted}): resume with the model it was trained "
                          "with (model=cyclegan | cut | fastcut), or start from its weights with model.init_from")


def _checkpoint_dir(cfg: DictConfig) -> Path | None:
    callbacks = cfg.get("callbacks")
    node = callbacks.get("model_checkpoint") if isinstance(callbacks, DictConfig) else None
    if isinstance(node, DictConfig) and node.get("dirpath"):
        return Path(str(node.dirpath))
    return None


def preflight_run(cfg: DictConfig) -> None:
    """Output and checkpoint folders writable with room for the checkpoints; ``ckpt_path`` safe to resume."""
    output_dir = Path(str(cfg.paths.output_dir))
    need = CHECKPOINT_COPIES * estimate_checkpoint_bytes(cfg) + MARGIN_BYTES
    ckpt_dir = _checkpoint_dir(cfg)
    same_disk = ckpt_dir is not None and output_dir in (ckpt_dir, *ckpt_dir.parents)
    check_output_dir(output_dir, 0 if ckpt_dir is not None and not same_disk else need)
    if ckpt_dir is not None:
        check_output_dir(ckpt_dir, need, key="callbacks.model_checkpoint.dirpath")
    remove_stale_temporaries(ckpt_dir or output_dir / "checkpoints")  # left by a save that was killed
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path not in (None, "", "null", "last"):
        check_resume_checkpoint(ckpt_path, cfg.get("model"))
    elif ckpt_path == "last":
        own = newest_checkpoint(ckpt_dir or output_dir / "checkpoints")
        if own is not None:
            check_resume_checkpoint(own[0], cfg.get("model"))




class OutputDirPreflight(Callback):
    """Hydra callback: check the run/sweep folder before Hydra creates it.

    Hydra creates ``hydra.run.dir`` before the task starts; an unwritable path there is a
    Python traceback. This prints one line and exits with code 2 instead.
    """

    def _check(self, config: DictConfig, key: str) -> None:
        try:
            folder = OmegaConf.select(config, key)
            if folder:
                check_output_dir(folder, key=key)
        except OutputDirError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(OutputDirError.exit_code)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")
