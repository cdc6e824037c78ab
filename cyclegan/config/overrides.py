"""Command-line checks that run before Hydra composes the config.

Hydra reports a misspelled key (`model.genn=unet`) as a multi-line composition error that names
the key but not the keys that exist. `check_overrides` composes the config with the same group
choices first and, for a dotted key that is not there, prints one line with the keys that are
(and the closest match), then exits with code 2. Anything it cannot judge (sweep syntax,
`+key=` additions, Hydra's own keys, a composition that fails for another reason) is left to
Hydra's own reporting.

`reuse_stored_overrides` makes `train.py ckpt_path=... hydra.run.dir=<old run>` continue that run
with its own configuration: the overrides stored in `<old run>/.hydra/overrides.yaml` come first
on the command line, and the ones given now replace those of the same key. (Hydra rewrites that
file when the job starts, so this has to happen before Hydra runs.)
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


def reuse_stored_overrides(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """(argv to run, a line saying which configuration was taken, or None when nothing was reused).

    Applies to a single run (no -m) given both `ckpt_path` and a `hydra.run.dir` that holds
    `.hydra/overrides.yaml`: the stored overrides go first, minus those whose key is given again.
    A conflicting architecture is then refused by the resume check, as for any checkpoint.
    """
    argv = list(argv)
    if any(arg in ("-m", "--multirun") for arg in argv):
        return argv, None
    run_dir, ckpt_path = _value_of(argv, "hydra.run.dir"), _value_of(argv, "ckpt_path")
    if not run_dir or ckpt_path in (None, "", "null"):
        return argv, None
    stored_file = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not stored_file.is_file():
        return argv, None
    try:
        stored = [str(item) for item in OmegaConf.load(stored_file)]
    except Exception as exc:  # noqa: BLE001 - an unreadable file: say so and run with what was given
        return argv, f"resuming {run_dir} without its stored configuration: {stored_file} is unreadable ({exc})"
    given = {_override_key(arg) for arg in argv}
    kept = [arg for arg in stored if _override_key(arg) not in given]
    replaced = [arg for arg in stored if _override_key(arg) in given and _override_key(arg) != "ckpt_path"]
    note = (f"resuming {run_dir} in place with its stored configuration ({stored_file}): "
            f"{' '.join(kept) or '(no overrides: the defaults)'}")
    if replaced:
        note += f"; replaced by the command line: {' '.join(replaced)}"
    return kept + argv, note
