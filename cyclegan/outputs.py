"""Output paths: checked before any work, and written with the permissions any other file gets.

- :func:`blocking_file`: the file that stands where an output folder must be created (the output
  path itself or one of its parents), so a command can refuse it in one line up front instead of
  failing with ``NotADirectoryError`` after the work is done.
- :func:`umask_permissions`: files made by :func:`tempfile.mkstemp` (0600) and folders made by
  :func:`tempfile.mkdtemp` (0700) and then renamed into place keep those private modes; this gives
  them what ``open()`` / ``mkdir()`` would have given (0666 / 0777 minus the user's umask).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["blocking_file", "umask_permissions"]

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    # os.umask can only be read by setting it; the lock keeps two threads from racing on it.
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def umask_permissions(path: str | os.PathLike) -> None:
    """chmod ``path`` to 0666 (files) or 0777 (folders) minus the process umask."""
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~_umask())


def blocking_file(folder: str | os.PathLike) -> Path | None:
    """The existing non-folder at ``folder`` or at its nearest existing parent; None when it can be a folder."""
    p = Path(folder).absolute()
    for candidate in (p, *p.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None
