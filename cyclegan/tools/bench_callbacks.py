"""What the default callbacks (conf/callbacks/default.yaml) cost per training step, against a bare step.

The same config is timed bare and with the callbacks train.py runs by default, alternating the
two ``repeats`` times (a slow spell of a shared machine then hits both); the overhead is the
difference of the medians. ``each`` adds one row per callback alone, to find the one that costs.
Callbacks that need a validation loop (``val_kid``) do nothing here: the benchmark has none.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cyclegan.config.groups import CONF_DIR
from cyclegan.tools.bench_common import Config, Result
from cyclegan.tools.bench_training import bench_training

DEFAULT_CALLBACKS = Path(CONF_DIR) / "callbacks" / "default.yaml"


def default_callbacks(output_dir: str | Path, names: list[str] | None = None) -> dict[str, pl.Callback]:
    """The callbacks of conf/callbacks/default.yaml (those in ``names``; all by default), writing under
    ``output_dir``: composed with conf/train.yaml, so their interpolations (paths.*) resolve as in a run."""
    group = OmegaConf.load(DEFAULT_CALLBACKS)
    unknown = sorted(set(names or ()) - set(group))
    if unknown:
        raise SystemExit(f"bench: no callback {', '.join(unknown)} in {DEFAULT_CALLBACKS}; there are: {', '.join(group)}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=["callbacks=default", f"paths.output_dir={output_dir}"])
    finally:
        GlobalHydra.instance().clear()
    return {name: instantiate(spec) for name, spec in cfg.callbacks.items()
            if spec is not None and (names is None or name in names)}


def bench_callbacks(cfg: Config, args, device, repeats: int = 2, each: bool = False) -> tuple[list[Result], list[str]]:
    """Rows (bare, with the default callbacks, each alone when asked) and the overhead lines."""
    runs: dict[str, list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="cyclegan-bench-callbacks-") as tmp:
        names = list(default_callbacks(tmp))
        # (label, the callbacks' names: None = all of them, [] = none)
        variants = [("bare", []), ("default callbacks", None)] + ([(f"only {n}", [n]) for n in names] if each else [])
        for r in range(repeats):
            for i, (label, chosen) in enumerate(variants):
                callbacks = [] if chosen == [] else list(default_callbacks(Path(tmp) / f"{r}-{i}", chosen).values())
                row = bench_training(cfg, args, device, callbacks=callbacks, name=f"{cfg.name} {label}")
                runs.setdefault(label, []).append(row)
    rows, lines = [], []
    bare = _median(runs["bare"])
    for label, results in runs.items():
        ms = _median(results)
        row = Result(f"{cfg.name} {label}", cfg.batch, pairs_per_s=1000 * cfg.batch / ms if ms else float("nan"),
                     ms_per_step=ms, peak_mib=max(r.peak_mib for r in results),
                     warmup_s=statistics.median(r.warmup_s for r in results),
                     error="; ".join(r.error for r in results if r.error))
        row.extra["ms_per_step_runs"] = [r.ms_per_step for r in results]
        rows.append(row)
        if label != "bare":
            lines.append(f"{label}: {ms - bare:+.2f} ms/step ({100 * (ms - bare) / bare:+.1f} % of the bare "
                         f"{bare:.2f} ms step; runs {', '.join(f'{r.ms_per_step:.2f}' for r in results)})")
    return rows, lines


def _median(results: list[Result]) -> float:
    return statistics.median(r.ms_per_step for r in results)
