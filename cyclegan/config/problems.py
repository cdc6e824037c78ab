"""The vocabulary of the config checks: :class:`ConfigError`, the :class:`Problems` collector and the
value checks that add one message each (``model.lr=0 must be a number > 0``). Used by
``config/checks.py`` and ``config/model_checks.py``."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from cyclegan.common.errors import UserError, one_line

__all__ = ["ConfigError", "Problems", "get_value", "choice", "is_int", "is_number", "integer", "number"]


class ConfigError(UserError, ValueError):
    """The composed configuration is invalid; the message names the keys and the allowed values."""


class Problems:
    """Collects every problem so one run of the checks reports them all."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def raise_if_any(self) -> None:
        if self.items:
            head = "invalid configuration: " if len(self.items) > 1 else ""
            raise ConfigError(head + "; ".join(self.items))


def get_value(node: DictConfig, key: str, problems: Problems, prefix: str) -> Any:
    """``node[key]`` (None when absent); an interpolation that cannot be resolved is a problem."""
    try:
        return node.get(key)
    except OmegaConfBaseException as exc:
        problems.add(f"{prefix}.{key} cannot be resolved: {one_line(exc)}")
        return None


def choice(problems: Problems, name: str, value: Any, allowed: Sequence[str]) -> bool:
    if value in allowed:
        return True
    hint = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.6)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    problems.add(f"{name}={value!r} is not one of: {', '.join(allowed)}{did_you_mean}")
    return False


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def integer(problems: Problems, name: str, value: Any, minimum: int, nullable: bool = False) -> bool:
    if value is None and nullable:
        return True
    if is_int(value) and value >= minimum:
        return True
    extra = " or null" if nullable else ""
    problems.add(f"{name}={value!r} must be an integer >= {minimum}{extra}")
    return False


def number(problems: Problems, name: str, value: Any, *, low: float, low_open: bool = False,
            high: float | None = None, high_open: bool = True, nullable: bool = False) -> bool:
    if value is None and nullable:
        return True
    ok = is_number(value) and (value > low if low_open else value >= low)
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return True
    rng = f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        rng = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    problems.add(f"{name}={value!r} must be a number {rng}{' or null' if nullable else ''}")
    return False
