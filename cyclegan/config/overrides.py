"""Command-line checks that run before Hydra composes the config.

Hydra reports a misspelled key (`model.genn=unet`) or group option (`data=monet`) as a multi-line
composition error, and its option listing includes the internal base files (`_common`,
`_berkeley`). `check_overrides` judges both first: an option that is not a file of its group, or
a dotted key that is not in the config composed with the same group choices, is reported in one
line with what exists (and the closest match), and the process exits with code 2. Anything it
cannot judge (sweep functions, `+key=` additions, Hydra's own keys, a composition that fails for
another reason) is left to Hydra's own reporting.

`group_options` is also what `--help` lists (the `cyclegan_groups` resolver in hydra.help.template).
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


def group_options(group: str) -> list[str]:
    """The selectable options of a config group: its yaml files, without the internal `_*.yaml` bases."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def config_groups(config_name: str) -> list[str]:
    """The groups in the defaults list of conf/<config_name>.yaml, in order (Hydra's own left out)."""
    defaults = OmegaConf.load(CONF_DIR / f"{config_name}.yaml").get("defaults", [])
    groups = [str(next(iter(item))) for item in defaults if isinstance(item, DictConfig) and len(item) == 1]
    return [g for g in groups if not g.startswith("hydra") and (CONF_DIR / g).is_dir()]


def help_groups(config_name: str) -> str:
    """`group: option, option` lines for --help (no internal files), and the launchers."""
    lines = [f"{g}: {', '.join(group_options(g))}" for g in config_groups(config_name)]
    launchers = ", ".join(group_options("hydra/launcher"))
    lines.append(f"hydra/launcher: basic (default, one job after the other), {launchers} (with -m; "
                 f'pip install -e ".[sweeps]")')
    return "\n".join(lines)


def unknown_option_message(group: str, value: str) -> str | None:
    """One line when `group=value` names no option of the group; None when every named option exists."""
    value = value.strip()
    if not value or any(c in value for c in "()$*"):  # sweep functions, interpolations, globs: Hydra's
        return None
    items = [v.strip() for v in value.strip("[]").split(",") if v.strip()]  # a list or a -m sweep
    options = group_options(group)
    for item in items:
        if item == "null" or item in options or (not item.startswith("_") and "/" in item
                                                   and (CONF_DIR / group / f"{item}.yaml").is_file()):
            continue
        close = difflib.get_close_matches(item, options, n=1, cutoff=0.6)
        hint = f" (did you mean {group}={close[0]}?)" if close else ""
        return f"{group}={item} is not an option of the {group} group{hint}; the options are: {', '.join(options)}"
    return None


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


def _exit_with(message: str) -> None:
    logging.basicConfig(format="[%(name)s][%(levelname)s] %(message)s")
    log.error(message)
    sys.exit(2)


def check_overrides(argv: Sequence[str], config_name: str) -> None:
    """Exit with one line and code 2 when a `group=option` override names an option that does not
    exist, or a `group.key=value` override a key that does not exist."""
    pairs = [p for p in map(_split, argv) if p]
    groups_here = config_groups(config_name)
    for key, value in pairs:
        message = unknown_option_message(key, value) if key in groups_here else None
        if message:
            _exit_with(message)
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
            _exit_with(message)
