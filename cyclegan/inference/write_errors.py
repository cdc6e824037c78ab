"""A failed write of an output (image, zip, exported generator) as one line naming the user's path.

Outputs are written to a hidden temporary file beside the target and renamed over it
(:func:`cyclegan.common.files.atomic_write`), so the raw error names ``.out.zip.tmp-1234``, a name the
user never gave; errors raised by ``write()`` (a full disk) name no file at all; torch's own
writers (``torch.save``, ``torch.jit.save``) raise a ``RuntimeError`` without the path. Here every
such failure becomes ``cannot write <target>: <reason>; <what to do>``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

from cyclegan.common.errors import UserError, first_line
from cyclegan.common.files import blocking_file

__all__ = ["OutputWriteError", "reporting_write_errors", "write_failure", "without_temp_names"]

# cyclegan.common.files.temporary_name: ".<name>.tmp-<pid>" plus an optional suffix (".onnx")
_TEMP_NAME = re.compile(r"\.([^/\\'\"\s]+?)\.tmp-\d+(?:\.\w+)?")
_TORCH_STRERROR = re.compile(r"strerror:\s*(.+?)\s*$", re.M)
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


class OutputWriteError(UserError, OSError):
    """An output could not be written (the message names it and says what to do)."""


def without_temp_names(text: str) -> str:
    """``text`` with atomic_write's temporary names replaced by the names they stand for."""
    return _TEMP_NAME.sub(lambda m: m.group(1), text)


def _errno_of(exc: BaseException) -> int | None:
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    m = _TORCH_STRERROR.search(str(exc))
    if m:  # torch's C++ writer: "... open file failed with strerror: Permission denied"
        return {os.strerror(code): code for code in (*_NOT_WRITABLE, *_FULL, errno.ENOENT, errno.EISDIR)}.get(m.group(1))
    return None


def write_failure(target: str | os.PathLike, exc: BaseException) -> str:
    """One line: which output could not be written, why, and what to do."""
    target = Path(target)
    code = _errno_of(exc)
    if code in _FULL:
        return f"cannot write {target}: the disk is full ({os.strerror(code)}); free some space or choose another folder"
    if code in _NOT_WRITABLE:  # in the folder the file (or a missing folder on its way) was to be made in
        failed = getattr(exc, "filename", None)
        where = Path(without_temp_names(os.fsdecode(failed))).parent if failed is not None else target.parent
        return f"cannot write {target}: {os.strerror(code).lower()} in {where}; choose a folder you can write to"
    if code == errno.EISDIR or target.is_dir():
        return f"cannot write {target}: it is a folder; give a file name"
    blocker = blocking_file(target.parent)
    if blocker is not None:  # EEXIST / ENOTDIR from a mkdir on the way
        return f"cannot write {target}: {blocker} is a file, not a folder; choose another path"
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        m = _TORCH_STRERROR.search(str(exc))
        reason = m.group(1) if m else without_temp_names(first_line(exc))
    return f"cannot write {target}: {reason}"


@contextlib.contextmanager
def reporting_write_errors(target: str | os.PathLike, *, torch_writer: bool = False) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block (and with ``torch_writer``, torch's ``RuntimeError``
    from ``torch.save`` / ``torch.jit.save``) into an :class:`OutputWriteError` naming ``target``."""
    caught: tuple[type[BaseException], ...] = (OSError, RuntimeError) if torch_writer else (OSError,)
    try:
        yield
    except UserError:
        raise
    except caught as exc:
        if not _about(exc, Path(target)):
            raise
        raise OutputWriteError(write_failure(target, exc)) from exc


def _about(exc: BaseException, target: Path) -> bool:
    """Whether the error is about writing ``target`` (not, say, an input named in the message)."""
    names = [Path(without_temp_names(os.fsdecode(f)))
             for f in (getattr(exc, "filename", None), getattr(exc, "filename2", None)) if f is not None]
    if names:  # the target, or a folder on its way (a mkdir that failed)
        target = target.absolute()
        return any(n.absolute() == target or n.absolute() in target.parents for n in names)
    return isinstance(exc, RuntimeError) or _errno_of(exc) in _FULL | _NOT_WRITABLE | {errno.EISDIR}
