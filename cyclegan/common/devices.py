"""Choosing the device a command runs on: one rule and one error for every entry point."""

from __future__ import annotations

import torch

from cyclegan.common.errors import UserError

__all__ = ["DeviceError", "resolve_device"]


class DeviceError(UserError, ValueError):
    """A device name that is not one, or a GPU asked for where there is none."""


def resolve_device(name: str | torch.device | None, key: str = "device") -> torch.device:
    """``None``/``auto`` -> cuda when available, else cpu; anything else as torch spells it
    (cpu, cuda, cuda:1). ``key`` names the option in the error (``--device``, ``device``)."""
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"{key}={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{key}={name} but CUDA is not available here; use {key}=auto or {key}=cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise DeviceError(f"{key}={name} but this machine has {n} GPU(s) (cuda:0 to cuda:{n - 1})")
    return device
