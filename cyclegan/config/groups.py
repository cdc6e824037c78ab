"""The config groups under conf/ and their selectable options, for the override checks and `--help`.

A group's options are its yaml files without the internal ``_*.yaml`` bases (``data/_common.yaml``,
``data/_berkeley.yaml``), which Hydra would list as options too.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

__all__ = ["CONF_DIR", "group_options", "config_groups", "help_groups"]

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def group_options(group: str) -> list[str]:
    """The selectable options of a config group: its yaml files, without the internal `_*.yaml` bases."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def config_groups(config_name: str) -> list[str]:
    """The groups in the defaults list of conf/<config_name>.yaml, in order (Hydra's own left out)."""
    defaults = OmegaConf.load(CONF_DIR / f"{config_name}.yaml").get("defaults", [])
    keys = [str(next(iter(item))) for item in defaults if isinstance(item, DictConfig) and len(item) == 1]
    # `optional experiment`, `override /data`, `group@package`: the group's folder name
    groups = [k.split()[-1].lstrip("/").split("@")[0] for k in keys]
    return [g for g in groups if not g.startswith("hydra") and (CONF_DIR / g).is_dir()]


def help_groups(config_name: str) -> str:
    """`group: option, option` lines for --help (no internal files), and the launchers."""
    lines = [f"{g}: {', '.join(group_options(g))}" for g in config_groups(config_name)]
    launchers = ", ".join(group_options("hydra/launcher"))
    lines.append(f"hydra/launcher: basic (default, one job after the other), {launchers} (with -m; "
                 f'pip install -e ".[sweeps]")')
    return "\n".join(lines)
