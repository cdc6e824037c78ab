"""What `evaluate.py` does: translate the test split both ways and measure the translations.

Per direction (``A2B``: A test images through G_AB, ``B2A``: B test images through G_BA):

- FID / KID of the translations against real images of the target domain (``metrics.real_ref``:
  its test split by default, or ``train+test``), MiFID (Kaggle's definition) when
  ``metrics.train_ref=true`` against the target domain's TRAINING images;
- SSIM(x, G(x)) and the cycle reconstruction L1 |x - F(G(x))| (on [0, 1]);
- the target discriminator's balanced accuracy: mean of its accuracy on real target test images and on
  the translations (D_B judges A2B, D_A judges B2A; 0.5 = it cannot tell them apart);
- the image count behind every figure (n_real, n_fake, n_train_ref, n_pairs, d_n_real, d_n_fake).

``metrics.directions=[B2A]`` (or ``[A2B]``) evaluates one direction only: the other domain is not
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

import hashlib
import inspect
import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Subset

from cyclegan.errors import UserError, first_line
from cyclegan.inference.checkpoint import CheckpointError, safe_load
from cyclegan.evaluation.metrics import (
    MIFID_EPS,
    PairedMetrics,
    compute_features,
    discriminator_decisions,
    generative_metrics,
    load_inception,
)
from cyclegan.evaluation.report import write_report
from cyclegan.gan.speed import (
    NETWORKS,
    auto_compile,
    compile_for_inference,
    compile_options,
    eager_fallback,
)
from cyclegan.visualize import image_grid, save_image_grid

log = logging.getLogger(__name__)

__all__ = [
    "DIRECTIONS",
    "EvaluationError",
    "evaluate",
    "evaluate_model",
    "load_cyclegan",
    "real_features",
    "resolve_device",
]

# direction key -> (source domain, target domain)
DIRECTIONS = {"A2B": ("A", "B"), "B2A": ("B", "A")}
REAL_REF_SPLITS = ("test", "train", "val")
FEATURE_CACHE_VERSION = "eval-test-pipeline-v1"  # bump when the real-image preprocessing changes


class EvaluationError(UserError, ValueError):
    """A user-fixable problem with the evaluation request (one line naming the key and the fix)."""


# ----------------------------------------------------------------------------------------------------------
# setup helpers
# ----------------------------------------------------------------------------------------------------------


def resolve_device(name: str | None) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as torch spells it (cpu, cuda, cuda:1)."""
    name = str(name or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise EvaluationError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvaluationError(f"device={name} but CUDA is not available here; use device=auto or device=cpu")
    return device


def resolve_compile(spec: Any, device: torch.device, n_images: int) -> Any:
    """``compile=auto`` -> :func:`cyclegan.gan.speed.auto_compile` (a CPU with at least
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


def load_cyclegan(ckpt_path: str | os.PathLike, map_location: Any = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The CycleGAN LightningModule (both generators and discriminators) of a training checkpoint.

    Read with ``torch.load(weights_only=True)`` (:func:`cyclegan.inference.checkpoint.safe_load`); the module is
    rebuilt from ``hyper_parameters`` and loaded strictly from ``state_dict``. Returns ``(model, info)``
    with info = ``{"checkpoint", "epoch", "global_step", "hparams"}``.
    """
    from cyclegan.gan.module import CycleGAN  # lazy: building the module imports Lightning

    if ckpt_path in (None, "", "null"):
        raise EvaluationError(
            "ckpt_path is required: python evaluate.py ckpt_path=outputs/train/<run>/checkpoints/last.ckpt"
        )
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
    accepted = set(inspect.signature(CycleGAN.__init__).parameters) - {"self"}
    unknown = sorted(set(hparams) - accepted)
    if unknown:  # a checkpoint from an older/newer version: build with what this version understands
        log.warning("ignoring checkpoint hyper-parameters unknown to this CycleGAN: %s", ", ".join(unknown))
    try:
        model = CycleGAN(**{k: v for k, v in hparams.items() if k in accepted})
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
    bad = [d for d in items if d not in DIRECTIONS]
    if not items or bad:
        raise EvaluationError(
            f"metrics.directions={directions!r}: use [A2B,B2A] (both, the default), A2B or B2A "
            "(B2A: domain B's test images through G_BA, e.g. photos to paintings)")
    return [d for d in DIRECTIONS if d in items]


def _parse_real_ref(real_ref: str | Sequence[str]) -> list[str]:
    splits = [s.strip() for s in real_ref.split("+")] if isinstance(real_ref, str) else [str(s) for s in real_ref]
    bad = [s for s in splits if s not in REAL_REF_SPLITS]
    if not splits or bad:
        raise EvaluationError(f"metrics.real_ref={real_ref!r}: use test, train+test or train (splits joined by '+')")
    return splits


# ----------------------------------------------------------------------------------------------------------
# real-image features (cached)
# ----------------------------------------------------------------------------------------------------------


def _file_identity(path: str) -> list:
    """(path, size, mtime) for files on disk; the bare string for other images (e.g. TFRecord entries)."""
    try:
        st = os.stat(path)
    except OSError:
        return [path]
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def _concat_datasets(datamodule, splits: Sequence[str], domain: str):
    from torch.utils.data import ConcatDataset

    datasets = [datamodule.domain_dataset(split, domain) for split in splits]
    return datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)


def _loader(dataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available())


def real_features(
    datamodule,
    splits: Sequence[str],
    domain: str,
    extractor: nn.Module,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    cache_dir: Optional[str | os.PathLike] = None,
    num_workers: int = 0,
) -> torch.Tensor:
    """Inception features [N, F] of the real ``domain`` images of ``splits`` after the test pipeline.

    Cached under ``cache_dir`` (``compute_features``' cache) keyed by every file's path, size and mtime,
    the image size and the extractor, so changing any of them recomputes.
    """
    files = [p for split in splits for p in datamodule.files(split, domain)]
    key = json.dumps([FEATURE_CACHE_VERSION, int(datamodule.image_size), [_file_identity(p) for p in files]])
    key = hashlib.sha256(key.encode()).hexdigest()
    loader = _loader(_concat_datasets(datamodule, splits, domain), batch_size, num_workers)
    images = (batch["image"] for batch in loader)  # only consumed on a cache miss
    t0 = time.perf_counter()
    feats = compute_features(images, extractor, batch_size=batch_size, device=device,
                             cache_dir=None if cache_dir is None else Path(cache_dir).expanduser(),
                             cache_key=key if cache_dir is not None else None, value_range=(-1.0, 1.0))
    log.info("real %s features (%s): %d images in %.1f s", domain, "+".join(splits), len(feats),
             time.perf_counter() - t0)
    return feats


# ----------------------------------------------------------------------------------------------------------
# translation pass
# ----------------------------------------------------------------------------------------------------------


@dataclass
class DomainPass:
    """What one pass over a domain's test images collects (source domain X, target Y)."""

    fake_features: list[torch.Tensor] = field(default_factory=list)
    paired: PairedMetrics = field(default_factory=lambda: PairedMetrics(value_range=(-1.0, 1.0)))
    real_judged_real: list[torch.Tensor] = field(default_factory=list)  # D_X on real X images
    fake_judged_real: list[torch.Tensor] = field(default_factory=list)  # D_Y on G(x)
    examples: dict[str, list[torch.Tensor]] = field(default_factory=lambda: {"real": [], "fake": [], "rec": []})


def _evenly_spaced(dataset, max_images: Optional[int]):
    if max_images is None or max_images <= 0 or len(dataset) <= max_images:
        return dataset
    idx = np.linspace(0, len(dataset) - 1, int(max_images)).round().astype(int)
    return Subset(dataset, idx.tolist())


@torch.no_grad()
def _translate_domain(
    loader: Iterable[dict],
    G: nn.Module,
    G_back: nn.Module,
    D_source: nn.Module,
    D_target: nn.Module,
    extractor: nn.Module,
    gan_mode: str,
    device: torch.device,
    batch_size: int,
    bf16: bool,
    num_examples: int,
    pad_to: int = 0,
) -> DomainPass:
    out = DomainPass()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    kept = 0
    for batch in loader:
        x = batch["image"].to(device, non_blocking=True)
        n = x.shape[0]
        x = _pad_batch(x, pad_to)
        with autocast:
            fake = G(x)
            rec = G_back(fake)
            real_ok = discriminator_decisions(D_source, x, gan_mode)[:n]
            fake_fooled = discriminator_decisions(D_target, fake, gan_mode)[:n]
        x = x[:n]
        fake, rec = fake[:n].float().clamp(-1, 1), rec[:n].float().clamp(-1, 1)  # tanh outputs; clamp bf16 rounding
        out.paired.update(x, fake, rec)
        out.real_judged_real.append(real_ok)
        out.fake_judged_real.append(fake_fooled)
        out.fake_features.append(
            compute_features(fake, extractor, batch_size=batch_size, device=device, value_range=(-1.0, 1.0))
        )
        if kept < num_examples:
            take = min(num_examples - kept, x.shape[0])
            for name, t in (("real", x), ("fake", fake), ("rec", rec)):
                out.examples[name].append(t[:take].float().cpu())
            kept += take
    return out


@torch.no_grad()
def _judge_real(loader: Iterable[dict], D: nn.Module, gan_mode: str, device: torch.device, bf16: bool,
                pad_to: int = 0) -> DomainPass:
    """A domain that is only a target: its discriminator's decisions on its real test images."""
    out = DomainPass()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    for batch in loader:
        x = _pad_batch(batch["image"].to(device), pad_to)
        with autocast:
            out.real_judged_real.append(discriminator_decisions(D, x, gan_mode)[: len(batch["image"])])
    return out


def _pad_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero images appended up to ``size``: compiled networks then see one batch shape (no recompilation
    for the last batch); every norm layer is per image, so the padding changes no result."""
    if not size or x.shape[0] >= size:
        return x
    return torch.cat([x, x.new_zeros((size - x.shape[0], *x.shape[1:]))])


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(tensors) if tensors else torch.zeros(0)


def _fraction(flags: torch.Tensor) -> float:
    return float(flags.float().mean()) if flags.numel() else float("nan")


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
    """Translate ``split`` both ways (or the ``directions`` given: ``"B2A"``, ...) and measure it
    (see the module docstring).

    Returns ``(results, examples)``: results = ``{"A2B": {...}, "B2A": {...}}``; examples = the first
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
    datasets = {domain: _evenly_spaced(datamodule.domain_dataset(split, domain), max_images) for domain in nets}
    compiled = compile_for_inference(
        (getattr(model, n) for n in NETWORKS),
        resolve_compile(compile, device, sum(len(datasets[d]) for d in sources)))
    pad_to = batch_size if compiled else 0

    passes: dict[str, DomainPass] = {}
    for domain, (G, G_back, D_source, D_target) in nets.items():
        dataset = datasets[domain]
        loader = _loader(dataset, batch_size, num_workers)
        t0 = time.perf_counter()
        with eager_fallback():
            if domain not in sources:  # only the target of the evaluated direction: its D on real images
                passes[domain] = _judge_real(loader, D_source, gan_mode, device, bf16, pad_to)
                log.info("judged %d real %s images of domain %s in %.1f s", len(dataset), split, domain,
                         time.perf_counter() - t0)
                continue
            passes[domain] = _translate_domain(loader, G, G_back, D_source, D_target, extractor, gan_mode,
                                               device, batch_size, bf16, num_examples, pad_to)
        log.info("translated %d %s images of domain %s in %.1f s%s", len(dataset), split, domain,
                 time.perf_counter() - t0, " (compiled networks; the first batch compiles them)" if compiled else "")

    results: dict[str, dict[str, Any]] = {}
    for key in wanted:
        src, tgt = DIRECTIONS[key]
        common = dict(batch_size=batch_size, device=device, cache_dir=cache_dir, num_workers=num_workers)
        real = real_features(datamodule, splits, tgt, extractor, **common)
        train = real_features(datamodule, ["train"], tgt, extractor, **common) if train_ref else None
        fake = _cat(passes[src].fake_features)
        scores = generative_metrics(real, fake, train_ref_features=train, kid_subset_size_max=kid_subset_size,
                                    kid_subsets=kid_subsets, mifid_eps=mifid_eps, seed=seed)
        scores.update(passes[src].paired.compute())
        # The target discriminator: its real images come from the pass over the target domain.
        real_ok, fake_fooled = _cat(passes[tgt].real_judged_real), _cat(passes[src].fake_judged_real)
        acc_real, acc_fake = _fraction(real_ok), _fraction(~fake_fooled)
        scores.update(
            d_accuracy=(acc_real + acc_fake) / 2,  # balanced: 0.5 means chance whatever the two counts are
            d_accuracy_real=acc_real, d_accuracy_fake=acc_fake,
            d_n_real=int(real_ok.numel()), d_n_fake=int(fake_fooled.numel()),
        )
        results[key] = scores
        log.info("%s: FID %.3f, KID %.5f (n_real %d, n_fake %d), SSIM %.3f, D acc %.3f", key, scores["fid"],
                 scores["kid_mean"], scores["n_real"], scores["n_fake"], scores["ssim"], scores["d_accuracy"])

    examples = {}
    for src, tgt in (DIRECTIONS[key] for key in wanted):
        ex = passes[src].examples
        examples[f"real_{src}"], examples[f"fake_{tgt}"], examples[f"rec_{src}"] = (
            _cat(ex["real"]), _cat(ex["fake"]), _cat(ex["rec"]))
    return results, examples


def grid_rows(examples: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    """Rows of the sample grid: real A, A -> B, A -> B -> A, real B, B -> A, B -> A -> B."""
    order = ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B")
    return [examples[k] for k in order if examples.get(k) is not None and len(examples[k])]


# ----------------------------------------------------------------------------------------------------------
# loggers
# ----------------------------------------------------------------------------------------------------------


def flat_scalars(results: Mapping[str, Mapping[str, Any]], prefix: str = "eval") -> dict[str, float]:
    """``{"eval/A2B/fid": ..., ...}``: the numeric, finite entries of every direction."""
    flat = {}
    for direction, scores in results.items():
        for k, v in scores.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                flat[f"{prefix}/{direction}/{k}"] = float(v)
    return flat


def _log_to_loggers(loggers: list, cfg: DictConfig, scalars: dict[str, float], grid: Optional[np.ndarray]) -> None:
    from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger

    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        logger.log_metrics(scalars, step=0)
        if grid is not None:
            caption = "rows: real A, A→B, A→B→A, real B, B→A, B→A→B"
            if isinstance(logger, WandbLogger):
                logger.log_image(key="eval/samples", images=[grid], caption=[caption], step=0)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("eval/samples", grid, 0, dataformats="HWC")
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

    from cyclegan.training.run import instantiate_group

    t_start = time.perf_counter()
    m = cfg.metrics
    device = resolve_device(cfg.get("device", "auto"))
    _parse_real_ref(m.real_ref)  # fail before any expensive work
    resolve_compile(cfg.get("compile", "auto"), device, 0)
    parse_directions(m.get("directions"))
    # The Inception first: its failure is the most likely one and costs nothing to detect.
    extractor = load_inception(m.inception, device=device)
    model, info = load_cyclegan(cfg.get("ckpt_path"), map_location="cpu")
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()

    results, examples = evaluate_model(
        model, datamodule, extractor,
        split=str(m.get("split", "test")), real_ref=m.real_ref, train_ref=bool(m.train_ref),
        batch_size=int(m.batch_size), max_images=m.get("max_images"), device=device, bf16=bool(cfg.get("bf16", False)),
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
