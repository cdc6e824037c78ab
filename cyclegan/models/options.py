"""A network's options, read from its constructor's signature: the one description of what it accepts.

A network class declares each option as a keyword argument with a default and an annotation::

    def __init__(self, ngf: Width = 64, norm: Norm = "instance", n_blocks: Annotated[int, AtLeast(0)] = 9,
                 upsample: Literal["deconv", "resize"] = "deconv", antialias: bool = False): ...

``Literal[...]`` (or ``Annotated[str, OneOf(names)]``) gives the choices, ``Annotated[int, AtLeast(n)]``
(``Above``, ``AtMost``, ``Below``) the range, ``bool`` a switch, ``X | None`` that null is allowed.
:func:`options_of` turns that into :class:`Option` records, which the builders (``models/registry.py``),
the config checks (``config/model_checks.py``, which reads the LightningModule's signature the same way)
and the resume comparison (``training/preflight.py``) read; none of them keeps a list of its own.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

__all__ = ["AtLeast", "Above", "AtMost", "Below", "OneOf", "Width", "Norm", "NORM_TYPES", "Option", "options_of", "check_choice"]


def check_choice(arg: str, value: object, allowed: Iterable) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise a one-line ValueError naming the options."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {arg} {value!r}; choose one of: {', '.join(map(str, allowed))}")
    return value


@dataclass(frozen=True)
class Bound:
    """A range limit in an option's ``Annotated`` metadata, e.g. ``Annotated[int, AtLeast(1)]``."""

    value: float
    field: ClassVar[str]  # the Option attribute it sets


class AtLeast(Bound):
    """The smallest allowed value."""

    field = "minimum"


class Above(Bound):
    """The value must be greater than this."""

    field = "above"


class AtMost(Bound):
    """The largest allowed value."""

    field = "maximum"


class Below(Bound):
    """The value must be smaller than this."""

    field = "below"


@dataclass(frozen=True)
class OneOf:
    """``Annotated[str, OneOf(GAN_MODES)]``: choices kept in a tuple elsewhere (``Literal`` needs them written out)."""

    choices: tuple


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
    maximum: float | None = None  # inclusive (AtMost)
    below: float | None = None  # exclusive (Below)
    nullable: bool = False

    @property
    def constrained(self) -> bool:
        """Whether the signature says more than the type: choices or a range."""
        return self.choices is not None or any(b is not None for b in (self.minimum, self.above, self.maximum,
                                                                          self.below))

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
        if self.kind in (int, float):
            number = isinstance(value, int if self.kind is int else (int, float)) and not isinstance(value, bool)
            if not number or not self.in_range(value):
                what = "an integer" if self.kind is int else "a number"
                raise ValueError(f"invalid {self.name}={value!r}; expected {what} {self.range_text()}".rstrip())
        return value

    def in_range(self, value: float) -> bool:
        return ((self.minimum is None or value >= self.minimum) and (self.above is None or value > self.above)
                and (self.maximum is None or value <= self.maximum) and (self.below is None or value < self.below))

    def range_text(self) -> str:
        """E.g. ``>= 1``, ``> 0 and < 1``."""
        parts = [f"{sign} {bound:g}" for sign, bound in ((">=", self.minimum), (">", self.above),
                                                         ("<=", self.maximum), ("<", self.below)) if bound is not None]
        return " and ".join(parts)


def _describe(name: str, default: Any, annotation: Any) -> Option:
    nullable = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        annotation = args[0] if len(args) == 1 else Any
    bounds: dict[str, float] = {}
    choices = None
    if typing.get_origin(annotation) is Annotated:
        annotation, *metadata = typing.get_args(annotation)
        for meta in metadata:
            if isinstance(meta, OneOf):
                choices = tuple(meta.choices)
            elif isinstance(meta, Bound):
                bounds[meta.field] = meta.value
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
    if choices is not None:
        return Option(name, default, type(choices[0]), choices, nullable=nullable)
    kind = annotation if annotation in (bool, int, float, str) else type(default)
    return Option(name, default, kind, nullable=nullable, **bounds)


def options_of(target: Any) -> dict[str, Option]:
    """``{name: Option}`` for the keyword arguments with defaults of a class's ``__init__`` or a function."""
    return dict(_options(target))


@functools.lru_cache(maxsize=None)
def _options(target: Any) -> tuple[tuple[str, Option], ...]:
    func = target.__init__ if inspect.isclass(target) else target
    hints = typing.get_type_hints(func, include_extras=True)
    out = []
    for name, param in inspect.signature(func).parameters.items():
        if param.default is inspect.Parameter.empty or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        out.append((name, _describe(name, param.default, hints.get(name, Any))))
    return tuple(out)
