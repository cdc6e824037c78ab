"""The translation pass of ``evaluate.py``: the data it reads, and what it collects per domain.

Each domain's test images are read once (the datamodule's test pipeline): translated, cycled back,
judged by the discriminators the checkpoint has and turned into Inception features of the translations. Real reference
features (the target domains, for FID/KID/MiFID) are computed here too, with their on-disk cache.
The scores are computed from what this collects (:func:`cyclegan.evaluation.run.score_direction`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Subset

from cyclegan.common.directions import DOMAINS_OF
from cyclegan.evaluation.discriminator import discriminator_decisions
from cyclegan.evaluation.features import compute_features
from cyclegan.evaluation.networks import DirectionNetworks
from cyclegan.evaluation.paired import PairedMetrics
from cyclegan.evaluation.periodic import PeriodicArtifacts
from cyclegan.evaluation.progress import Progress
from cyclegan.models.compile import eager_fallback
from cyclegan.common.subsets import evenly_spaced_indices

log = logging.getLogger(__name__)

__all__ = ["DomainPass", "FEATURE_CACHE_VERSION", "real_features", "translation_pass", "evenly_spaced", "make_loader", "cat"]

FEATURE_CACHE_VERSION = "eval-test-pipeline-v1"  # bump when the real-image preprocessing changes


def _file_identity(path: str) -> list:
    """(path, size, mtime) for files on disk; the bare string for other images (e.g. TFRecord entries)."""
    try:
        st = os.stat(path)
    except OSError:
        return [path]
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def _concat_datasets(datamodule, splits: Sequence[str], domain: str):
    datasets = [datamodule.domain_dataset(split, domain) for split in splits]
    return datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)


def make_loader(dataset, batch_size: int, num_workers: int) -> DataLoader:
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
    max_images: Optional[int] = None,
) -> torch.Tensor:
    """Inception features [N, F] of the real ``domain`` images of ``splits`` after the test pipeline
    (at most ``max_images`` of them, evenly spaced).

    Cached under ``cache_dir`` (``compute_features``' cache) keyed by every file's path, size and mtime,
    the image size and the extractor, so changing any of them recomputes. Several whole splits are
    cached split by split: ``train+test`` reuses the features of ``train`` (the domain classifier's,
    MiFID's) and of ``test``.
    """
    files = [p for split in splits for p in datamodule.files(split, domain)]
    if len(splits) > 1 and len(evenly_spaced_indices(len(files), max_images)) == len(files):
        return torch.cat([real_features(datamodule, [split], domain, extractor, batch_size=batch_size, device=device,
                                        cache_dir=cache_dir, num_workers=num_workers) for split in splits])
    keep = evenly_spaced_indices(len(files), max_images)
    files = [files[i] for i in keep]
    key = json.dumps([FEATURE_CACHE_VERSION, int(datamodule.eval_size), [_file_identity(p) for p in files]])
    key = hashlib.sha256(key.encode()).hexdigest()
    dataset = _concat_datasets(datamodule, splits, domain)
    if len(keep) < len(dataset):
        dataset = Subset(dataset, keep)
    progress = Progress(f"real {domain} features ({'+'.join(splits)})", len(dataset), log)
    loader = progress.track(make_loader(dataset, batch_size, num_workers), count=lambda batch: len(batch["image"]))
    images = (batch["image"] for batch in loader)  # only consumed on a cache miss
    feats = compute_features(images, extractor, batch_size=batch_size, device=device,
                             cache_dir=None if cache_dir is None else Path(cache_dir).expanduser(),
                             cache_key=key if cache_dir is not None else None, value_range=(-1.0, 1.0))
    if progress.done:
        progress.finish(" (now cached)" if cache_dir is not None else "")
    else:
        log.info("real %s features (%s): %d images from the cache", domain, "+".join(splits), len(feats))
    return feats


@dataclass
class DomainPass:
    """What one pass over a domain's test images collects (source domain X, target Y)."""

    fake_features: list[torch.Tensor] = field(default_factory=list)
    paired: PairedMetrics = field(default_factory=lambda: PairedMetrics(value_range=(-1.0, 1.0)))
    periodic: PeriodicArtifacts = field(default_factory=PeriodicArtifacts)
    real_judged_real: list[torch.Tensor] = field(default_factory=list)  # D_X on real X images
    fake_judged_real: list[torch.Tensor] = field(default_factory=list)  # D_Y on G(x)
    examples: dict[str, list[torch.Tensor]] = field(default_factory=lambda: {"real": [], "fake": [], "rec": []})


def evenly_spaced(dataset, max_images: Optional[int]):
    keep = evenly_spaced_indices(len(dataset), max_images)
    return dataset if len(keep) == len(dataset) else Subset(dataset, keep)


@torch.no_grad()
def _domain_pass(
    loader: Iterable[dict],
    out: Optional[DirectionNetworks],
    judge: Optional[DirectionNetworks],
    extractor: nn.Module,
    device: torch.device,
    batch_size: int,
    bf16: bool,
    num_examples: int,
    pad_to: int = 0,
) -> DomainPass:
    """One read of a domain X's images: translated by ``out`` (the direction from X: its generator, its
    discriminator on the translations, its reverse for the cycle), and judged as real X images by the
    discriminator of ``judge`` (the direction into X). Either may be None; so may their parts."""
    result = DomainPass()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    D_real = judge.discriminator if judge is not None else None
    kept = 0
    for batch in loader:
        x = batch["image"].to(device, non_blocking=True)
        n = x.shape[0]
        x = _pad_batch(x, pad_to)
        with autocast:
            if D_real is not None:
                result.real_judged_real.append(discriminator_decisions(D_real, x, judge.gan_mode)[:n])
            if out is None:
                continue
            fake = out.generator(x)
            rec = out.reverse(fake) if out.reverse is not None else None
            if out.discriminator is not None:
                result.fake_judged_real.append(discriminator_decisions(out.discriminator, fake, out.gan_mode)[:n])
        x = x[:n]
        fake = fake[:n].float().clamp(-1, 1)  # tanh outputs; clamp bf16 rounding
        rec = rec[:n].float().clamp(-1, 1) if rec is not None else None
        result.paired.update(x, fake, rec)
        result.periodic.update(x, fake)
        result.fake_features.append(
            compute_features(fake, extractor, batch_size=batch_size, device=device, value_range=(-1.0, 1.0)))
        if kept < num_examples:
            take = min(num_examples - kept, n)
            for name, t in (("real", x), ("fake", fake), ("rec", rec)):
                if t is not None:
                    result.examples[name].append(t[:take].float().cpu())
            kept += take
    return result


def _pad_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero images appended up to ``size``: compiled networks then see one batch shape (no recompilation
    for the last batch); every norm layer is per image, so the padding changes no result."""
    if not size or x.shape[0] >= size:
        return x
    return torch.cat([x, x.new_zeros((size - x.shape[0], *x.shape[1:]))])


def cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(tensors) if tensors else torch.zeros(0)


def cat_flags(tensors: list[torch.Tensor]) -> torch.Tensor:
    """:func:`cat` for discriminator decisions (bool, also when there are none)."""
    return torch.cat(tensors) if tensors else torch.zeros(0, dtype=torch.bool)



def translation_pass(
    nets: Mapping[str, DirectionNetworks],
    datasets: Mapping[str, Any],
    extractor: nn.Module,
    *,
    num_workers: int,
    compiled: bool,
    split: str,
    **settings: Any,
) -> dict[str, DomainPass]:
    """One pass over each domain's images (``datasets``: domain -> dataset): a domain that is the source
    of an evaluated direction (a key of ``nets``) is translated, cycled back and judged; a domain that is
    only a target has its real images judged by that direction's discriminator (none: no pass).

    ``settings``: device, batch_size, bf16, num_examples, pad_to (as :func:`_domain_pass`).
    """
    passes: dict[str, DomainPass] = {}
    for domain, dataset in datasets.items():
        out = next((nets[d] for d, (src, _) in DOMAINS_OF.items() if src == domain and d in nets), None)
        judge = next((nets[d] for d, (_, tgt) in DOMAINS_OF.items() if tgt == domain and d in nets), None)
        if out is None and (judge is None or judge.discriminator is None):
            continue  # nothing to translate, nothing to judge with
        what = f"{'translating' if out is not None else 'judging real'} {split} images of domain {domain}"
        progress = Progress(what, len(dataset), log)
        loader = progress.track(make_loader(dataset, settings["batch_size"], num_workers),
                                count=lambda batch: len(batch["image"]))
        with eager_fallback():
            passes[domain] = _domain_pass(loader, out, judge, extractor, **settings)
        progress.finish(" (compiled networks; the first batch compiles them)" if compiled and out is not None else "")
    return passes
