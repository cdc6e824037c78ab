"""Checks that apply to every key of a composed config, whatever its group.

- :func:`unresolvable_keys`: an interpolation that cannot be resolved (an unset ``${oc.env:VAR}``, a
  key that does not exist) is reported once, naming the key, instead of surfacing later as an
  OmegaConf traceback from whichever code reads it first.
- :func:`non_boolean_keys`: a boolean key accepts only ``true`` / ``false``. Hydra hands
  ``data.flip=off`` or ``model.dropout=no`` over as the *strings* ``'off'`` / ``'no'``, which Python
  takes as true. Which keys are boolean is read from the signature of each node's ``_target_``
  (a parameter annotated ``bool``, or ``bool | None`` which also takes null), so a new boolean
  argument is covered without a list to update; the few keys read by plain code instead of a
  constructor are in :data:`PLAIN_BOOLEAN_KEYS`.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = ["PLAIN_BOOLEAN_KEYS", "boolean_parameters", "non_boolean_keys", "unresolvable_keys"]

# Boolean keys not passed to a `_target_` (read with cfg.get by train()/evaluate()).
PLAIN_BOOLEAN_KEYS = ("test", "bf16", "metrics.train_ref")


def _walk(node: Any, prefix: str) -> Iterator[tuple[str, DictConfig, Any]]:
    """(dotted key, parent node, key) for every key below ``node``, leaves and inner nodes, in order."""
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        path = f"{prefix}.{key}" if prefix else str(key)
        yield path, node, key
        child = node._get_node(key)  # unresolved: the resolution is the caller's to try
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_interpolation() and not child._is_missing():
            yield from _walk(child, path)


def unresolvable_keys(cfg: DictConfig) -> list[str]:
    """One message per distinct resolution failure, naming the first key (config order) that hits it.

    ``hydra.*`` is Hydra's own business (it resolves what it needs before the job starts).
    """
    seen: dict[str, str] = {}
    for path, parent, key in _walk(cfg, ""):
        if path == "hydra" or path.startswith("hydra."):
            continue
        try:
            parent[key]
        except OmegaConfBaseException as exc:
            reason = _reason(exc)
            if "Missing mandatory value" in reason:
                continue  # ??? values are reported by the missing-value check
            seen.setdefault(reason, f"{path} cannot be resolved: {reason}{_hint(reason)}")
    return list(seen.values())


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\w+ raised while resolving interpolation: ", "", text)
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text


def _hint(reason: str) -> str:
    if "Environment variable" in reason:
        return " (set the variable, or give a default: ${oc.env:NAME,default})"
    return ""


def _bool_annotation(annotation: Any) -> tuple[bool, bool]:
    """(is boolean, also takes None) for a resolved annotation or its source text."""
    if isinstance(annotation, str):
        text = annotation.replace(" ", "").replace("typing.", "")
        if text == "bool":
            return True, False
        return text in ("bool|None", "None|bool", "Optional[bool]"), True
    if annotation is bool:
        return True, False
    args = set(typing.get_args(annotation))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and args == {bool, type(None)}:
        return True, True
    return False, False


def boolean_parameters(target: str) -> dict[str, bool]:
    """``{parameter: takes None}`` for the boolean parameters of the class or function ``target`` names.

    Empty when ``target`` cannot be imported (that failure is reported where it is instantiated).
    """
    try:
        from hydra.utils import get_object

        obj = get_object(target)
    except Exception:  # noqa: BLE001 - an unimportable target fails at instantiation, with its own message
        return {}
    func = obj.__init__ if inspect.isclass(obj) else obj
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - annotations naming what this Python cannot evaluate: use their text
        hints = {}
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}
    out = {}
    for name, param in params.items():
        is_bool, nullable = _bool_annotation(hints.get(name, param.annotation))
        if is_bool:
            out[name] = nullable
    return out


def _bool_problem(path: str, value: Any, nullable: bool) -> str | None:
    if isinstance(value, bool) or (value is None and nullable):
        return None
    return f"{path}={value!r} is not a boolean: use true or false{' (or null)' if nullable else ''}"


def non_boolean_keys(cfg: DictConfig) -> list[str]:
    """A message for every boolean key (see the module doc) whose value is not a boolean."""
    problems = []
    for path, parent, key in _walk(cfg, ""):
        if path == "hydra" or path.startswith("hydra."):
            continue
        try:
            node = parent[key]
        except OmegaConfBaseException:
            continue  # reported by unresolvable_keys
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        for name, nullable in boolean_parameters(str(node.get("_target_"))).items():
            if name in node:
                try:
                    value = node[name]
                except OmegaConfBaseException:
                    continue
                problem = _bool_problem(f"{path}.{name}", value, nullable)
                if problem:
                    problems.append(problem)
    for path in PLAIN_BOOLEAN_KEYS:
        try:
            value = OmegaConf.select(cfg, path, default=None, throw_on_missing=False)
        except OmegaConfBaseException:
            continue
        if value is not None:
            problem = _bool_problem(path, value, False)
            if problem:
                problems.append(problem)
    return problems
