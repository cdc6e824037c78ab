"""Writing files so that a reader, or a crash, never sees half of one.

- :func:`atomic_write` / :func:`atomic_write_text`: write beside the target under
  :func:`temporary_name`, then rename over the target.
- :func:`temporary_name` / :func:`temporary_glob` / :func:`temporary_writer_pid`: the one naming
  of those temporary files (``.<name>.tmp-<pid>``), so left-overs of killed writers can be found.
- :func:`umask_permissions`: the mode open()/mkdir() would have given, for files made private by
  ``tempfile``.
- :func:`blocking_file`: the file that stands where a folder must be made.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "temporary_name",
    "temporary_glob",
    "temporary_writer_pid",
    "blocking_file",
    "umask_permissions",
]


def temporary_name(path: str | os.PathLike, suffix: str = "") -> Path:
    """The hidden temporary file beside ``path`` that this process writes before renaming it over ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def temporary_glob(pattern: str) -> str:
    """The glob matching every writer's :func:`temporary_name` of the files ``pattern`` matches (``*.ckpt``)."""
    return f".{pattern}.tmp-*"


def temporary_writer_pid(tmp: str | os.PathLike) -> int | None:
    """The pid of the process that wrote the temporary file ``tmp`` (:func:`temporary_name`); None if unknown."""
    pid = Path(tmp).name.rpartition(".tmp-")[2].split(".", 1)[0]
    return int(pid) if pid.isdigit() else None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, suffix: str = "", fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it is renamed over ``path``.

    ``os.replace`` is atomic within a filesystem: readers see the old file or the new one, never
    half of one, and a crash leaves at most a hidden :func:`temporary_name` file. ``suffix`` ends
    the temporary name (for writers that pick a format by extension); ``fsync`` flushes it to the
    disk before the rename (checkpoints). On an exception the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path, suffix)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


# Files from tempfile.mkstemp (0600) / mkdtemp (0700) renamed into place keep those private modes;
# umask_permissions gives them what open() / mkdir() would have (0666 / 0777 minus the umask).
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
