"""The closing summary of a training run: what the run folder holds and the two commands to run next.

The log of a run ends with it (cyclegan.training.run.fit), so the user learns where the checkpoint,
the grids and the curves are, and how to translate images with this checkpoint and evaluate it,
without reading the docs first.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from cyclegan.config.hydra_run import hydra_job
from cyclegan.training.sweep import job_overrides

# file or glob (relative to the run folder) -> what it is
_FILES = (
    ("images/step_*.png", "real / translated / reconstructed, both directions (the newest grid)"),
    ("loss_curves.png", "generator and discriminator losses over the run"),
    ("csv/metrics.csv", "every logged value (losses per term, learning rate, validation KID)"),
    ("train.log", "this log"),
)


def _shown(path: Path | str) -> str:
    """``path`` relative to the working directory when it lies inside it (shorter to copy), else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _quote(text: str) -> str:
    return shlex.quote(text)


def data_arguments(data_choice: str | None, overrides: Sequence[str]) -> list[str]:
    """The command-line arguments that select this run's data again: ``data=<choice>`` and the run's own
    ``data.*`` / ``paths.*`` overrides (e.g. ``paths.data_dir=/datasets``)."""
    args = [f"data={data_choice}"] if data_choice else []
    args += [o for o in overrides if o.lstrip("+~").startswith(("data.", "paths."))]
    return args


def closing_summary(run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None, steps: int,
                    data_args: Sequence[str], translate_input: str | os.PathLike | None, direction: str = "BA",
                    grid: str | None = None) -> str:
    """The lines that end a successful run's log (see the module doc). ``direction``: the one the translate
    command uses (a one-direction family such as CUT has only its own); ``grid``: what the image grid shows
    when it is not CycleGAN's."""
    run = Path(run_dir)
    lines = [f"finished after {steps} steps; the run folder {_shown(run)}/ holds:"]
    entries = []
    if checkpoint is not None and Path(checkpoint).is_file():
        inside = Path(checkpoint).resolve().is_relative_to(run.resolve())
        name = str(Path(checkpoint).resolve().relative_to(run.resolve())) if inside else _shown(checkpoint)
        entries.append((name, "the trained networks (and optimizer state, to resume)"))
    for pattern, meaning in _FILES:
        meaning = f"{grid} (the newest grid)" if grid and pattern.startswith("images/") else meaning
        found = sorted(run.glob(pattern))
        if found:
            extra = f"; {len(found)} grids in images/" if len(found) > 1 else ""
            entries.append((str(found[-1].relative_to(run)), meaning + extra))
    entries.append(("result.json", "status and final metrics"))
    width = max(len(name) for name, _ in entries)
    lines += [f"  {name.ljust(width)}  {meaning}" for name, meaning in entries]
    if checkpoint is not None and Path(checkpoint).is_file():
        ckpt = _shown(checkpoint)
        domain = direction[0]
        source = _quote(_shown(translate_input)) if translate_input else f"<folder of domain-{domain} images>"
        output = _quote(_shown(run / f"translated_{direction}"))
        what = "domain B (the photos)" if direction == "BA" else f"domain {domain}"
        lines.append(f"next: translate {what} with this checkpoint, then evaluate it:")
        lines.append(f"  python -m cyclegan.translate --ckpt {_quote(f'{ckpt}:{direction}')} --input {source} "
                     f"--output {output}")
        lines.append("  " + " ".join(["python evaluate.py", _quote(f"ckpt_path={ckpt}"), *map(_quote, data_args)]))
    return "\n".join(lines)


def summarize(cfg, trainer, datamodule) -> str:
    """:func:`closing_summary` of a finished ``trainer.fit`` (train.py's config, trainer and datamodule)."""
    job = hydra_job()
    choice = OmegaConf.select(job, "runtime.choices.data") if job is not None else None
    folder = OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath") or Path(cfg.paths.output_dir) / "checkpoints"
    module = trainer.lightning_module  # a model family names the directions it trains (CUT: one)
    directions = list(module.generators()) if hasattr(module, "generators") else ["AB", "BA"]
    direction = "BA" if "BA" in directions else directions[0]
    try:  # the folder of the source domain's test images, for the translate command
        files = datamodule.files("test", direction[0])
    except Exception:  # noqa: BLE001 - a datamodule without one: the command shows a placeholder
        files = []
    return closing_summary(cfg.paths.output_dir, Path(folder) / "last.ckpt", trainer.global_step,
                           data_arguments(choice or cfg.data.get("name"), job_overrides()),
                           Path(files[0]).parent if files else None, direction,
                           getattr(module, "visual_caption", None) or None)
