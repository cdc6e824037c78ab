"""A run folder holds a run's files only once the run really starts.

Hydra creates ``hydra.run.dir`` (and writes ``.hydra/*.yaml`` and ``train.log`` into it) before the
task runs, so a run refused by its checks (a bad config key, a missing data folder, ``ckpt_path=last``
with nothing to resume, a finished run resumed) would leave a folder behind, or rewrite the stored
configuration of the run it was pointed at. :class:`RunFolderRecord` (a Hydra callback, conf/train.yaml)
notes what the folder held before Hydra touched it; :func:`undo_refused_run` puts it back:

- a folder that did not exist loses what the refused run wrote (Hydra's files, ``result.json``,
  empty folders), then itself and the empty parents it needed, when nothing else is in it;
- a folder that existed (a finished run, a folder the user made) gets its ``.hydra`` files back and
  keeps everything else; its log records the refused attempt.

Nothing is deleted that is not one of those files or an empty folder, so a user's file is never lost.
Sweep jobs keep their folders: their ``result.json`` records the failure for the sweep summary.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")  # what Hydra writes into <run>/<output_subdir>
RESULT_FILE = "result.json"  # cyclegan.training.sweep.RESULT_FILE (not imported: sweep imports run code)


@dataclass
class FolderBefore:
    """What a run folder held before Hydra started the run in it."""

    path: Path
    existed: bool
    made_below: Path  # the deepest folder that existed: every folder under it on the way to `path` is new
    files: dict[str, bytes | None] = field(default_factory=dict)  # relative path -> content, None: absent
    subfolders: set[str] = field(default_factory=set)  # names of the folders directly inside it


_BEFORE: dict[Path, FolderBefore] = {}


def _key(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(path))


def record_run_folder(run_dir: str | os.PathLike, output_subdir: str | None = ".hydra",
                      log_name: str = "train.log") -> FolderBefore:
    """Note what ``run_dir`` holds now (call it before Hydra creates the folder)."""
    path = _key(run_dir)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    tracked = [RESULT_FILE, log_name] + [f"{output_subdir}/{name}" for name in HYDRA_FILES if output_subdir]
    files = {}
    for rel in tracked:
        try:
            files[rel] = (path / rel).read_bytes()
        except OSError:
            files[rel] = None
    subfolders = {p.name for p in path.iterdir() if p.is_dir()} if path.is_dir() else set()
    before = FolderBefore(path, path.is_dir(), existing, files, subfolders)
    _BEFORE[path] = before
    return before


def take_record(run_dir: str | os.PathLike) -> FolderBefore | None:
    """The record of ``run_dir`` made for this run, removed from the table (a later run in this
    process never reads a record that was made for another); None when train.py did not make one."""
    return _BEFORE.pop(_key(run_dir), None)


def _remove_empty_folders(folder: Path) -> None:
    """Remove ``folder`` and the folders below it when they hold no file (bottom up)."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            _remove_empty_folders(child)
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty: something else is in it, and stays


def undo_refused_run(before: FolderBefore | None) -> bool:
    """Put the run folder back as it was before a refused run (see the module doc).

    False when nothing was recorded for it (train() called without train.py, e.g. from a notebook or
    a test): then nothing is touched.
    """
    if before is None:
        return False
    folder = before.path
    for rel, content in before.files.items():
        path = folder / rel
        try:
            if content is None:
                if not before.existed or not rel.endswith(".log"):  # an existing folder's log records the attempt
                    path.unlink(missing_ok=True)
            elif not path.is_file() or path.read_bytes() != content:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        except OSError as exc:
            log.warning("could not restore %s (%s)", path, exc.strerror)
    if folder.is_dir():
        for child in folder.iterdir():
            if child.is_dir() and child.name not in before.subfolders:
                _remove_empty_folders(child)
    if not before.existed:
        # the run folder, then the parents this run created, while they are empty
        current = folder
        while current != before.made_below and current.is_dir():
            try:
                current.rmdir()
            except OSError:
                log.info("kept %s: it holds files this run did not write", current)
                break
            current = current.parent
    return True


class RunFolderRecord(Callback):
    """Hydra callback: note what the run folder holds before Hydra creates it (single runs)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            run_dir = OmegaConf.select(config, "hydra.run.dir")
            name = OmegaConf.select(config, "hydra.job.name", default=None) or "train"
            subdir = OmegaConf.select(config, "hydra.output_subdir", default=".hydra")
        except Exception:  # noqa: BLE001 - an unresolvable run dir is OutputDirPreflight's to report
            return
        if run_dir:
            record_run_folder(run_dir, subdir, f"{name}.log")
