"""No file of the project names a path outside the repository: what it needs ships with it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# spelled in pieces, so this file does not match itself
OUTSIDE = ["../" + "shared", "/" + "work/", "." + "library"]
TOP_LEVEL_SKIPPED = {"outputs", "multirun", "wandb", "data", ".gpu", ".git"}  # runs, datasets: not the project
SKIPPED_FOLDERS = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".sh", ".json"}


def _project_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in TOP_LEVEL_SKIPPED or rel.parts[0].startswith(".venv") or \
                any(part in SKIPPED_FOLDERS for part in rel.parts[:-1]):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in ("Makefile", "Dockerfile")):
            files.append(path)
    return files


def test_no_project_file_names_a_path_outside_the_repository():
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}"
             for path in _project_files()
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if any(text in line for text in OUTSIDE)]
    assert found == []
