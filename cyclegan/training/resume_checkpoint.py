"""Which checkpoint a resume takes, and whether it leaves anything to train.

A resume takes only what the user pointed at. ``ckpt_path=<file>`` is that file;
``ckpt_path=last`` is the newest state (highest global step) among the checkpoints of the run
being continued: ``<run dir>/checkpoints`` (``callbacks.model_checkpoint.dirpath``), the run named by
``hydra.run.dir``. It never looks in another run's folder: a run folder that is missing or has no
checkpoint is one line (exit 2), which names the newest run beside it as a hint only, and a run
whose checkpoints are all unreadable (truncated, TorchScript, not a checkpoint) is one line naming
each file tried. Every checkpoint is read through :func:`cyclegan.common.serialization.safe_load`
(``weights_only=True``: no code in a file runs).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cyclegan.common.errors import MissingFileError, UserError, one_line
from cyclegan.common.serialization import safe_load

log = logging.getLogger(__name__)


class ResumeError(UserError, ValueError):
    """``ckpt_path`` cannot be used to resume this run (refused, unreadable or a different model)."""


class NothingToResume(ResumeError, MissingFileError):
    """``ckpt_path=last`` found no checkpoint; the message says where it looked."""


class NothingTrained(UserError):
    """Nothing to train: the checkpoint resumed is where the schedule ends (e.g. a finished run resumed)."""


def read_checkpoint(path: str | os.PathLike) -> Any:
    """The checkpoint at ``path``, memory-mapped (tensors are not read until used) and weights only.

    Raises MissingFileError or :class:`cyclegan.common.serialization.CheckpointError` (one line).
    """
    return safe_load(path, map_location="cpu", mmap=True)


def _step_or_reason(path: Path) -> tuple[int | None, str]:
    """(global step, "") of a training checkpoint, or (None, why it is not one)."""
    try:
        checkpoint = read_checkpoint(path)
    except Exception as exc:  # noqa: BLE001 - a truncated, foreign or unsafe file is simply not a candidate
        return None, one_line(exc)
    step = checkpoint.get("global_step") if isinstance(checkpoint, dict) else None
    return (step, "") if isinstance(step, int) else (None, f"{path} has no global_step: not a training checkpoint")


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The ``global_step`` stored in a training checkpoint, or None when the file is not one."""
    return _step_or_reason(Path(path))[0]


def _candidates(folder: Path) -> tuple[list[tuple[tuple, Path, int]], list[str]]:
    """(loadable checkpoints of ``folder`` with their sort keys, why each other one was passed over)."""
    found, passed_over = [], []
    for path in sorted(folder.glob("*.ckpt")) if folder.is_dir() else ():
        if not path.is_file():
            continue
        step, reason = _step_or_reason(path)
        if step is None:
            passed_over.append(f"{path.name}: {reason}")
            continue
        found.append(((step, path.name == "last.ckpt", path.stat().st_mtime), path, step))
    return found, passed_over


def newest_checkpoint(folder: str | os.PathLike) -> tuple[Path, int] | None:
    """(path, global step) of the checkpoint in ``folder`` with the highest global step, or None.

    Every ``*.ckpt`` counts (last.ckpt, epoch_*.ckpt, an emergency nan_step_*.ckpt, a last-v1.ckpt
    left by an older version): the newest *state* wins, whatever its name or modification time.
    On a tie last.ckpt is preferred, then the most recently written file.
    """
    found, _ = _candidates(Path(folder))
    if not found:
        return None
    _, path, step = max(found, key=lambda item: item[0])
    return path, step


def _newest_run_beside(run_dir: Path) -> Path | None:
    """The run folder beside ``run_dir`` whose checkpoints were written last (only named in a hint)."""
    if not run_dir.parent.is_dir():
        return None
    runs = [p for p in run_dir.parent.glob("*/checkpoints/*.ckpt") if p.is_file() and p.parents[1] != run_dir]
    return max(runs, key=lambda p: p.stat().st_mtime).parents[1] if runs else None


def find_last_checkpoint(run_dir: str | os.PathLike, checkpoint_dir: str | os.PathLike | None = None,
                         run_dir_existed: bool | None = None) -> Path:
    """``ckpt_path=last``: the newest state among the checkpoints of this run (see the module doc).

    ``run_dir_existed``: whether the run folder existed before this run (Hydra creates it before the
    task runs); by default, whether it exists now.
    """
    run_dir = Path(run_dir)
    own_dir = Path(checkpoint_dir or run_dir / "checkpoints")
    found, passed_over = _candidates(own_dir)
    if found:
        _, path, step = max(found, key=lambda item: item[0])
        if passed_over:
            log.warning("ckpt_path=last: passed over %s; resuming %s (step %d)", "; ".join(passed_over), path, step)
        return path
    if passed_over:
        raise ResumeError(f"ckpt_path=last: no checkpoint of {run_dir} can be resumed (tried {'; '.join(passed_over)}); "
                          "nothing was written. Resume from a checkpoint file you trust with ckpt_path=<file>")
    existed = run_dir.exists() if run_dir_existed is None else run_dir_existed
    what = f"has no checkpoint in {own_dir}" if existed else "does not exist"
    newest = _newest_run_beside(run_dir)
    hint = f" (the newest run beside it is {newest})" if newest is not None else ""
    raise NothingToResume(
        f"ckpt_path=last: no checkpoint to resume: the run folder {run_dir} {what}. A resume continues only the "
        f"run you name: hydra.run.dir=<that run's folder> ckpt_path=last{hint}, or ckpt_path=<a checkpoint file>"
    )


def _fit_progress(checkpoint: dict) -> tuple[int, int]:
    """(global step, epochs processed) of a Lightning checkpoint, as its fit loop will count them.

    A checkpoint saved on the last batch of an epoch precedes the epoch's end, which the fit loop
    then counts as processed when it restarts.
    """
    loops = (checkpoint.get("loops") or {}).get("fit_loop") or {}
    epochs = (loops.get("epoch_progress") or {}).get("current") or {}
    batches = loops.get("epoch_loop.batch_progress") or {}
    processed = int(epochs.get("processed", checkpoint.get("epoch") or 0))
    if batches.get("is_last_batch") and processed == int(epochs.get("completed", -1)):
        processed += 1
    return int(checkpoint.get("global_step") or 0), processed


def check_something_left(ckpt_path: str | os.PathLike, trainer_cfg: DictConfig) -> None:
    """Raise :class:`NothingTrained` when the schedule of ``trainer_cfg`` ends at the checkpoint.

    Lightning would start, stop at once and let the loggers rewrite the run's files: refusing before
    anything is built leaves the run folder as it was. (Lightning's own test: its fit loop is done
    when ``global_step >= max_steps`` or the epochs processed ``>= max_epochs``, -1 meaning no limit.)
    """
    step, epochs = _fit_progress(read_checkpoint(ckpt_path))
    max_steps, max_epochs = trainer_cfg.get("max_steps"), trainer_cfg.get("max_epochs")
    reached = [name for name, value, limit in (("max_steps", step, max_steps), ("max_epochs", epochs, max_epochs))
               if isinstance(limit, int) and limit != -1 and value >= limit]
    if reached:
        raise NothingTrained(
            f"nothing was trained: {ckpt_path} is at step {step} (epoch {epochs}) and the schedule ends there "
            f"(trainer.max_epochs={max_epochs}, trainer.max_steps={max_steps}): raise model.n_epochs / "
            "model.n_epochs_decay or trainer.max_steps to train more; the run folder is left as it was"
        )
