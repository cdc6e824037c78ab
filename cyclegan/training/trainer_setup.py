"""The Lightning Trainer from ``cfg.trainer``: its arguments as Lightning takes them, its refusals as one line.

Lightning validates its own arguments; this module does not do it again. It only

- hands Lightning plain Python values: ``trainer.max_time='{minutes: 10}'`` (the mapping form
  Lightning documents) arrives as a dict, not an OmegaConf node Lightning cannot read;
- runs several processes (DDP) with ``find_unused_parameters=True``: the generator step leaves the
  discriminators without gradients and the discriminator step the generators (``toggle_optimizer``
  freezes the other networks), so each backward of the DDP-wrapped module leaves half of the
  parameters unused and plain ``ddp`` stops with "parameters that were not used in producing the
  loss". ``trainer=cpu trainer.devices=2`` and ``+trainer.strategy=ddp`` therefore train as
  ``conf/trainer/ddp.yaml`` does;
- turns what Lightning refuses, while the Trainer is built or when ``fit`` checks its settings
  (``gradient_clip_val`` or ``accumulate_grad_batches`` under manual optimization, a
  ``val_check_interval`` longer than an epoch, a precision or device it does not know), into one
  :class:`TrainerConfigError` line naming the ``trainer.*`` key, with Lightning's own words.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from cyclegan.common.errors import UserError, find_cause, one_line

log = logging.getLogger(__name__)

__all__ = ["TrainerConfigError", "trainer_arguments", "build_trainer", "lightning_config_errors"]

# DDP strategies -> the same with find_unused_parameters=True (see the module doc)
FIND_UNUSED = {name: f"{name}_find_unused_parameters_true" for name in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")}
# where Lightning checks its settings once fit starts (a refusal raised anywhere else is not about them)
_SETTING_CHECKS = ("configuration_validator.py", "fit_loop.py", "connectors")
# words of Lightning's messages -> the trainer key they are about, when the message does not name it
_ALIASES = {"Timer(duration": "max_time", "total_seconds": "max_time", "argument for __new__": "max_time",
            "Precision": "precision",
            "You requested gpu": "devices", "gpu backend": "accelerator"}


class TrainerConfigError(UserError, ValueError):
    """Lightning refused a ``trainer.*`` setting; the message names it and gives Lightning's reason."""


def trainer_arguments(trainer_cfg: DictConfig | dict) -> dict[str, Any]:
    """``cfg.trainer`` as plain Python values, with the DDP strategy this model needs (module doc)."""
    args = OmegaConf.to_container(trainer_cfg, resolve=True) if isinstance(trainer_cfg, DictConfig) \
        else dict(trainer_cfg)
    strategy = args.get("strategy", "auto")
    if not isinstance(strategy, str):
        return args  # a Strategy object: the user's own choice
    if strategy in FIND_UNUSED:
        args["strategy"] = FIND_UNUSED[strategy]
    elif strategy == "auto" and _processes(args) > 1:
        args["strategy"] = FIND_UNUSED["ddp"]  # what Lightning's "auto" picks for several devices
    if args.get("strategy", "auto") != strategy:
        log.info("trainer.strategy=%s -> %s: each optimizer step leaves the other networks without gradients",
                 strategy, args["strategy"])
    return args


def _processes(args: dict[str, Any]) -> int:
    """How many processes the devices and nodes ask for (1 when it cannot be told without Lightning)."""
    devices, nodes = args.get("devices", "auto"), args.get("num_nodes", 1)
    nodes = nodes if isinstance(nodes, int) and nodes > 0 else 1
    if isinstance(devices, bool):
        return nodes
    if isinstance(devices, list):
        return len(devices) * nodes
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()]) * nodes
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, int) and devices > 0:
        return devices * nodes
    accelerator = str(args.get("accelerator", "auto")).lower()
    gpus = torch.cuda.device_count() if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else 0
    return max(gpus, 1) * nodes  # "auto" / -1: every GPU there is, else one CPU process


def build_trainer(trainer_cfg: DictConfig | dict, **extra: Any) -> pl.Trainer:
    """Instantiate ``cfg.trainer`` (its ``_target_``) with ``extra`` (callbacks, logger, plugins)."""
    args = trainer_arguments(trainer_cfg)
    with lightning_config_errors(trainer_cfg, building=True):
        return hydra.utils.instantiate(args, _convert_="all", **extra)


@contextlib.contextmanager
def lightning_config_errors(trainer_cfg: DictConfig | dict, building: bool = False) -> Iterator[None]:
    """Turn Lightning's refusal of a trainer setting into one :class:`TrainerConfigError` line.

    ``building``: the block builds the Trainer, where every error is about its settings; otherwise
    (around ``fit``) only a ``MisconfigurationException``, or an error raised where Lightning checks its
    settings, is; anything else keeps its traceback.
    """
    try:
        yield
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below; the rest is re-raised
        refusal = _refusal(exc, building)
        if refusal is None:
            raise
        raise TrainerConfigError(_describe(refusal, trainer_cfg)) from exc


def _refusal(exc: BaseException, building: bool) -> BaseException | None:
    """The Lightning error in ``exc``'s chain that refuses a setting (Hydra wraps the Trainer's own)."""
    misconfigured = find_cause(exc, MisconfigurationException)
    if misconfigured is not None:
        return misconfigured
    inner = exc.__cause__ if type(exc).__name__ == "InstantiationException" and exc.__cause__ else exc
    if building:
        return inner
    if not isinstance(inner, (ValueError, TypeError)):
        return None
    frames = [Path(frame.tb_frame.f_code.co_filename) for frame in _traceback(inner)]
    last = frames[-1] if frames else None
    in_lightning = last is not None and any(part in ("pytorch_lightning", "lightning_fabric") for part in last.parts)
    return inner if in_lightning and any(name in last.parts or last.name == name for name in _SETTING_CHECKS) else None


def _traceback(exc: BaseException) -> list:
    frames, tb = [], exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    return frames


def _describe(exc: BaseException, trainer_cfg: DictConfig | dict) -> str:
    args = OmegaConf.to_container(trainer_cfg, resolve=True) if isinstance(trainer_cfg, DictConfig) else dict(trainer_cfg)
    text = one_line(exc)
    # Lightning's messages name the refused setting first (others may follow as advice)
    found = {k: m.start() for k in args if (m := re.search(rf"\b{re.escape(k)}\b", text))}
    found.update({k: text.index(word) for word, k in _ALIASES.items() if word in text and k in args and k not in found})
    keys = [min(found, key=found.get)] if found else _suspects(args)
    named = ", ".join(f"trainer.{k}={args[k]!r}" for k in keys) or "trainer"
    hint = ""
    if "manual optimization" in text:
        hint = (" (the GAN steps its optimizers itself, so Lightning cannot do this for it: drop the key; for a "
                "larger effective batch raise data.batch_size)")
    return f"{named}: {text}{hint}"


def _suspects(args: dict[str, Any]) -> list[str]:
    """Keys holding a string where the Trainer's signature takes none (to name in a message that names no key)."""
    parameters = inspect.signature(pl.Trainer.__init__).parameters
    return [k for k, v in args.items() if k in parameters and isinstance(v, str)
            and not _may_be(v, parameters[k].annotation)]


def _may_be(value: str, annotation: Any) -> bool:
    if annotation in (str, Any, inspect.Parameter.empty):
        return True
    origin, members = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        return any(_may_be(value, member) for member in members)
    if origin is typing.Literal:
        return value in members
    return False
