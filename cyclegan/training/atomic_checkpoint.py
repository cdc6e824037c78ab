"""Checkpoints that survive a crash while they are written, and the leftovers of saves that were killed.

:class:`AtomicCheckpointIO` writes every checkpoint to a temporary file in the same folder and
renames it over the target, so a crash while saving leaves the previous ``last.ckpt`` intact.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from cyclegan.errors import find_cause
from cyclegan.files import atomic_write, temporary_glob, temporary_writer_pid

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into `.<name>.tmp-<pid>` beside the target, fsync, then os.replace over it
    (:func:`cyclegan.files.atomic_write`).

    os.replace is atomic on POSIX and Windows within one filesystem: readers see the old file or
    the new one, never a half-written one. Remote paths (s3://, gs://, ...) use Lightning's own save.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        try:
            with atomic_write(path, fsync=True) as tmp, open(tmp, "wb") as f:
                torch.save(checkpoint, f)
        except Exception as exc:
            # torch.save reports a failed write on the file as a RuntimeError ("unexpected pos ...")
            # raised during the OSError: surface the full disk itself, naming the target
            full = disk_full_cause(exc)
            if full is None:
                raise
            raise OSError(full.errno, full.strerror, str(path)) from exc


def disk_full_cause(exc: BaseException | None) -> OSError | None:
    """The ENOSPC / EDQUOT error that ``exc`` is, or was raised from or during; None if none."""
    return find_cause(exc, OSError, where=lambda e: e.errno in (errno.ENOSPC, errno.EDQUOT))


TEMPORARY_PATTERN = temporary_glob("*.ckpt")  # the temporary files of cyclegan.files.atomic_write


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of saves that were killed (SIGKILL, power loss) in ``folder``.

    A file whose writer (the pid in its name) is still running on this machine is kept: another run
    may be saving into the same folder right now.
    """
    removed = []
    for tmp in Path(folder).glob(TEMPORARY_PATTERN) if Path(folder).is_dir() else ():
        pid = temporary_writer_pid(tmp)
        if pid is not None and pid != os.getpid() and _process_alive(pid):
            continue
        size = tmp.stat().st_size if tmp.is_file() else 0
        try:
            tmp.unlink()
        except OSError as exc:
            log.warning("could not remove the left-over temporary checkpoint %s (%s)", tmp, exc.strerror)
            continue
        removed.append(tmp)
        log.warning("removed %s (%.1f MB), left by a checkpoint save that was killed", tmp, size / 1024**2)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True
