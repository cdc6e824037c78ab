"""Command-line checks that run before Hydra composes the config.

Hydra reports a misspelled key (`model.genn=unet`) or group option (`data=monet`) as a multi-line
composition error, and its option listing includes the internal base files (`_common`,
`_berkeley`). `check_overrides` judges both first: an option that is not a file of its group, or
a dotted key that is not in the config composed with the same group choices, is reported in one
line with what exists (and the closest match), and the process exits with code 2. Anything it
cannot judge (sweep functions, `+key=` additions, Hydra's own keys, a composition that fails for
another reason) is left to Hydra's own reporting.

The group options come from :mod:`cyclegan.config.groups`, which `--help` lists too.

`reuse_stored_overrides` makes `train.py ckpt_path=... hydra.run.dir=<old run>` continue that run
with its own configuration: the overrides stored in `<old run>/.hydra/overrides.yaml` come first
on the command line, and the ones given now replace those of the same key. (Hydra rewrites that
file when the job starts, so this has to happen before Hydra runs.)
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cyclegan.config.groups import CONF_DIR, config_groups, group_options, help_groups  # noqa: F401 (re-exported)
from cyclegan.config.resolvers import LauncherDevicesError  # also registers the resolvers the configs use
from cyclegan.common.errors import UserError
from cyclegan.common.errors import find_cause

log = logging.getLogger(__name__)



def _split(arg: str) -> tuple[str, str] | None:
    if "=" not in arg or arg.startswith(("-", "+", "~")):
        return None
    key, value = arg.split("=", 1)
    return key.strip(), value


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


# Options provided by Hydra plugins of the [sweeps] extra: the override -> the plugin's module
PLUGINS = {
    ("hydra/launcher", "submitit_local"): "hydra_plugins.hydra_submitit_launcher",
    ("hydra/launcher", "submitit_slurm"): "hydra_plugins.hydra_submitit_launcher",
    ("hparams_search", "optuna"): "hydra_plugins.hydra_optuna_sweeper",
    ("hydra/sweeper", "optuna"): "hydra_plugins.hydra_optuna_sweeper",
}


def missing_plugin_message(group: str, value: str) -> str | None:
    """One line when `group=value` needs a Hydra plugin of the [sweeps] extra that is not installed."""
    module = PLUGINS.get((group, value.strip()))
    if module is None:
        return None
    try:
        if importlib.util.find_spec(module) is not None:
            return None
    except (ImportError, ValueError):
        pass
    package = module.removeprefix("hydra_plugins.").replace("_", "-")
    return f'{group}={value} needs the {package} plugin, which is not installed: pip install -e ".[sweeps]"'


def _compose(config_name: str, overrides: list[str], hydra_config: bool = False) -> DictConfig | None:
    """The config Hydra would compose (None when composing fails: Hydra reports that itself)."""
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides, return_hydra_config=hydra_config)
    except Exception:  # noqa: BLE001 - anything unusual is Hydra's to report, with its own message
        return None
    finally:
        GlobalHydra.instance().clear()


def launcher_message(cfg: DictConfig) -> str | None:
    """One line when hydra.launcher's resources (integers for submitit) cannot be resolved."""
    for key in ("nodes", "tasks_per_node", "gpus_per_node"):
        try:
            OmegaConf.select(cfg, f"hydra.launcher.{key}", throw_on_resolution_failure=True)
        except Exception as exc:  # noqa: BLE001 - OmegaConf wraps the resolver's error
            cause = find_cause(exc, LauncherDevicesError)
            return str(cause) if cause is not None else None
    return None


def cluster_message(cfg: DictConfig) -> str | None:
    """One line when hydra.launcher submits to Slurm from a machine without Slurm's `srun`
    (submitit's own check, which otherwise ends a 29-line traceback)."""
    target = str(OmegaConf.select(cfg, "hydra.launcher._target_", default="") or "")
    if target.endswith("SlurmLauncher") and shutil.which("srun") is None:
        return ("hydra/launcher=submitit_slurm submits the jobs to a Slurm cluster, but this machine has no `srun` "
                "on its PATH: run the sweep from the cluster's login node, or drop hydra/launcher to run the jobs here")
    return None


def unknown_key_message(cfg: DictConfig, key: str) -> str | None:
    """A one-line explanation when `key` (dotted) is not in `cfg`; None when it is."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if parent is None and parent_key and not _exists(cfg, parent_key):  # evaluate.py model.gen=...: no model here
        missing = parent_key
        while "." in missing and not _exists(cfg, missing.rpartition(".")[0]):
            missing = missing.rpartition(".")[0]
        above, _, name = missing.rpartition(".")
        node = OmegaConf.select(cfg, above) if above else cfg
        known = sorted(str(k) for k in node.keys()) if isinstance(node, DictConfig) else []
        return f"unknown config key '{key}': {above or 'the config'} has no '{name}'; it has: {', '.join(known)}"
    if not isinstance(parent, DictConfig):
        return None  # e.g. a key under a null node: let Hydra judge
    if leaf in parent:
        return None
    known = sorted(str(k) for k in parent.keys())
    close = difflib.get_close_matches(leaf, known, n=1, cutoff=0.6)
    hint = f" (did you mean {parent_key + '.' if parent_key else ''}{close[0]}?)" if close else ""
    return (f"unknown config key '{key}'{hint}; {parent_key or 'the config'} has: {', '.join(known)}. "
            f"To add a new key on purpose use +{key}=...")


def _exists(cfg: DictConfig, key: str) -> bool:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    return isinstance(parent, DictConfig) and leaf in parent


def _exit_with(message: str) -> None:
    logging.basicConfig(format="[%(name)s][%(levelname)s] %(message)s")
    log.error(message)
    sys.exit(2)


def check_overrides(argv: Sequence[str], config_name: str) -> None:
    """Exit with one line and code 2 when a `group=option` override names an option that does not
    exist or needs a plugin that is missing, a `group.key=value` override a key that does not exist,
    or a submitit launcher cannot be given the devices of trainer.devices."""
    pairs = [p for p in map(_split, argv) if p]
    # options from other config folders (--config-dir, hydra.searchpath) are unknown here: Hydra judges them
    other_folders = any(a.startswith(("--config-dir", "-cd", "--config-path", "-cp")) for a in argv) or \
        any(k == "hydra.searchpath" for k, _ in pairs)
    groups_here = [] if other_folders else config_groups(config_name)
    for key, value in pairs:
        message = (unknown_option_message(key, value) if key in groups_here else None) or \
            missing_plugin_message(key, value)
        if message:
            _exit_with(message)
    dotted = [k for k, _ in pairs if "." in k and not k.startswith("hydra.")]
    groups = [f"{k}={v}" for k, v in pairs if "." not in k]
    if dotted:
        cfg = _compose(config_name, groups)
        for key in dotted if cfg is not None else ():
            message = unknown_key_message(cfg, key)
            if message and config_name == "evaluate" and key.startswith("model."):
                message += " (evaluate.py builds the networks the checkpoint describes: ckpt_path=...)"
            if message:
                _exit_with(message)
    if any(k == "hydra/launcher" for k, _ in pairs):
        cfg = _compose(config_name, [f"{k}={v}" for k, v in pairs], hydra_config=True)
        message = (launcher_message(cfg) or cluster_message(cfg)) if cfg is not None else None
        if message:
            _exit_with(message)


# ----------------------------------------------------------------------------- resume in place
def _override_key(arg: str) -> str | None:
    """The key an override sets or deletes (`+a.b=1`, `++a.b=1`, `~a.b`, `a.b=1`, `data=x` -> a.b / data)."""
    body = arg.lstrip("+~")
    if not body or arg.startswith("-"):
        return None
    return body.split("=", 1)[0].strip()


def _value_of(argv: Sequence[str], key: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in argv if "=" in arg and _override_key(arg) == key]
    return values[-1] if values else None


class StoredOverrideRefused(UserError):
    """A run folder's stored overrides hold one that could run code or add to the config."""


def _special_key(key: str) -> bool:
    """`_target_`, `_args_`, `_partial_`, ...: keys that tell Hydra what to call and how."""
    return any(part.startswith("_") and part.endswith("_") and len(part) > 2 for part in key.split("."))


def check_stored_override(stored: str, given: Sequence[str], stored_file: Path) -> None:
    """Refuse a stored override that adds to the config (`+key`, `++key`) or names a `_target_`-like key,
    unless the command line repeats it. A run folder is as untrusted as a checkpoint: resuming one
    must not run code that its `.hydra/overrides.yaml` names."""
    if stored in given:
        return  # the user repeats it: their choice
    key = _override_key(stored) or stored
    if stored.startswith("+"):
        why = "adds a config entry"
    elif _special_key(key):
        why = "names what Hydra instantiates"
    else:
        return
    raise StoredOverrideRefused(
        f"refusing to resume with {stored_file}: its override '{stored}' {why} ({key}), which could run code, "
        "and a run folder is not trusted; repeat it on the command line if you trust it, or remove it from that file"
    )


def reuse_stored_overrides(argv: Sequence[str]) -> tuple[list[str], str | None, int]:
    """(argv to run, a line saying which configuration was taken or None, that line's logging level).

    Applies to a single run (no -m) given both `ckpt_path` and a `hydra.run.dir`: the overrides
    stored in `<run>/.hydra/overrides.yaml` go first, minus those whose key is given again; each
    stored override may only set a key the config has (see :func:`check_stored_override`, which
    raises StoredOverrideRefused). A conflicting architecture is then refused by the resume check,
    as for any checkpoint. A run folder without its stored configuration is resumed with the
    defaults and the command line, and said so as a warning.
    """
    argv = list(argv)
    if any(arg in ("-m", "--multirun") for arg in argv):
        return argv, None, logging.INFO
    run_dir, ckpt_path = _value_of(argv, "hydra.run.dir"), _value_of(argv, "ckpt_path")
    if not run_dir or ckpt_path in (None, "", "null"):
        return argv, None, logging.INFO
    stored_file = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not stored_file.is_file():
        if not Path(run_dir).is_dir():
            return argv, None, logging.INFO  # no run there: ckpt_path=last says so in one line
        return argv, (f"resuming {run_dir} without its stored configuration: {stored_file.parent} is missing, so the "
                      "defaults and the command line are used; pass the run's overrides again if it had any"), \
            logging.WARNING
    try:
        stored = [str(item) for item in OmegaConf.load(stored_file)]
    except Exception as exc:  # noqa: BLE001 - an unreadable file: say so and run with what was given
        return argv, (f"resuming {run_dir} without its stored configuration: {stored_file} is unreadable ({exc})"), \
            logging.WARNING
    given = {_override_key(arg) for arg in argv}
    kept = [arg for arg in stored if _override_key(arg) not in given]
    for arg in kept:
        check_stored_override(arg, argv, stored_file)
    replaced = [arg for arg in stored if _override_key(arg) in given and _override_key(arg) != "ckpt_path"]
    note = (f"resuming {run_dir} in place with its stored configuration ({stored_file}): "
            f"{' '.join(kept) or '(no overrides: the defaults)'}")
    if replaced:
        note += f"; replaced by the command line: {' '.join(replaced)}"
    return kept + argv, note, logging.INFO
