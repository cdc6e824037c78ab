"""Sweeps (`python train.py -m ...`): one result file per job, a summary table per sweep, W&B groups.

- ``train()`` writes ``<job dir>/result.json`` (status, overrides, objective, final metrics, error);
  :class:`SweepSummary` writes one for jobs that died before ``train()`` could.
- :class:`SweepSummary` (a Hydra callback, conf/hydra/default.yaml) rebuilds
  ``<sweep dir>/summary.csv`` and ``summary.md`` from every job's result.json after each job and
  at the end of the sweep, then makes the process exit 1 when any job failed. Reading files rather than in-memory returns keeps it right whatever
  the launcher (jobs in other processes or on other machines) and after an interrupted sweep.
- :func:`wandb_sweep_settings`: each job is one W&B run in a group named after the sweep
  directory, named after its overrides, so the dashboard compares them side by side.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cyclegan.config.hydra_run import hydra_job, in_multirun
from cyclegan.common.errors import one_line
from cyclegan.common.files import atomic_write_text  # jobs of a parallel launcher may rewrite a summary at once

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
PREVIOUS_RESULT_FILE = ".result.json.previous"  # a re-run job's earlier result, while it runs again
SUMMARY_NAME = "summary"  # summary.csv, summary.md
SWEEP_FAILED_EXIT_CODE = 1  # a sweep with a failed job (its summary says which)


# ----------------------------------------------------------------------------- the running job
def job_overrides() -> list[str]:
    """The command-line overrides of this job (`hydra.overrides.task`): a sweep's parameters included."""
    job = hydra_job()
    # unresolved: an override may hold an interpolation that cannot resolve (the error being reported)
    return [str(o) for o in OmegaConf.to_container(job.overrides.task, resolve=False)] if job is not None else []


def sweep_parameters() -> list[str]:
    """This job's values of the swept keys ("model.lr=0.0001", ...), without the overrides that all
    jobs share. The swept keys are `hydra.sweeper.params` and the command-line sweeps
    (`a=1,2`, `glob(...)`, `range(...)`, ...) of the sweep, read from <sweep dir>/multirun.yaml."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    job = hydra_job()
    if job is None:
        return []
    keys = {str(k) for k in (job.sweeper.get("params") or {})}
    primary = Path(str(job.sweep.dir)) / "multirun.yaml"
    if primary.is_file():
        with contextlib.suppress(Exception):  # an unreadable file only costs the short name
            task = OmegaConf.load(primary).hydra.overrides.task
            keys |= {o.key_or_group for o in OverridesParser.create().parse_overrides(list(task))
                     if o.is_sweep_override()}
    parser = OverridesParser.create()
    task = job_overrides()
    return [text for text, o in zip(task, parser.parse_overrides(task)) if o.key_or_group in keys]


def wandb_sweep_settings() -> dict[str, Any]:
    """group / name / job_type for a sweep job's W&B run ({} outside a multirun)."""
    if not in_multirun():
        return {}
    job = hydra_job()
    return {
        "group": Path(str(job.sweep.dir)).name,  # outputs/multirun/<date_time> -> <date_time>
        "name": ",".join(sweep_parameters()) or job.job.override_dirname or f"job{job.job.num}",
        "job_type": "sweep",
    }


# ----------------------------------------------------------------------------- result.json
def _finite_or_none(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def write_job_result(
    output_dir: str | os.PathLike,
    status: str,
    *,
    metrics: dict[str, float] | None = None,
    objective: float | None = None,
    objective_metric: str | None = None,
    error: str | None = None,
    overrides: list[str] | None = None,
) -> Path:
    """`<output_dir>/result.json`; NaN/inf become null (JSON has no NaN)."""
    job = hydra_job()
    record = {
        "status": status,
        "job": int(job.job.num) if job is not None and job.job.get("num") is not None else None,
        "overrides": job_overrides() if overrides is None else list(overrides),
        "parameters": sweep_parameters(),
        "objective_metric": objective_metric,
        "objective": _finite_or_none(objective),
        "metrics": {k: _finite_or_none(v) for k, v in sorted((metrics or {}).items())},
        "error": error,
        "output_dir": str(output_dir),
    }
    path = Path(output_dir) / RESULT_FILE
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def restore_previous_result(output_dir: str | os.PathLike) -> dict | None:
    """Put back the result a re-run sweep job had before (it found nothing left to train); None if none."""
    previous = Path(output_dir) / PREVIOUS_RESULT_FILE
    if not previous.is_file():
        return None
    os.replace(previous, Path(output_dir) / RESULT_FILE)
    try:
        return json.loads((Path(output_dir) / RESULT_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def read_results(sweep_dir: str | os.PathLike) -> list[dict]:
    """Every job's result.json under the sweep directory, in job order."""
    results = []
    # job folders are <sweep dir>/<hydra.sweep.subdir>; two levels cover nested subdirs without
    # walking every image and checkpoint folder below them
    paths = [*Path(sweep_dir).glob(f"*/{RESULT_FILE}"), *Path(sweep_dir).glob(f"*/*/{RESULT_FILE}")]
    for path in paths:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            record = {"status": "unreadable", "error": f"cannot read {path}", "overrides": []}
        record.setdefault("output_dir", str(path.parent))
        results.append(record)
    return sorted(results, key=lambda r: (r.get("job") is None, r.get("job") or 0, str(r.get("output_dir"))))


# ----------------------------------------------------------------------------- the summary
def _split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def _parameter_keys(results: list[dict]) -> list[str]:
    """The sweep's parameters: the swept keys the jobs recorded, and any override whose value
    differs between jobs (or is missing in some)."""
    per_job = [dict(map(_split_override, r.get("overrides") or [])) for r in results]
    swept = [_split_override(p)[0] for r in results for p in r.get("parameters") or []]
    varying = [k for job in per_job for k in job if len({other.get(k) for other in per_job}) > 1]
    return list(dict.fromkeys(swept + varying))  # first-seen order, no repeats


def _metric_columns(results: list[dict]) -> list[str]:
    """Final metrics worth a column: validation first, then epoch means and the LR. Per-step values
    and the bare names Lightning also keeps for metrics logged per step and per epoch are left out."""
    keys = {k for r in results for k in (r.get("metrics") or {})} - {"objective"}
    keys = {k for k in keys if not k.endswith("_step") and f"{k}_epoch" not in keys}

    def rank(key: str) -> tuple[int, str]:
        return (0 if key.startswith("val/") else 1 if key.endswith("_epoch") else 2, key)

    return sorted(keys, key=rank)


def summary_rows(results: list[dict]) -> tuple[list[str], list[dict]]:
    params = _parameter_keys(results)
    metrics = _metric_columns(results)
    columns = ["job", "status", *params, "objective", *metrics, "error", "overrides", "output_dir"]
    rows = []
    for record in results:
        overrides = dict(map(_split_override, record.get("overrides") or []))
        row = {"job": record.get("job"), "status": record.get("status"),
               **{p: overrides.get(p, "") for p in params},
               "objective": record.get("objective"),
               **{m: (record.get("metrics") or {}).get(m) for m in metrics},
               "error": record.get("error") or "",
               "overrides": " ".join(record.get("overrides") or []),
               "output_dir": record.get("output_dir", "")}
        rows.append(row)
    return columns, rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):  # override values: shorten the floats Optuna draws (8.874472623995326e-05)
        with contextlib.suppress(ValueError):
            value = float(value) if len(value) > 8 else value
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_summary(sweep_dir: str | os.PathLike) -> tuple[Path, Path] | None:
    """Rebuild summary.csv and summary.md of a sweep from its jobs' result.json files."""
    sweep_dir = Path(sweep_dir)
    results = read_results(sweep_dir)
    if not results:
        return None
    columns, rows = summary_rows(results)

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    csv_path = sweep_dir / f"{SUMMARY_NAME}.csv"
    atomic_write_text(csv_path, buffer.getvalue())

    # Markdown: the sweep's parameters (all overrides when nothing varies) and results;
    # the full overrides and the job folders are in the CSV.
    params = _parameter_keys(results)
    shown = ["job", "status", *(params or ["overrides"]), "objective", *_metric_columns(results)]
    if any(row["error"] for row in rows):
        shown.append("error")
    metric = next((r.get("objective_metric") for r in results if r.get("objective_metric")), None)
    ok = [row for row in rows if row["objective"] is not None]
    failed = sum(row["status"] != "ok" for row in rows)
    lines = [f"# Sweep {sweep_dir.name}", "",
             f"{len(rows)} jobs, {len(rows) - failed} ok, {failed} failed. "
             f"Objective: {metric or 'n/a'} (lower is better)."]
    if ok:
        best = min(ok, key=lambda row: row["objective"])
        chosen = " ".join(f"{p}={best[p]}" for p in params) if params else best["overrides"]
        lines.append(f"Best: job {best['job']} (objective {_cell(best['objective'])}): {chosen}")
    lines += ["", "| " + " | ".join(shown) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    lines += ["| " + " | ".join(_cell(row[c]) for c in shown) + " |" for row in rows]
    md_path = sweep_dir / f"{SUMMARY_NAME}.md"
    atomic_write_text(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path


# ----------------------------------------------------------------------------- the Hydra callback


class SweepSummary(Callback):
    """Keeps `<sweep dir>/summary.{csv,md}` up to date during a multirun (conf/hydra/default.yaml)."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # a job re-run in an old sweep folder (resuming a sweep) must not be summarised by the
        # result of its previous attempt; it is set aside for a job that finds nothing left to train
        if in_multirun(config.hydra):
            output_dir = Path(config.hydra.runtime.output_dir)
            if (output_dir / RESULT_FILE).is_file():
                os.replace(output_dir / RESULT_FILE, output_dir / PREVIOUS_RESULT_FILE)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not in_multirun(config.hydra):
            return
        output_dir = Path(config.hydra.runtime.output_dir)
        if not (output_dir / RESULT_FILE).exists():  # the task died before train() wrote its result
            try:
                value, error = job_return.return_value, None  # re-raises the job's exception
            except Exception as exc:  # noqa: BLE001 - recorded, not handled
                value, error = None, one_line(exc)
            write_job_result(output_dir, "failed" if error else "ok", objective=value, error=error,
                             overrides=list(config.hydra.overrides.task))
        (output_dir / PREVIOUS_RESULT_FILE).unlink(missing_ok=True)
        write_summary(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        paths = write_summary(config.hydra.sweep.dir)
        if paths is None:
            return
        results = read_results(config.hydra.sweep.dir)
        failed = [r for r in results if r.get("status") != "ok"]
        log.info("sweep summary: %s (%d of %d jobs failed)", paths[1], len(failed), len(results))
        if failed:
            # Hydra turns an exception raised here into a warning and exits 0: a script or a CI job
            # running the sweep must see that jobs failed, so exit non-zero, the summary written
            log.error("%d of %d jobs of the sweep failed (first: %s); see %s", len(failed), len(results),
                      failed[0].get("error") or failed[0].get("status"), paths[1])
            sys.exit(SWEEP_FAILED_EXIT_CODE)
