"""A resumed run's ``csv/metrics.csv`` holds every step once: the rows logged before its checkpoint,
carried over from the run it continues, then its own.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from cyclegan.training.resume_checkpoint import read_checkpoint

log = logging.getLogger(__name__)

METRICS_CSV_KEY = "metrics_csv"  # the CSVLogger file holding a run's history, stored in its checkpoints
METRICS_FILE = "metrics.csv"


def carry_over_metrics(loggers: list, ckpt_path: str | os.PathLike) -> None:
    """Give every CSVLogger of a resumed run the rows its run logged before ``ckpt_path``.

    The rows come from the file stored in the checkpoint by ExactResume (else the usual
    ``<run>/csv/metrics.csv`` beside ``<run>/checkpoints/``). Only steps before the checkpoint's
    global step are kept: later ones were logged after the checkpoint and are trained again. Must
    run before the logger writes: Lightning's CSV writer deletes an existing metrics.csv.
    """
    targets = [logger for logger in loggers if isinstance(logger, CSVLogger)]
    if not targets or rank_zero_only.rank != 0:
        return
    checkpoint = read_checkpoint(ckpt_path)
    stored = checkpoint.get(METRICS_CSV_KEY)
    fallback = Path(ckpt_path).resolve().parent.parent / "csv" / METRICS_FILE
    source = next((Path(p) for p in (stored, fallback) if p and Path(p).is_file()), None)
    if source is None:
        log.info("no metrics history beside %s: csv/%s starts at the resumed step", ckpt_path, METRICS_FILE)
        return
    resume_step = int(checkpoint["global_step"])
    with open(source, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = [row for row in reader if row.get("step") not in (None, "") and int(float(row["step"])) < resume_step]
    for logger in targets:
        writer = logger.experiment  # created now: removes the old file (read above) if it is the same one
        with open(writer.metrics_file_path, "w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=header)
            out.writeheader()
            out.writerows(rows)
        writer.metrics_keys = sorted(header)  # later rows with new keys rewrite the file with all columns
    log.info("carried %d rows of metrics history (steps < %d) over from %s", len(rows), resume_step, source)
