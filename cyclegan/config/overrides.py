"""Command-line checks that run before Hydra composes the config.

Hydra reports a misspelled key (`model.genn=unet`) as a multi-line composition error that names
the key but not the keys that exist. `check_overrides` composes the config with the same group
choices first and, for a dotted key that is not there, prints one line with the keys that are
(and the closest match), then exits with code 2. Anything it cannot judge (sweep syntax,
`+key=` additions, Hydra's own keys, a composition that fails for another reason) is left to
Hydra's own reporting.
"""

from __future__ import annotations

import difflib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import cyclegan.config.resolvers  # noqa: F401  (the configs use its resolvers)

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _split(arg: str) -> tuple[str, str] | None:
    if "=" not in arg or arg.startswith(("-", "+", "~")):
        return None
    key, value = arg.split("=", 1)
    return key.strip(), value


def unknown_key_message(cfg: DictConfig, key: str) -> str | None:
    """A one-line explanation when `key` (dotted) is not in `cfg`; None when it is."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not isinstance(parent, DictConfig):
        return None  # e.g. a key under a null node: let Hydra judge
    if leaf in parent:
        return None
    known = sorted(str(k) for k in parent.keys())
    close = difflib.get_close_matches(leaf, known, n=1, cutoff=0.6)
    hint = f" (did you mean {parent_key + '.' if parent_key else ''}{close[0]}?)" if close else ""
    return (f"unknown config key '{key}'{hint}; {parent_key or 'the config'} has: {', '.join(known)}. "
            f"To add a new key on purpose use +{key}=...")


def check_overrides(argv: Sequence[str], config_name: str) -> None:
    """Exit with one line and code 2 when a `group.key=value` override names a key that does not exist."""
    pairs = [p for p in map(_split, argv) if p]
    dotted = [k for k, _ in pairs if "." in k and not k.startswith("hydra.")]
    if not dotted:
        return
    groups = [f"{k}={v}" for k, v in pairs if "." not in k]
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=groups)
    except Exception:  # noqa: BLE001 - anything unusual is Hydra's to report, with its own message
        return
    finally:
        GlobalHydra.instance().clear()
    for key in dotted:
        message = unknown_key_message(cfg, key)
        if message:
            logging.basicConfig(format="[%(name)s][%(levelname)s] %(message)s")
            log.error(message)
            sys.exit(2)
