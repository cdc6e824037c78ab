"""Errors a user can fix, and the one place that turns them into one line and an exit code.

Every error about the user's inputs (config, data folders, checkpoints, output folders, images,
Inception weights, a diverged or interrupted run) subclasses :class:`UserError`, so an entry point
needs no list of them: :func:`exit_on_user_error` wraps its body, logs a user error as one
``ERROR`` line (no traceback) and exits with the error's ``exit_code`` (2; 3 for a diverged run,
128+signal for an interrupted one). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

from cyclegan.config.hydra_run import in_multirun

log = logging.getLogger(__name__)

__all__ = ["UserError", "MissingFileError", "ArgumentsError", "one_line", "first_line", "find_cause", "exit_on_user_error"]


class UserError(Exception):
    """A failure the user can fix (bad config, missing data, unwritable folder, diverged run).

    Entry points report it as one line without a traceback and exit with ``exit_code``.
    """

    exit_code = 2


class MissingFileError(UserError, FileNotFoundError):
    """A file the user named does not exist (the message names it)."""


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (multi-line messages are joined with ' | ')."""
    text = str(exc).strip() or type(exc).__name__
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def first_line(exc: BaseException) -> str:
    """The first line of the exception's message (the exception's class name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


E = TypeVar("E", bound=BaseException)


def find_cause(exc: BaseException | None, kind: type[E], *, where: Callable[[E], bool] | None = None,
               explicit_only: bool = False, limit: int = 8) -> E | None:
    """The first exception of type ``kind`` (for which ``where`` holds) in ``exc``'s chain, ``exc`` first;
    None if there is none.

    The chain is what each exception was raised from (``raise ... from``, ``__cause__``) or, unless
    ``explicit_only``, raised while handling (``__context__``). ``limit`` links at most (a chain can loop).
    """
    for _ in range(limit):
        if exc is None:
            return None
        if isinstance(exc, kind) and (where is None or where(exc)):
            return exc
        exc = exc.__cause__ if explicit_only else (exc.__cause__ or exc.__context__)
    return None


class ArgumentsError(UserError, TypeError):
    """A config group's ``_target_`` was given arguments it does not take (``+model.unknown_key=1``)."""


def _unwrap(exc: BaseException | None) -> UserError | None:
    """``exc`` or the user error it was raised from (hydra.utils.instantiate wraps constructor errors).

    Only explicit causes: a bug raised while handling a user error keeps its traceback.
    """
    return find_cause(exc, UserError, explicit_only=True, limit=5) or _arguments_error(exc)


def _arguments_error(exc: BaseException | None) -> ArgumentsError | None:
    """Hydra's failed call of a ``_target_`` with arguments it refuses, as one line naming the config key.

    Only a ``TypeError`` raised by the call itself (an unexpected keyword) or by the constructor's own
    first frame (its argument check) counts: one raised deeper inside is a bug and keeps its traceback.
    """
    if exc is None or type(exc).__name__ != "InstantiationException" or not isinstance(exc.__cause__, TypeError):
        return None
    frames, tb = 0, exc.__cause__.__traceback__
    while tb is not None:
        frames, tb = frames + 1, tb.tb_next
    if frames > 2:  # Hydra's call frame, then at most the constructor's own
        return None
    text = str(exc)
    target = text.split("'")[1] if text.startswith("Error in call to target '") else "its _target_"
    key = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("full_key:")), "")
    return ArgumentsError(f"{key or 'the config'} ({target}): {one_line(exc.__cause__)}")


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn user errors raised in the block into one ``ERROR`` log line and ``sys.exit(code)``.

    Other exceptions propagate with their traceback. In a Hydra multirun the error is logged and
    re-raised so the sweeper records the failed job instead of the whole sweep exiting.
    """
    try:
        yield
    except KeyboardInterrupt:
        # Ctrl-C outside training (start-up, evaluation): nothing to save; training itself
        # is covered by cyclegan.training.shutdown.GracefulShutdown, which checkpoints first.
        log.error("interrupted (Ctrl-C)")
        sys.exit(130)
    except SystemExit as exc:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if not isinstance(exc, SIGTERMException):
            raise
        # Lightning's own SIGTERM stop outside training.fit (which turns it into TrainingInterrupted);
        # it carries no exit code, so the process would otherwise report success.
        log.error("stopped by SIGTERM")
        sys.exit(143)
    except Exception as exc:  # noqa: BLE001 - classified below
        user = _unwrap(exc)
        if user is None:
            raise
        log.error("%s", one_line(user))
        if in_multirun():
            raise
        sys.exit(user.exit_code)
