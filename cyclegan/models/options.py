"""A network's options, read from its constructor's signature: the one description of what it accepts.

A network class declares each option as a keyword argument with a default and an annotation::

    def __init__(self, ngf: Width = 64, norm: Norm = "instance", n_blocks: Annotated[int, AtLeast(0)] = 9,
                 upsample: Literal["deconv", "resize"] = "deconv", antialias: bool = False): ...

``Literal[...]`` gives the choices, ``Annotated[int, AtLeast(n)]`` / ``Annotated[float, Above(x)]``
the range, ``bool`` a switch, ``X | None`` that null is allowed. :func:`options_of` turns that into
:class:`Option` records, which the builders (``models/registry.py``), the config checks
(``config/checks.py``) and the resume comparison (``training/preflight.py``) read; none of them keeps a
list of its own.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

__all__ = ["AtLeast", "Above", "Width", "Norm", "NORM_TYPES", "Option", "options_of", "check_choice"]


def check_choice(arg: str, value: object, allowed: Iterable) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise a one-line ValueError naming the options."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {arg} {value!r}; choose one of: {', '.join(map(str, allowed))}")
    return value


@dataclass(frozen=True)
class AtLeast:
    """``Annotated[int, AtLeast(1)]``: the option's smallest allowed value."""

    minimum: float


@dataclass(frozen=True)
class Above:
    """``Annotated[float, Above(0)]``: the option must be greater than this."""

    bound: float


Width = Annotated[int, AtLeast(1)]  # channel counts: ngf, ndf, in_channels, out_channels
Norm = Literal["instance", "batch", "none"]
NORM_TYPES: tuple[str, ...] = typing.get_args(Norm)


@dataclass(frozen=True)
class Option:
    """One keyword argument of a network: its default and what values it accepts."""

    name: str
    default: Any
    kind: type  # bool, int, float or str
    choices: tuple | None = None
    minimum: float | None = None  # inclusive (AtLeast)
    above: float | None = None  # exclusive (Above)
    nullable: bool = False

    @property
    def is_switch(self) -> bool:
        """A bool or a choice: it turns a feature on, so setting it where it does nothing is a mistake."""
        return self.kind is bool or self.choices is not None

    def check(self, value: Any) -> Any:
        """``value`` as the network takes it (bools normalised), or a one-line ValueError."""
        if value is None and self.nullable:
            return None
        if self.kind is bool:
            return bool(value)
        if self.choices is not None:
            return check_choice(self.name, value, self.choices)
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or (self.minimum is not None
                                                                         and value < self.minimum):
                raise ValueError(f"invalid {self.name}={value!r}; expected an integer >= {self.minimum:g}")
        elif self.kind is float:
            low_ok = ((self.minimum is None or value >= self.minimum) and (self.above is None or value > self.above)
                      if isinstance(value, (int, float)) and not isinstance(value, bool) else False)
            if not low_ok:
                bound = f"> {self.above:g}" if self.above is not None else f">= {self.minimum:g}"
                raise ValueError(f"invalid {self.name}={value!r}; expected a number {bound}")
        return value


def _describe(name: str, default: Any, annotation: Any) -> Option:
    nullable = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        annotation = args[0] if len(args) == 1 else Any
    minimum = above = None
    if typing.get_origin(annotation) is Annotated:
        annotation, *metadata = typing.get_args(annotation)
        for meta in metadata:
            minimum = meta.minimum if isinstance(meta, AtLeast) else minimum
            above = meta.bound if isinstance(meta, Above) else above
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        return Option(name, default, type(choices[0]), choices, nullable=nullable)
    kind = annotation if annotation in (bool, int, float, str) else type(default)
    return Option(name, default, kind, minimum=minimum, above=above, nullable=nullable)


def options_of(target: Any) -> dict[str, Option]:
    """``{name: Option}`` for the keyword arguments with defaults of a class's ``__init__`` or a function."""
    func = target.__init__ if inspect.isclass(target) else target
    hints = typing.get_type_hints(func, include_extras=True)
    out = {}
    for name, param in inspect.signature(func).parameters.items():
        if param.default is inspect.Parameter.empty or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        out[name] = _describe(name, param.default, hints.get(name, Any))
    return out
