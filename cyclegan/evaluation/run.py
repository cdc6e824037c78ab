"""What `evaluate.py` does: translate the test split the ways the checkpoint translates and measure it.

It scores what the file provides (:func:`cyclegan.evaluation.networks.load_for_evaluation`): per
direction a generator, and when the file has them the discriminator that judges its output and the
generator that translates back. A CycleGAN checkpoint gives both directions with everything; a bundled
painter (``pretrained:NAME``), an exported generator or a state dict gives one direction and no
discriminator: the metrics that need a missing network are null, with the reason beside them
(``not_applicable`` in metrics.json, a footnote in report.md).

Per direction (``AB``: A test images through G_AB, ``BA``: B test images through G_BA):

- FID / KID of the translations against real images of the target domain (``metrics.real_ref``:
  its test split by default, or ``train+test``), MiFID (Kaggle's definition) when
  ``metrics.train_ref=true`` against the target domain's TRAINING images;
- SSIM(x, G(x)) and the cycle reconstruction L1 |x - F(G(x))| (on [0, 1]; needs the reverse generator);
- the target discriminator's balanced accuracy: mean of its accuracy on real target test images and on
  the translations (D_B judges AB, D_A judges BA; 0.5 = it cannot tell them apart; needs the discriminator);
- the target-domain rate (:mod:`cyclegan.evaluation.domain_rate`): the share of translations a domain
  classifier fitted on the training images takes for the target domain, beside its floor (the
  untranslated inputs) and ceiling (the real target test images);
- the image count behind every figure (n_real, n_fake, n_train_ref, n_pairs, d_n_real, d_n_fake).

``metrics.directions=[BA]`` (or ``[AB]``) evaluates one direction only: the other domain is not
translated, its real test images only go through its discriminator. Directions the file cannot
translate are skipped with a log line.

Every image goes through the datamodule's test pipeline (resize to ``data.eval_size``, by default
``data.image_size``), real reference images included, so real and translated images reach the Inception at
the same resolution. Real-image features are cached on disk (``metrics.cache_dir``) keyed by the files
(path, size, mtime), the image size and the Inception, so a second evaluation against the same data only
runs the Inception on translations.

Library use::

    nets, info = load_for_evaluation("last.ckpt")        # or "pretrained:photo2monet_cpu", an export + direction=
    results, examples = evaluate_model(nets, datamodule, load_inception("auto"))
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from cyclegan.common.directions import DOMAINS_OF, LABELS
from cyclegan.evaluation.domain_rate import DomainClassifier, domain_classifier_for
from cyclegan.evaluation.inception import load_inception
from cyclegan.evaluation.metrics import MIFID_EPS, few_images_note, generative_metrics
from cyclegan.evaluation.networks import (DirectionNetworks, EvaluationError, load_for_evaluation, missing_reasons,
                                          parse_directions, select_directions)
from cyclegan.evaluation.passes import DomainPass, cat, cat_flags, evenly_spaced, real_features, translation_pass
from cyclegan.evaluation.report import write_report
from cyclegan.common.devices import resolve_device
from cyclegan.common.loggers import instantiate_group, log_image
from cyclegan.models.compile import auto_compile, compile_for_inference, compile_options
from cyclegan.common.visualize import image_grid, save_image_grid

log = logging.getLogger(__name__)

__all__ = [
    "DIRECTIONS",
    "EvaluationError",
    "evaluate",
    "evaluate_model",
    "load_for_evaluation",
    "real_features",
]

# direction key -> (source domain, target domain)
DIRECTIONS = DOMAINS_OF
REAL_REF_SPLITS = ("test", "train", "val")


# ----------------------------------------------------------------------------------------------------------
# setup helpers
# ----------------------------------------------------------------------------------------------------------


def resolve_compile(spec: Any, device: torch.device, n_images: int) -> Any:
    """``compile=auto`` -> :func:`cyclegan.models.compile.auto_compile` (a CPU with at least
    ``COMPILE_AUTO_MIN_IMAGES`` images to translate, both directions together); anything else as
    ``model.compile`` (false, true, a mode, a mapping), checked."""
    spec = auto_compile(spec, device, n_images)
    try:
        compile_options(spec)
    except ValueError:
        raise EvaluationError(
            f"compile={spec!r} is not understood; use auto, false, true or a torch.compile mode "
            "(default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs)") from None
    return spec


def _check_image_size(nets: Mapping[str, DirectionNetworks], datamodule) -> None:
    image_size = int(datamodule.eval_size)
    key = "data.image_size" if image_size == int(datamodule.image_size) else "data.eval_size"
    probe = torch.empty(1, 3, image_size, image_size, device="meta")
    for net in nets.values():
        check = getattr(net.generator, "check_input_size", None)
        if check is None:
            continue
        try:
            check(probe)
        except ValueError as exc:
            raise EvaluationError(f"{key}={image_size} does not fit the checkpoint's generator: {exc}") from None


def _parse_real_ref(real_ref: str | Sequence[str]) -> list[str]:
    splits = [s.strip() for s in real_ref.split("+")] if isinstance(real_ref, str) else [str(s) for s in real_ref]
    bad = [s for s in splits if s not in REAL_REF_SPLITS]
    if not splits or bad:
        raise EvaluationError(f"metrics.real_ref={real_ref!r}: use test, train+test or train (splits joined by '+')")
    return splits


def evaluate_model(
    nets: Mapping[str, DirectionNetworks],
    datamodule,
    extractor: nn.Module,
    *,
    split: str = "test",
    real_ref: str | Sequence[str] = "test",
    train_ref: bool = False,
    batch_size: int = 32,
    max_images: Optional[int] = None,
    max_real_images: Optional[int] = None,
    device: torch.device | str = "cpu",
    bf16: bool = False,
    compile: Any = False,
    directions: str | Sequence[str] | None = None,
    cache_dir: Optional[str | os.PathLike] = None,
    num_workers: int = 0,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    mifid_eps: float = MIFID_EPS,
    num_examples: int = 8,
    seed: int = 0,
    target_rate: bool = True,
    target_rate_train_images: Optional[int] = 1000,
    source: str = "the checkpoint",
) -> tuple[dict[str, dict[str, Any]], dict[str, torch.Tensor]]:
    """Translate ``split`` the ways ``nets`` (:func:`load_for_evaluation`) translate, or those of them
    in ``directions``, and measure it (see the module docstring). ``source`` names the file in the
    reasons of not-applicable metrics.

    Returns ``(results, examples)``: results = ``{"AB": {...}, "BA": {...}}``; examples = the first
    ``num_examples`` images per domain as [-1, 1] tensors, keys ``real_A, fake_B, rec_A, real_B, fake_A, rec_B``
    (``rec_*`` only with a reverse generator).
    """
    device = torch.device(device)
    splits = _parse_real_ref(real_ref)
    wanted = select_directions(nets, directions, source)
    nets = {d: nets[d] for d in wanted}
    datamodule.setup("test")
    _check_image_size(nets, datamodule)
    extractor = extractor.to(device)
    modules = list({id(m): m for net in nets.values() for m in net.modules()}.values())
    for module in modules:
        module.to(device).eval()
    datasets = {domain: evenly_spaced(datamodule.domain_dataset(split, domain), max_images) for domain in ("A", "B")}
    empty = [domain for domain, dataset in datasets.items() if len(dataset) == 0]
    if empty:  # e.g. a hold-out of data.val_size=0 images: nothing to measure (and no features to compare)
        raise EvaluationError(
            f"the {split} split of domain {' and '.join(empty)} has no images: give test folders "
            "(data.test_dir_a / data.test_dir_b) or, for layouts without a test split, data.val_size >= 1 "
            "(the hold-out used as the test split)")
    sources = [DOMAINS_OF[key][0] for key in wanted]
    compiled = compile_for_inference(  # networks without weights (the identity baseline's) have nothing to compile
        (m for m in modules if any(True for _ in m.parameters())),
        resolve_compile(compile, device, sum(len(datasets[d]) for d in sources)))
    pad_to = batch_size if compiled else 0

    passes = translation_pass(nets, datasets, extractor, device=device, batch_size=batch_size, bf16=bf16,
                              num_examples=num_examples, pad_to=pad_to, num_workers=num_workers,
                              compiled=compiled, split=split)
    common = dict(batch_size=batch_size, device=device, cache_dir=cache_dir, num_workers=num_workers)
    classifier, no_classifier = None, "off (metrics.target_rate=false)"
    if target_rate:
        try:
            classifier = domain_classifier_for(datamodule, extractor, max_train_images=target_rate_train_images,
                                               **common)
        except ValueError as exc:  # a domain without training images: nothing to fit the classifier on
            no_classifier = str(exc)
    results: dict[str, dict[str, Any]] = {}
    for key in wanted:
        results[key] = score_direction(
            key, nets[key], passes, datamodule, extractor, real_splits=splits, train_ref=train_ref, split=split,
            max_images=max_images, max_real_images=max_real_images, kid_subset_size=kid_subset_size,
            kid_subsets=kid_subsets, mifid_eps=mifid_eps, seed=seed, classifier=classifier,
            no_classifier=no_classifier, source=source, **common)

    examples = {}
    for src, tgt in (DOMAINS_OF[key] for key in wanted):
        ex = passes[src].examples
        examples[f"real_{src}"], examples[f"fake_{tgt}"] = cat(ex["real"]), cat(ex["fake"])
        if ex["rec"]:
            examples[f"rec_{src}"] = cat(ex["rec"])
    return results, examples


def score_direction(
    key: str,
    nets: DirectionNetworks,
    passes: Mapping[str, DomainPass],
    datamodule,
    extractor: nn.Module,
    *,
    real_splits: Sequence[str],
    train_ref: bool,
    split: str,
    batch_size: int,
    device: torch.device,
    cache_dir: Optional[str | os.PathLike],
    num_workers: int,
    max_images: Optional[int],
    max_real_images: Optional[int],
    kid_subset_size: int,
    kid_subsets: int,
    mifid_eps: float,
    seed: int,
    classifier: Optional[DomainClassifier] = None,
    no_classifier: str = "",
    source: str = "the checkpoint",
) -> dict[str, Any]:
    """The scores of one direction (``AB`` or ``BA``) from the translation pass: FID/KID/MiFID against
    the target domain's real images, SSIM and cycle L1, the target discriminator's accuracy, the
    target-domain rate; ``not_applicable``: metric -> why it is null."""
    src, tgt = DOMAINS_OF[key]
    common = dict(batch_size=batch_size, device=device, cache_dir=cache_dir, num_workers=num_workers)
    real = real_features(datamodule, real_splits, tgt, extractor, max_images=max_real_images, **common)
    train = real_features(datamodule, ["train"], tgt, extractor, max_images=max_real_images, **common) if train_ref else None
    fake = cat(passes[src].fake_features)
    scores = generative_metrics(real, fake, train_ref_features=train, kid_subset_size_max=kid_subset_size,
                                kid_subsets=kid_subsets, mifid_eps=mifid_eps, seed=seed)
    scores.update(passes[src].paired.compute())
    scores.update(passes[src].periodic.compute())
    reasons = missing_reasons(nets, source)
    if nets.discriminator is not None:  # its real images come from the pass over the target domain
        real_ok, fake_fooled = cat_flags(passes[tgt].real_judged_real), cat_flags(passes[src].fake_judged_real)
        acc_real, acc_fake = _fraction(real_ok), _fraction(~fake_fooled)
        scores.update(
            d_accuracy=(acc_real + acc_fake) / 2,  # balanced: 0.5 means chance whatever the two counts are
            d_accuracy_real=acc_real, d_accuracy_fake=acc_fake,
            d_n_real=int(real_ok.numel()), d_n_fake=int(fake_fooled.numel()))
    else:
        scores.update(d_n_real=0, d_n_fake=0)
    if classifier is not None:
        inputs = real_features(datamodule, [split], src, extractor, max_images=max_images, **common)
        target_test = real_features(datamodule, [split], tgt, extractor, max_images=max_real_images, **common)
        scores.update(target_rate=classifier.rate(fake, tgt), target_rate_floor=classifier.rate(inputs, tgt),
                      target_rate_ceiling=classifier.rate(target_test, tgt))
    else:
        reasons.update(target_rate=no_classifier, target_rate_floor=no_classifier, target_rate_ceiling=no_classifier)
    for metric in reasons:
        scores[metric] = None
    scores["not_applicable"] = reasons
    log.info("%s: FID %.3f, KID %.5f (n_real %d, n_fake %d), SSIM %.3f, D acc %s, target-domain rate %s "
             "(untranslated %s, real %s)", key, scores["fid"], scores["kid_mean"], scores["n_real"],
             scores["n_fake"], scores["ssim"], _show(scores.get("d_accuracy")), _show(scores.get("target_rate")),
             _show(scores.get("target_rate_floor")), _show(scores.get("target_rate_ceiling")))
    return scores


def _show(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fraction(flags: torch.Tensor) -> float:
    return float(flags.float().mean()) if flags.numel() else float("nan")


# example key -> its row label in the sample grid, in row order
GRID_ROWS = {"real_A": "real A", "fake_B": "A→B", "rec_A": "A→B→A", "real_B": "real B", "fake_A": "B→A",
             "rec_B": "B→A→B"}


def grid_rows(examples: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    """Rows of the sample grid: real A, A -> B, A -> B -> A, real B, B -> A, B -> A -> B (those there are)."""
    return [examples[k] for k in GRID_ROWS if examples.get(k) is not None and len(examples[k])]


def grid_caption(examples: Mapping[str, torch.Tensor]) -> str:
    return "rows: " + ", ".join(v for k, v in GRID_ROWS.items() if examples.get(k) is not None and len(examples[k]))


# ----------------------------------------------------------------------------------------------------------
# loggers
# ----------------------------------------------------------------------------------------------------------


def flat_scalars(results: Mapping[str, Mapping[str, Any]], prefix: str = "eval") -> dict[str, float]:
    """``{"eval/AB/fid": ..., ...}``: the numeric, finite entries of every direction."""
    flat = {}
    for direction, scores in results.items():
        for k, v in scores.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                flat[f"{prefix}/{direction}/{k}"] = float(v)
    return flat


def _log_to_loggers(loggers: list, cfg: DictConfig, scalars: dict[str, float], grid: Optional[np.ndarray],
                    caption: str) -> None:
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        logger.log_metrics(scalars, step=0)
        if grid is not None:
            log_image([logger], "eval/samples", grid, 0, caption=caption)
        logger.save()
        logger.finalize("success")


# ----------------------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------------------


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Everything `python evaluate.py` does once Hydra has composed ``cfg`` (conf/evaluate.yaml).

    Writes ``metrics.json``, ``samples.png`` and ``report.md`` into ``cfg.paths.output_dir`` and logs the
    scalars and the grid to ``cfg.logger``; returns the metrics dict written to metrics.json.
    """
    import hydra

    t_start = time.perf_counter()
    m = cfg.metrics
    device = resolve_device(cfg.get("device", "auto"))
    _parse_real_ref(m.real_ref)  # fail before any expensive work
    resolve_compile(cfg.get("compile", "auto"), device, 0)
    parse_directions(m.get("directions"))
    # The Inception first: its failure is the most likely one and costs nothing to detect.
    extractor = load_inception(m.inception, device=device)
    nets, info = load_for_evaluation(cfg.get("ckpt_path"), direction=cfg.get("direction"), map_location="cpu")
    log.info("%s (%s): %s", info["checkpoint"], info["kind"], "; ".join(
        f"{LABELS[d]}: generator{', discriminator' if n.discriminator is not None else ''}"
        f"{', reverse generator' if n.reverse is not None else ''}" for d, n in nets.items()))
    cache_dir = m.get("cache_dir")
    log.info("real-image feature cache: %s", f"{Path(str(cache_dir)).expanduser().resolve()} (metrics.cache_dir; "
             "default <paths.cache_dir>/features)" if cache_dir else "off (metrics.cache_dir=null)")
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()

    results, examples = evaluate_model(
        nets, datamodule, extractor,
        split=str(m.get("split", "test")), real_ref=m.real_ref, train_ref=bool(m.train_ref),
        batch_size=int(m.batch_size), max_images=m.get("max_images"), max_real_images=m.get("max_real_images"),
        device=device, bf16=bool(cfg.get("bf16", False)),
        compile=cfg.get("compile", "auto"), directions=m.get("directions"),
        cache_dir=m.get("cache_dir"), num_workers=int(m.get("num_workers", 0) or 0),
        kid_subset_size=int(m.kid_subset_size), kid_subsets=int(m.kid_subsets), mifid_eps=float(m.mifid_eps),
        num_examples=int(cfg.get("num_examples", 8)), seed=int(cfg.get("seed", 0) or 0),
        target_rate=bool(m.get("target_rate", True)), target_rate_train_images=m.get("target_rate_train_images"),
        source=info["checkpoint"],
    )
    few = few_images_note({d: (r["n_fake"], r["n_real"]) for d, r in results.items()})
    if few:
        log.warning(few)

    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = grid_rows(examples)
    columns = max((len(r) for r in rows), default=1)
    grid_path = save_image_grid(out_dir / "samples.png", rows, max_columns=columns) if rows else None
    report = {
        "checkpoint": info["checkpoint"],
        "epoch": info["epoch"],
        "global_step": info["global_step"],
        "data": f"{cfg.data.get('name', '?')} ({str(m.get('split', 'test'))} split, {int(datamodule.eval_size)} px)",
        "real_ref": f"{m.real_ref} split(s) of the target domain",
        "inception": getattr(extractor, "extractor_id", str(m.inception)),
        "device": str(device) + (" bf16" if cfg.get("bf16", False) else ""),
        "compile": str(cfg.get("compile", "auto")),
        **({"note": few} if few else {}),
        **results,
    }
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    write_report(out_dir, report, grid_path)

    loggers = instantiate_group(cfg.get("logger"))
    _log_to_loggers(loggers, cfg, flat_scalars(results), image_grid(rows, max_columns=columns) if rows else None,
                    grid_caption(examples))
    log.info("evaluation written to %s (%.1f s)", out_dir, report["seconds"])
    return report
