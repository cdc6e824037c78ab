"""Evaluation report: ``metrics.json`` and a Markdown ``report.md`` (pure file writing, no Lightning).

``metrics`` maps each direction to its metric dict, e.g.::

    {"AB": {"fid": 41.2, "kid_mean": 0.012, ..., "n_real": 751, "n_fake": 1200, "n_train_ref": 300},
     "BA": {...},
     "checkpoint": "epoch=199.ckpt", "inception": "fid_helper:default_1.pt:..."}

Dict values become table columns (one per direction, one row per metric); other top-level values are
listed above the table as run information. A direction's ``not_applicable`` entry (metric -> reason)
shows as "n/a" in the table, with the reasons below it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from cyclegan.common.directions import LABELS, as_direction
from cyclegan.common.files import atomic_write_text

# known metrics, in table order: key -> (label, what it means)
METRIC_INFO = {
    "fid": ("FID ↓", "Fréchet Inception Distance to the real target-domain images"),
    "kid_mean": ("KID ↓", "Kernel Inception Distance (unbiased MMD², mean over subsets)"),
    "kid_std": ("KID std", "standard deviation of KID over subsets"),
    "kid_subset_size": ("KID subset size", "images per KID subset"),
    "mifid": ("MiFID ↓", "FID / thresholded memorization distance (Kaggle, ε = 0.1)"),
    "memorization_distance": ("memorization d", "mean min cosine distance of fakes to training images"),
    "memorization_distance_thr": ("memorization d_thr", "d if d < ε else 1"),
    "ssim": ("SSIM(x, G(x)) ↑", "structure kept by the translation"),
    "cycle_l1": ("cycle L1 ↓", "mean |x − F(G(x))| on [0, 1]"),
    "periodic_artifact_db": ("periodic artefact peak (dB) ↓", "sharpest peak of the translations' mean spectrum "
                             "over the inputs' at periods ≤ 8 px, broad changes removed: 0 = identity; a "
                             "checkerboard or stride grating printed on every image stands out"),
    "periodic_artifact_period": ("… its period (px)", "the period of that peak: 1.41 = the pixel checkerboard, "
                                 "2.83 = a 4-pixel diagonal grating"),
    "d_accuracy": ("D accuracy", "target discriminator's real/fake accuracy; 0.5 = indistinguishable"),
    "target_rate": ("target-domain rate ↑", "share of translations a domain classifier (logistic regression on "
                    "Inception features, fitted on the training images) takes for the target domain"),
    "target_rate_floor": ("… untranslated inputs", "the same share for the inputs before translation (the floor)"),
    "target_rate_ceiling": ("… real target images", "the same share for the real test images of the target "
                            "domain (the ceiling)"),
    "n_real": ("n_real", "real target-domain images (FID/KID reference)"),
    "n_fake": ("n_fake", "generated images"),
    "n_train_ref": ("n_train_ref", "training images used for the memorization distance"),
    "n_pairs": ("n_pairs", "input/translation pairs for SSIM and cycle L1"),
}


def _jsonable(value: Any) -> Any:
    """Plain JSON types; tensors / numpy scalars become numbers, NaN and inf become null."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # torch / numpy
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _fmt(value: Any) -> str:
    value = _jsonable(value)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000 or abs(value) < 1e-3:
            return f"{value:.3e}"
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


NOT_APPLICABLE = "not_applicable"  # a direction's {metric: why it is null}


def _cell(scores: Mapping[str, Any], key: str) -> str:
    return "n/a" if key in (scores.get(NOT_APPLICABLE) or {}) else _fmt(scores.get(key))


def _markdown(metrics: Mapping[str, Any], grid_rel: Optional[str]) -> str:
    directions = [k for k, v in metrics.items() if isinstance(v, Mapping)]
    info = {k: v for k, v in metrics.items() if not isinstance(v, Mapping) and k != "note"}
    lines = ["# Evaluation report", ""]
    if metrics.get("note"):
        lines += [f"> **Note:** {metrics['note']}", ""]
    if info:
        lines += [f"- **{k}**: {_fmt(v)}" for k, v in info.items()] + [""]
    if directions:
        keys: list[str] = [k for k in METRIC_INFO if any(k in metrics[d] for d in directions)]
        extra = sorted({k for d in directions for k in metrics[d]} - set(keys) - {NOT_APPLICABLE})
        keys += extra
        header = ["metric"] + [LABELS.get(as_direction(d), d) for d in directions]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * len(directions)) + "|")
        for k in keys:
            label = METRIC_INFO.get(k, (k, ""))[0]
            lines.append("| " + " | ".join([label] + [_cell(metrics[d], k) for d in directions]) + " |")
        lines.append("")
        for d in directions:
            reasons = metrics[d].get(NOT_APPLICABLE) or {}
            by_reason: dict[str, list[str]] = {}
            for k, why in reasons.items():
                by_reason.setdefault(str(why), []).append(k)
            lines += [f"- n/a for {LABELS.get(as_direction(d), d)}: {', '.join(ks)}: {why}"
                      for why, ks in by_reason.items()]
        if any(metrics[d].get(NOT_APPLICABLE) for d in directions):
            lines.append("")
        used = [k for k in keys if k in METRIC_INFO]
        if used:
            lines += ["<details><summary>What the metrics mean</summary>", ""]
            lines += [f"- **{METRIC_INFO[k][0]}**: {METRIC_INFO[k][1]}" for k in used]
            lines += ["- ↓ lower is better, ↑ higher is better; — not computed", "", "</details>", ""]
    if grid_rel is not None:
        lines += ["## Samples", "", f"![sample grid]({grid_rel})", ""]
    return "\n".join(lines)


def write_report(
    out_dir: Union[str, os.PathLike],
    metrics: Mapping[str, Any],
    grid_png_path: Union[str, os.PathLike, None] = None,
) -> dict[str, Path]:
    """Write ``out_dir/metrics.json`` and ``out_dir/report.md`` (the grid embedded by a relative link;
    a grid outside ``out_dir`` is copied into it). Returns ``{"json": path, "markdown": path}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = atomic_write_text(out / "metrics.json", json.dumps(_jsonable(metrics), indent=2, allow_nan=False) + "\n")

    grid_rel = None
    if grid_png_path is not None:
        grid = Path(grid_png_path)
        if not grid.is_file():
            raise FileNotFoundError(f"no such grid image: {grid}")
        try:
            grid_rel = grid.resolve().relative_to(out.resolve()).as_posix()
        except ValueError:  # outside out_dir: copy it in so the report folder is self-contained
            shutil.copy2(grid, out / grid.name)
            grid_rel = grid.name
    md_path = atomic_write_text(out / "report.md", _markdown(metrics, grid_rel))
    return {"json": json_path, "markdown": md_path}
