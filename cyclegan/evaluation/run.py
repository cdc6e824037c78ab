"""What `evaluate.py` does: translate the test split both ways and measure the translations.

Per direction (``AB``: A test images through G_AB, ``BA``: B test images through G_BA):

- FID / KID of the translations against real images of the target domain (``metrics.real_ref``:
  its test split by default, or ``train+test``), MiFID (Kaggle's definition) when
  ``metrics.train_ref=true`` against the target domain's TRAINING images;
- SSIM(x, G(x)) and the cycle reconstruction L1 |x - F(G(x))| (on [0, 1]);
- the target discriminator's balanced accuracy: mean of its accuracy on real target test images and on
  the translations (D_B judges AB, D_A judges BA; 0.5 = it cannot tell them apart);
- the image count behind every figure (n_real, n_fake, n_train_ref, n_pairs, d_n_real, d_n_fake).

``metrics.directions=[BA]`` (or ``[AB]``) evaluates one direction only: the other domain is not
translated, its real test images only go through its discriminator.

Every image goes through the datamodule's test pipeline (resize to ``data.image_size``), real reference
images included, so real and translated images reach the Inception at the same resolution. Real-image
features are cached on disk (``metrics.cache_dir``) keyed by the files (path, size, mtime), the image size
and the Inception, so a second evaluation against the same data only runs the Inception on translations.

Library use::

    model, info = load_cyclegan("last.ckpt")
    results, examples = evaluate_model(model, datamodule, load_inception("auto"))
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

from cyclegan.devices import resolve_device
from cyclegan.directions import DOMAINS_OF, as_direction
from cyclegan.errors import UserError, first_line
from cyclegan.evaluation.inception import load_inception
from cyclegan.evaluation.metrics import MIFID_EPS, generative_metrics
from cyclegan.evaluation.passes import DomainPass, cat, cat_flags, evenly_spaced, real_features, translation_pass
from cyclegan.evaluation.report import write_report
from cyclegan.inference.pretrained import is_pretrained
from cyclegan.loggers import instantiate_group, log_image
from cyclegan.serialization import CheckpointError, safe_load
from cyclegan.models.compile import auto_compile, compile_for_inference, compile_options
from cyclegan.models import ImageGenerator
from cyclegan.models.spec import NETWORKS, CycleGANNetworks
from cyclegan.visualize import image_grid, save_image_grid

log = logging.getLogger(__name__)

__all__ = [
    "DIRECTIONS",
    "EvaluationError",
    "evaluate",
    "evaluate_model",
    "load_cyclegan",
    "real_features",
]

# direction key -> (source domain, target domain)
DIRECTIONS = DOMAINS_OF
REAL_REF_SPLITS = ("test", "train", "val")


IDENTITY = "identity"  # ckpt_path value of the untranslated baseline


class EvaluationError(UserError, ValueError):
    """A user-fixable problem with the evaluation request (one line naming the key and the fix)."""


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


class IdentityGenerator(ImageGenerator):
    """Returns its input: the 'translation' of the untranslated-images baseline."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class IdentityCycleGAN(nn.Module):
    """``ckpt_path=identity``: both generators return their input, so the metrics are those of the
    untranslated test images against the target domain (the floor a translation should beat). There
    are no discriminators: the D accuracy is null."""

    def __init__(self) -> None:
        super().__init__()
        self.G_AB, self.G_BA = IdentityGenerator(), IdentityGenerator()
        self.D_A = self.D_B = None
        self.hparams = {"gan_mode": "lsgan"}


def load_cyclegan(ckpt_path: str | os.PathLike, map_location: Any = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Both generators and discriminators of a training checkpoint (:class:`CycleGANNetworks`).

    Read with ``torch.load(weights_only=True)`` (:func:`cyclegan.serialization.safe_load`); the networks
    are rebuilt from ``hyper_parameters`` and loaded strictly from ``state_dict``. Returns ``(model, info)``
    with info = ``{"checkpoint", "epoch", "global_step", "hparams"}``. ``ckpt_path="identity"`` gives
    :class:`IdentityCycleGAN` (the untranslated baseline).
    """
    if ckpt_path in (None, "", "null"):
        raise EvaluationError(
            "ckpt_path is required: python evaluate.py ckpt_path=outputs/train/<run>/checkpoints/last.ckpt "
            "(or ckpt_path=identity for the untranslated images)"
        )
    if str(ckpt_path) == IDENTITY:
        return IdentityCycleGAN(), {"checkpoint": IDENTITY, "epoch": None, "global_step": None, "hparams": {}}
    if is_pretrained(ckpt_path):  # a bundled generator is one network: no G_AB, no discriminators
        raise EvaluationError(
            f"ckpt_path={ckpt_path}: evaluate needs a training checkpoint (both generators and discriminators); "
            "a bundled generator's metrics are in its model card (python -m cyclegan.translate --list-pretrained)")
    path = Path(str(ckpt_path)).expanduser()
    if not path.is_file():
        raise EvaluationError(f"ckpt_path={ckpt_path}: no such file")
    ckpt = safe_load(path, map_location)
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise CheckpointError(
            f"{path}: evaluate needs a Lightning training checkpoint from train.py (hyper_parameters + state_dict "
            "with both generators and discriminators); exported generators lack the discriminators"
        )
    hparams = dict(ckpt["hyper_parameters"])
    try:
        model = CycleGANNetworks(hparams, init=False)  # the weights come from the checkpoint
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        first = first_line(exc)
        raise CheckpointError(f"{path}: weights do not fit the CycleGAN in its hyper_parameters ({first})") from None
    model.eval().requires_grad_(False)
    info = {"checkpoint": str(path), "epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step"),
            "hparams": hparams}
    return model, info


def _check_image_size(model: nn.Module, image_size: int) -> None:
    probe = torch.empty(1, 3, image_size, image_size, device="meta")
    for name in ("G_AB", "G_BA"):
        check = getattr(getattr(model, name), "check_input_size", None)
        if check is None:
            continue
        try:
            check(probe)
        except ValueError as exc:
            raise EvaluationError(f"data.image_size={image_size} does not fit the checkpoint's generator: {exc}") from None


def parse_directions(directions: str | Sequence[str] | None) -> list[str]:
    """``metrics.directions`` -> the direction keys to evaluate, in DIRECTIONS order (``both`` = all)."""
    if directions is None:
        return list(DIRECTIONS)
    items = [directions] if isinstance(directions, str) else [str(d) for d in directions]
    items = [d.strip() for item in items for d in item.split(",") if d.strip()]
    if items in (["both"], ["all"]):
        return list(DIRECTIONS)
    keys = [as_direction(d) for d in items]  # A2B/B2A (the older spelling) are read as AB/BA
    if not items or None in keys:
        raise EvaluationError(
            f"metrics.directions={directions!r}: use [AB,BA] (both, the default), AB or BA "
            "(BA: domain B's test images through G_BA, e.g. photos to paintings; A2B/B2A also read)")
    return [d for d in DIRECTIONS if d in keys]


def _parse_real_ref(real_ref: str | Sequence[str]) -> list[str]:
    splits = [s.strip() for s in real_ref.split("+")] if isinstance(real_ref, str) else [str(s) for s in real_ref]
    bad = [s for s in splits if s not in REAL_REF_SPLITS]
    if not splits or bad:
        raise EvaluationError(f"metrics.real_ref={real_ref!r}: use test, train+test or train (splits joined by '+')")
    return splits


def evaluate_model(
    model: nn.Module,
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
) -> tuple[dict[str, dict[str, Any]], dict[str, torch.Tensor]]:
    """Translate ``split`` both ways (or the ``directions`` given: ``"BA"``, ...) and measure it
    (see the module docstring).

    Returns ``(results, examples)``: results = ``{"AB": {...}, "BA": {...}}``; examples = the first
    ``num_examples`` images per domain as [-1, 1] tensors, keys ``real_A, fake_B, rec_A, real_B, fake_A, rec_B``.
    """
    device = torch.device(device)
    splits = _parse_real_ref(real_ref)
    datamodule.setup("test")
    _check_image_size(model, int(datamodule.image_size))
    model = model.to(device).eval()
    extractor = extractor.to(device)
    gan_mode = str(model.hparams.get("gan_mode", "lsgan")) if hasattr(model, "hparams") else "lsgan"
    nets = {"A": (model.G_AB, model.G_BA, model.D_A, model.D_B), "B": (model.G_BA, model.G_AB, model.D_B, model.D_A)}
    wanted = parse_directions(directions)
    sources = [DIRECTIONS[key][0] for key in wanted]
    datasets = {domain: evenly_spaced(datamodule.domain_dataset(split, domain), max_images) for domain in nets}
    empty = [domain for domain, dataset in datasets.items() if len(dataset) == 0]
    if empty:  # e.g. a hold-out of data.val_size=0 images: nothing to measure (and no features to compare)
        raise EvaluationError(
            f"the {split} split of domain {' and '.join(empty)} has no images: give test folders "
            "(data.test_dir_a / data.test_dir_b) or, for layouts without a test split, data.val_size >= 1 "
            "(the hold-out used as the test split)")
    compiled = compile_for_inference(  # networks without weights (the identity baseline's) have nothing to compile
        (net for net in (getattr(model, n) for n in NETWORKS) if net is not None and any(True for _ in net.parameters())),
        resolve_compile(compile, device, sum(len(datasets[d]) for d in sources)))
    pad_to = batch_size if compiled else 0

    passes = translation_pass(nets, datasets, sources, extractor, gan_mode=gan_mode, device=device,
                              batch_size=batch_size, bf16=bf16, num_examples=num_examples, pad_to=pad_to,
                              num_workers=num_workers, compiled=compiled, split=split)
    results: dict[str, dict[str, Any]] = {}
    for key in wanted:
        results[key] = score_direction(
            key, passes, datamodule, extractor, real_splits=splits, train_ref=train_ref, batch_size=batch_size,
            device=device, cache_dir=cache_dir, num_workers=num_workers, max_real_images=max_real_images,
            kid_subset_size=kid_subset_size,
            kid_subsets=kid_subsets, mifid_eps=mifid_eps, seed=seed)

    examples = {}
    for src, tgt in (DIRECTIONS[key] for key in wanted):
        ex = passes[src].examples
        examples[f"real_{src}"], examples[f"fake_{tgt}"], examples[f"rec_{src}"] = (
            cat(ex["real"]), cat(ex["fake"]), cat(ex["rec"]))
    return results, examples


def score_direction(
    key: str,
    passes: Mapping[str, DomainPass],
    datamodule,
    extractor: nn.Module,
    *,
    real_splits: Sequence[str],
    train_ref: bool,
    batch_size: int,
    device: torch.device,
    cache_dir: Optional[str | os.PathLike],
    num_workers: int,
    max_real_images: Optional[int],
    kid_subset_size: int,
    kid_subsets: int,
    mifid_eps: float,
    seed: int,
) -> dict[str, Any]:
    """The scores of one direction (``AB`` or ``BA``) from the translation pass: FID/KID/MiFID against
    the target domain's real images, SSIM and cycle L1, the target discriminator's accuracy."""
    src, tgt = DIRECTIONS[key]
    common = dict(batch_size=batch_size, device=device, cache_dir=cache_dir, num_workers=num_workers,
                  max_images=max_real_images)
    real = real_features(datamodule, real_splits, tgt, extractor, **common)
    train = real_features(datamodule, ["train"], tgt, extractor, **common) if train_ref else None
    fake = cat(passes[src].fake_features)
    scores = generative_metrics(real, fake, train_ref_features=train, kid_subset_size_max=kid_subset_size,
                                kid_subsets=kid_subsets, mifid_eps=mifid_eps, seed=seed)
    scores.update(passes[src].paired.compute())
    # The target discriminator: its real images come from the pass over the target domain.
    real_ok, fake_fooled = cat_flags(passes[tgt].real_judged_real), cat_flags(passes[src].fake_judged_real)
    acc_real, acc_fake = _fraction(real_ok), _fraction(~fake_fooled)
    scores.update(
        d_accuracy=(acc_real + acc_fake) / 2,  # balanced: 0.5 means chance whatever the two counts are
        d_accuracy_real=acc_real, d_accuracy_fake=acc_fake,
        d_n_real=int(real_ok.numel()), d_n_fake=int(fake_fooled.numel()),
    )
    log.info("%s: FID %.3f, KID %.5f (n_real %d, n_fake %d), SSIM %.3f, D acc %.3f", key, scores["fid"],
             scores["kid_mean"], scores["n_real"], scores["n_fake"], scores["ssim"], scores["d_accuracy"])
    return scores


def _fraction(flags: torch.Tensor) -> float:
    return float(flags.float().mean()) if flags.numel() else float("nan")


def grid_rows(examples: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    """Rows of the sample grid: real A, A -> B, A -> B -> A, real B, B -> A, B -> A -> B."""
    order = ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B")
    return [examples[k] for k in order if examples.get(k) is not None and len(examples[k])]


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


def _log_to_loggers(loggers: list, cfg: DictConfig, scalars: dict[str, float], grid: Optional[np.ndarray]) -> None:
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        logger.log_metrics(scalars, step=0)
        if grid is not None:
            log_image([logger], "eval/samples", grid, 0, caption="rows: real A, A→B, A→B→A, real B, B→A, B→A→B")
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
    model, info = load_cyclegan(cfg.get("ckpt_path"), map_location="cpu")
    cache_dir = m.get("cache_dir")
    log.info("real-image feature cache: %s", f"{Path(str(cache_dir)).expanduser().resolve()} (metrics.cache_dir; "
             "default <paths.cache_dir>/features)" if cache_dir else "off (metrics.cache_dir=null)")
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()

    results, examples = evaluate_model(
        model, datamodule, extractor,
        split=str(m.get("split", "test")), real_ref=m.real_ref, train_ref=bool(m.train_ref),
        batch_size=int(m.batch_size), max_images=m.get("max_images"), max_real_images=m.get("max_real_images"),
        device=device, bf16=bool(cfg.get("bf16", False)),
        compile=cfg.get("compile", "auto"), directions=m.get("directions"),
        cache_dir=m.get("cache_dir"), num_workers=int(m.get("num_workers", 0) or 0),
        kid_subset_size=int(m.kid_subset_size), kid_subsets=int(m.kid_subsets), mifid_eps=float(m.mifid_eps),
        num_examples=int(cfg.get("num_examples", 8)), seed=int(cfg.get("seed", 0) or 0),
    )

    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = grid_rows(examples)
    columns = max((len(r) for r in rows), default=1)
    grid_path = save_image_grid(out_dir / "samples.png", rows, max_columns=columns) if rows else None
    report = {
        "checkpoint": info["checkpoint"],
        "epoch": info["epoch"],
        "global_step": info["global_step"],
        "data": f"{cfg.data.get('name', '?')} ({str(m.get('split', 'test'))} split, {int(datamodule.image_size)} px)",
        "real_ref": f"{m.real_ref} split(s) of the target domain",
        "inception": getattr(extractor, "extractor_id", str(m.inception)),
        "device": str(device) + (" bf16" if cfg.get("bf16", False) else ""),
        "compile": str(cfg.get("compile", "auto")),
        **results,
    }
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    write_report(out_dir, report, grid_path)

    loggers = instantiate_group(cfg.get("logger"))
    _log_to_loggers(loggers, cfg, flat_scalars(results), image_grid(rows, max_columns=columns) if rows else None)
    log.info("evaluation written to %s (%.1f s)", out_dir, report["seconds"])
    return report
