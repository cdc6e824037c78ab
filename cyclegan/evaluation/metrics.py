"""Evaluation metrics for CycleGAN: FID, KID, MiFID (from cached Inception features), SSIM, cycle L1,
discriminator accuracy, and a cheap KID for validation.

Typical use (``evaluate.py``)::

    extractor = load_inception(cfg.metrics.inception)             # 2048-d TF-Inception features
    real = compute_features("data/monet/testB", extractor, cache_dir=".cache/features")   # cached on disk
    train = compute_features("data/monet/trainB", extractor, cache_dir=".cache/features")
    fake = compute_features(fake_batches, extractor, value_range=(-1, 1))  # generator outputs
    scores = generative_metrics(real, fake, train_ref_features=train)
    # {'fid', 'kid_mean', 'kid_std', 'kid_subset_size', 'mifid', 'memorization_distance',
    #  'memorization_distance_thr', 'n_real', 'n_fake', 'n_train_ref'}

Image conventions: uint8 tensors are 0..255; float tensors are [0, 1] unless ``value_range`` says
otherwise (values outside raise). Features are float32 CPU tensors [N, F]; statistics are float64.

FID/KID/MiFID are computed here from features, not by torchmetrics' metric classes, so that real-set
features are extracted once and cached; the formulas are torchmetrics' (same covariance, same unbiased
polynomial-kernel MMD, same cosine distance and epsilon threshold) and the tests check them against
torchmetrics where it imports. The one deliberate difference is MiFID's memorization term, which
follows Kaggle's "I'm Something of a Painter Myself" definition (see `memorization_distance`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.errors import MissingFileError

from .inception import (
    FEATURE_DIM,
    HOW_TO_GET_INCEPTION,
    InceptionNotAvailableError,
    TinyFeatureExtractor,
    images_to_uint8,
    load_inception,
)

log = logging.getLogger(__name__)

__all__ = [
    "FEATURE_DIM",
    "HOW_TO_GET_INCEPTION",
    "IMAGE_EXTENSIONS",
    "InceptionNotAvailableError",
    "PairedMetrics",
    "TinyFeatureExtractor",
    "ValidationKID",
    "compute_features",
    "cycle_l1",
    "decision_threshold",
    "discriminator_accuracy",
    "discriminator_decisions",
    "feature_extractor_id",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "generative_metrics",
    "images_to_uint8",
    "kid_from_features",
    "kid_subset_size",
    "list_images",
    "load_image",
    "load_inception",
    "memorization_distance",
    "mifid_from_features",
    "pairwise_cosine_distance",
    "poly_mmd",
    "ssim",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
CACHE_VERSION = 1
MIFID_EPS = 0.1

PathLike = Union[str, os.PathLike]
ImageItem = Union[PathLike, torch.Tensor, np.ndarray, "Image.Image"]  # noqa: F821


# ----------------------------------------------------------------------------------------------------------
# images and features
# ----------------------------------------------------------------------------------------------------------


def list_images(folder: PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise MissingFileError(f"no such image folder: {root}")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_image(path: PathLike) -> torch.Tensor:
    """An image file as uint8 RGB [3, H, W]."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _is_path(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike))


def _as_items(images: Any) -> Iterable[Any]:
    """A folder -> its sorted image files; a 4-D tensor -> its rows; else the iterable itself."""
    if _is_path(images):
        p = Path(images)
        return list_images(p) if p.is_dir() else [p]
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim in (3, 4):
        t = torch.as_tensor(images)
        return [t] if t.ndim == 3 else t
    return images


def _iter_uint8(items: Iterable[Any], value_range: tuple[float, float]) -> Iterator[torch.Tensor]:
    """Yield single uint8 images [3, H, W] (on their original device) from paths / tensors / arrays / PIL."""
    for item in items:
        if _is_path(item):
            yield load_image(item)
            continue
        if not isinstance(item, (torch.Tensor, np.ndarray)):  # PIL image
            item = torch.from_numpy(np.asarray(item.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
        t = torch.as_tensor(item)
        if t.ndim == 3:
            t = t.unsqueeze(0)
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"expected images [3,H,W] or [N,3,H,W], got shape {tuple(t.shape)}")
        yield from images_to_uint8(t, value_range)


def feature_extractor_id(extractor: nn.Module) -> str:
    """A string that changes when the extractor changes: its ``extractor_id`` attribute, else a weight hash."""
    ident = getattr(extractor, "extractor_id", None)
    if isinstance(ident, str) and ident:
        return ident
    h = hashlib.sha1()
    for name, tensor in extractor.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{type(extractor).__module__}.{type(extractor).__qualname__}:{getattr(extractor, 'num_features', '?')}:{h.hexdigest()[:16]}"


@torch.no_grad()
def _extract(
    images: Iterable[torch.Tensor], extractor: nn.Module, batch_size: int, device: Union[str, torch.device]
) -> torch.Tensor:
    was_training = extractor.training
    extractor.eval()
    out: list[torch.Tensor] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        if batch:
            feats = extractor(torch.stack(batch).to(device))
            out.append(feats.detach().float().reshape(len(batch), -1).cpu())
            batch.clear()

    try:
        for img in images:
            if batch and (img.shape != batch[0].shape or len(batch) >= batch_size):
                flush()
            batch.append(img)
        flush()
    finally:
        extractor.train(was_training)
    if not out:
        return torch.zeros(0, int(getattr(extractor, "num_features", 0)))
    return torch.cat(out)


def _file_entry(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def _load_cache(path: Path, extractor_id: str) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
        if data.get("version") != CACHE_VERSION or data.get("extractor_id") != extractor_id:
            return None
        return data
    except Exception as exc:  # corrupt / partial file: recompute
        log.warning("ignoring unreadable feature cache %s (%s)", path, exc)
        return None


def _save_cache(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(data, str(tmp))
    os.replace(tmp, path)


def compute_features(
    images_or_paths: Union[PathLike, Iterable[ImageItem], torch.Tensor],
    extractor: nn.Module,
    batch_size: int = 32,
    device: Union[str, torch.device] = "cpu",
    cache_dir: Optional[PathLike] = None,
    cache_key: Optional[str] = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Features [N, F] (float32, CPU) of images, in input order.

    ``images_or_paths``: a folder (its image files, recursive, sorted), or an iterable of image file
    paths, uint8/float tensors [3,H,W] or [N,3,H,W] (batches), numpy arrays or PIL images; or a tensor
    [N,3,H,W]. Float images must lie in ``value_range`` ([0, 1] by default; (-1, 1) for generator outputs).
    Consecutive images of the same size are batched (``batch_size``) and run on ``device``.

    Caching (``cache_dir`` set): when every item is a file path, the key is the sorted resolved file list
    with each file's size and mtime, plus ``feature_extractor_id(extractor)``: a second call with the same
    files does not run the extractor, and touching, adding or removing a file recomputes. For tensors,
    pass an explicit ``cache_key`` (combined with the extractor id); without one nothing is cached.
    """
    items = _as_items(images_or_paths)
    if cache_dir is None:
        return _extract(_iter_uint8(items, value_range), extractor, batch_size, device)

    ext_id = feature_extractor_id(extractor)
    if cache_key is not None:
        digest = hashlib.sha256(json.dumps(["key", CACHE_VERSION, str(cache_key), ext_id]).encode()).hexdigest()
        cache_file = Path(cache_dir) / f"features-{digest[:24]}.pt"
        cached = _load_cache(cache_file, ext_id)
        if cached is not None:
            log.info("feature cache hit: %s", cache_file)
            return cached["features"]
        feats = _extract(_iter_uint8(items, value_range), extractor, batch_size, device)
        _save_cache(cache_file, {"version": CACHE_VERSION, "extractor_id": ext_id, "files": [], "features": feats})
        return feats

    items = list(items)
    if not all(_is_path(it) for it in items):
        warnings.warn("compute_features: cache_dir is set but the inputs are not all file paths and no cache_key "
                      "was given; computing without the cache", stacklevel=2)
        return _extract(_iter_uint8(items, value_range), extractor, batch_size, device)

    paths = [Path(p).resolve() for p in items]
    unique = sorted(set(paths))
    entries = [_file_entry(p) for p in unique]
    digest = hashlib.sha256(json.dumps(["files", CACHE_VERSION, ext_id, entries]).encode()).hexdigest()
    cache_file = Path(cache_dir) / f"features-{digest[:24]}.pt"
    cached = _load_cache(cache_file, ext_id)
    if cached is not None and list(cached["files"]) == [e[0] for e in entries]:
        log.info("feature cache hit: %s (%d files)", cache_file, len(unique))
        feats = cached["features"]
    else:
        feats = _extract(_iter_uint8(unique, value_range), extractor, batch_size, device)
        _save_cache(cache_file, {"version": CACHE_VERSION, "extractor_id": ext_id,
                                 "files": [e[0] for e in entries], "features": feats})
    if paths == unique:
        return feats
    row = {p: i for i, p in enumerate(unique)}
    return feats[torch.tensor([row[p] for p in paths], dtype=torch.long)]


# ----------------------------------------------------------------------------------------------------------
# FID / KID / MiFID from features
# ----------------------------------------------------------------------------------------------------------


def _f64(x: Any) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if t.ndim != 2:
        raise ValueError(f"expected features [N, F], got shape {tuple(t.shape)}")
    return t


def feature_statistics(features: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [F] and unbiased covariance [F, F] (float64), as torchmetrics' FID accumulates them."""
    f = _f64(features)
    n = f.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {n}")
    mu = f.mean(0)
    centered = f - mu
    return mu, centered.T @ centered / (n - 1)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) for Gaussians N(mu1, S1), N(mu2, S2).

    Tr((S1 S2)^(1/2)) is computed as sum(sqrt(eig(S1^(1/2) S2 S1^(1/2)))) with symmetric eigensolvers
    (equal to torchmetrics' sum(sqrt(eigvals(S1 S2))) for PSD inputs, and stable for singular ones).
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma1, sigma2))
    w, v = torch.linalg.eigh((s1 + s1.T) / 2)
    s1_half = (v * w.clamp(min=0).sqrt()) @ v.T
    m = s1_half @ s2 @ s1_half
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    fid = (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_covmean
    return max(float(fid), 0.0)


def fid_from_features(real_features: Any, fake_features: Any) -> float:
    """FID between two feature sets; NaN (with a warning) when either has fewer than 2 rows."""
    if len(real_features) < 2 or len(fake_features) < 2:
        warnings.warn(f"FID needs >= 2 images per set (got {len(real_features)} real, {len(fake_features)} fake)",
                      stacklevel=2)
        return float("nan")
    return frechet_distance(*feature_statistics(real_features), *feature_statistics(fake_features))


def poly_kernel(f1: torch.Tensor, f2: torch.Tensor, degree: int = 3, gamma: Optional[float] = None,
                coef: float = 1.0) -> torch.Tensor:
    """k(x, y) = (gamma x.y + coef)^degree, gamma = 1/F by default (KID's kernel)."""
    if gamma is None:
        gamma = 1.0 / f1.shape[1]
    return (f1 @ f2.T * gamma + coef) ** degree


def _mmd_from_kernels(k_xx: torch.Tensor, k_xy: torch.Tensor, k_yy: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 for two samples of equal size m (diagonals of k_xx, k_yy excluded)."""
    m = k_xx.shape[0]
    sum_xx = k_xx.sum() - k_xx.diagonal().sum()
    sum_yy = k_yy.sum() - k_yy.diagonal().sum()
    return (sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)


def poly_mmd(f_real: Any, f_fake: Any, degree: int = 3, gamma: Optional[float] = None, coef: float = 1.0) -> float:
    """Unbiased polynomial-kernel MMD^2 of two equal-size feature sets (one KID subset)."""
    x, y = _f64(f_real), _f64(f_fake)
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError("poly_mmd needs two feature sets of equal size >= 2")
    k = lambda a, b: poly_kernel(a, b, degree, gamma, coef)  # noqa: E731
    return float(_mmd_from_kernels(k(x, x), k(x, y), k(y, y)))


def kid_subset_size(n_real: int, n_fake: int, subset_size: int = 1000) -> int:
    """The KID subset size actually used: min(subset_size, n_real, n_fake)."""
    return int(min(subset_size, n_real, n_fake))


_GRAM_MAX_ENTRIES = 40_000_000  # precompute full kernel matrices up to ~320 MB (float64)


def kid_from_features(
    real_features: Any,
    fake_features: Any,
    subset_size: int = 1000,
    num_subsets: int = 100,
    degree: int = 3,
    gamma: Optional[float] = None,
    coef: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (mean, std over subsets) as torchmetrics' KernelInceptionDistance computes it.

    Each subset draws m = min(subset_size, n_real, n_fake) real and m fake rows without replacement and
    takes the unbiased MMD^2; std is the population std (unbiased=False) like torchmetrics. Small sets
    are handled by shrinking m (torchmetrics raises instead); with m < 2 the result is (nan, nan).
    Deterministic for a given ``seed``.
    """
    x, y = _f64(real_features), _f64(fake_features)
    n_x, n_y = x.shape[0], y.shape[0]
    m = kid_subset_size(n_x, n_y, subset_size)
    if m < 2:
        warnings.warn(f"KID needs >= 2 images per set (got {n_x} real, {n_y} fake)", stacklevel=2)
        return float("nan"), float("nan")
    gen = torch.Generator().manual_seed(seed)
    k = lambda a, b: poly_kernel(a, b, degree, gamma if gamma is not None else 1.0 / x.shape[1], coef)  # noqa: E731
    precompute = n_x * n_x + n_y * n_y + n_x * n_y <= _GRAM_MAX_ENTRIES
    if precompute:
        k_xx, k_yy, k_xy = k(x, x), k(y, y), k(x, y)
    scores = []
    for _ in range(num_subsets):
        ix = torch.randperm(n_x, generator=gen)[:m]
        iy = torch.randperm(n_y, generator=gen)[:m]
        if precompute:
            scores.append(_mmd_from_kernels(k_xx[ix][:, ix], k_xy[ix][:, iy], k_yy[iy][:, iy]))
        else:
            xs, ys = x[ix], y[iy]
            scores.append(_mmd_from_kernels(k(xs, xs), k(xs, ys), k(ys, ys)))
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False))


def pairwise_cosine_distance(a: Any, b: Any, chunk_size: int = 1024) -> torch.Tensor:
    """[Na, Nb] matrix of 1 - |cos(a_i, b_j)| (float64), as Kaggle's MiFID and torchmetrics compute it.

    The absolute value follows both references; Inception pool features are non-negative, where it
    equals the plain 1 - cos. All-zero rows have no direction and must be removed by the caller.
    """
    x, y = F.normalize(_f64(a), dim=1), F.normalize(_f64(b), dim=1)
    rows = [(1.0 - (x[i:i + chunk_size] @ y.T).abs()).clamp(min=0) for i in range(0, max(len(x), 1), chunk_size)]
    return torch.cat(rows)


def memorization_distance(fake_features: Any, train_features: Any, chunk_size: int = 1024) -> float:
    """Kaggle MiFID's raw memorization distance d: mean over generated images of the minimum cosine
    distance (1 - |cos|) to any TRAINING image of the target domain. Rows whose features are all zero
    are dropped from both sets (as in Kaggle's and torchmetrics' code).

    (torchmetrics' MemorizationInformedFrechetInceptionDistance averages over its *real* FID set instead,
    i.e. the mean over real images of the distance to the nearest fake; we follow Kaggle here.)
    """
    x, y = _f64(fake_features), _f64(train_features)
    x, y = x[x.norm(dim=1) > 0], y[y.norm(dim=1) > 0]
    if len(x) == 0 or len(y) == 0:
        raise ValueError("memorization_distance needs non-empty, non-zero feature sets")
    xn, yn = F.normalize(x, dim=1), F.normalize(y, dim=1)
    mins = [(1.0 - (xn[i:i + chunk_size] @ yn.T).abs()).min(dim=1).values.clamp(min=0)
            for i in range(0, len(xn), chunk_size)]
    return float(torch.cat(mins).mean())


def mifid_from_features(
    real_features: Any, fake_features: Any, train_features: Any, eps: float = MIFID_EPS
) -> dict[str, float]:
    """MiFID = FID(real, fake) / d_thr with d_thr = d if d < eps else 1 (Kaggle, eps = 0.1).

    Returns ``{"mifid", "fid", "memorization_distance" (d), "memorization_distance_thr" (d_thr)}``.
    Like torchmetrics, a FID below 1e-8 gives MiFID 0 (instead of 0 / tiny d) and 1e-14 is added to d_thr.
    """
    fid = fid_from_features(real_features, fake_features)
    d = memorization_distance(fake_features, train_features)
    d_thr = d if d < eps else 1.0
    mifid = fid / (d_thr + 1e-14) if not fid <= 1e-8 else 0.0  # NaN FID stays NaN
    return {"mifid": float(mifid), "fid": fid, "memorization_distance": d, "memorization_distance_thr": d_thr}


def generative_metrics(
    real_features: Any,
    fake_features: Any,
    train_ref_features: Any = None,
    kid_subset_size_max: int = 1000,
    kid_subsets: int = 100,
    mifid_eps: float = MIFID_EPS,
    seed: int = 0,
) -> dict[str, Any]:
    """FID, KID and (with training-set features of the target domain) MiFID, with the image counts.

    Keys: fid, kid_mean, kid_std, kid_subset_size, mifid, memorization_distance,
    memorization_distance_thr, n_real, n_fake, n_train_ref. Without ``train_ref_features`` the three
    MiFID entries are None and n_train_ref is 0. Undefined values (too few images) are NaN.
    """
    n_real, n_fake = len(real_features), len(fake_features)
    kid_mean, kid_std = kid_from_features(real_features, fake_features, kid_subset_size_max, kid_subsets, seed=seed)
    out: dict[str, Any] = {
        "fid": fid_from_features(real_features, fake_features),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subset_size": kid_subset_size(n_real, n_fake, kid_subset_size_max),
        "mifid": None,
        "memorization_distance": None,
        "memorization_distance_thr": None,
        "n_real": n_real,
        "n_fake": n_fake,
        "n_train_ref": 0,
    }
    if train_ref_features is not None and len(train_ref_features) > 0:
        mi = mifid_from_features(real_features, fake_features, train_ref_features, mifid_eps)
        out.update(mifid=mi["mifid"], memorization_distance=mi["memorization_distance"],
                   memorization_distance_thr=mi["memorization_distance_thr"], n_train_ref=len(train_ref_features))
    return out


# ----------------------------------------------------------------------------------------------------------
# paired image metrics
# ----------------------------------------------------------------------------------------------------------


def _to_unit_float(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    lo, hi = value_range
    return ((x.detach().float() - lo) / (hi - lo)).clamp(0, 1)


def _gaussian_window(channels: int, size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    dist = torch.arange((1 - size) / 2, (1 + size) / 2, 1.0, dtype=dtype, device=device)
    g = torch.exp(-((dist / sigma) ** 2) / 2)
    g = (g / g.sum()).unsqueeze(0)
    return (g.T @ g).expand(channels, 1, size, size)


def _ssim_local(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5,
                k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Per-image SSIM, a line-by-line equivalent of torchmetrics' default gaussian SSIM (reflect padding)."""
    size = int(3.5 * sigma + 0.5) * 2 + 1  # 11 for sigma 1.5
    pad = (size - 1) // 2
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    channels = x.shape[1]
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
    kernel = _gaussian_window(channels, size, sigma, x.dtype, x.device)
    outs = F.conv2d(torch.cat((x, y, x * x, y * y, x * y)), kernel, groups=channels).split(x.shape[0])
    mu_x2, mu_y2, mu_xy = outs[0].pow(2), outs[1].pow(2), outs[0] * outs[1]
    s_x2 = (outs[2] - mu_x2).clamp(min=0)
    s_y2 = (outs[3] - mu_y2).clamp(min=0)
    s_xy = outs[4] - mu_xy
    full = ((2 * mu_xy + c1) * (2 * s_xy + c2)) / ((mu_x2 + mu_y2 + c1) * (s_x2 + s_y2 + c2))
    return full.reshape(full.shape[0], -1).mean(-1)


_TM_SSIM: Any = None


def _torchmetrics_ssim() -> Any:
    """torchmetrics' functional SSIM, or None when torchmetrics is missing or fails to import (e.g. with a
    torchvision built for another torch); the lookup is done once."""
    global _TM_SSIM
    if _TM_SSIM is None:
        try:
            from torchmetrics.functional import structural_similarity_index_measure

            _TM_SSIM = structural_similarity_index_measure
        except Exception as exc:
            log.info("torchmetrics SSIM unavailable (%s: %s); using the local equivalent", type(exc).__name__, exc)
            _TM_SSIM = False
    return _TM_SSIM or None


def ssim(inputs: torch.Tensor, translations: torch.Tensor, reduction: str = "mean",
         value_range: tuple[float, float] = (0.0, 1.0)) -> Union[float, torch.Tensor]:
    """SSIM between each input and its translation (gaussian 11x11, sigma 1.5, data_range 1 on [0, 1]).

    Float images in ``value_range`` are mapped to [0, 1] (uint8: /255). Uses
    ``torchmetrics.functional.structural_similarity_index_measure`` when torchmetrics imports, else an
    identical local implementation. ``reduction="mean"`` -> float; ``"none"`` -> per-image tensor [N].
    """
    x, y = _to_unit_float(inputs, value_range), _to_unit_float(translations, value_range)
    if x.ndim == 3:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    if x.shape != y.shape:
        raise ValueError(f"ssim needs images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    tm_ssim = _torchmetrics_ssim()
    if tm_ssim is not None:
        per_image = tm_ssim(x, y, data_range=1.0, reduction="none")
    else:
        per_image = _ssim_local(x, y, data_range=1.0)
    per_image = per_image.reshape(-1).cpu()
    if reduction == "none":
        return per_image
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return float(per_image.mean())


def cycle_l1(inputs: torch.Tensor, reconstructions: torch.Tensor, reduction: str = "mean",
             value_range: tuple[float, float] = (0.0, 1.0)) -> Union[float, torch.Tensor]:
    """Mean absolute error between x and F(G(x)) on the [0, 1] scale (half the training loss's [-1, 1] L1)."""
    x, r = _to_unit_float(inputs, value_range), _to_unit_float(reconstructions, value_range)
    if x.shape != r.shape:
        raise ValueError(f"cycle_l1 needs tensors of equal shape, got {tuple(x.shape)} and {tuple(r.shape)}")
    per_image = (x - r).abs().reshape(x.shape[0] if x.ndim == 4 else 1, -1).mean(-1).cpu()
    return per_image if reduction == "none" else float(per_image.mean())


class PairedMetrics:
    """Streams SSIM(x, G(x)) and cycle L1(x, F(G(x))) over batches: ``update`` per batch, ``compute`` at the end.

    ``compute()`` -> {"ssim", "cycle_l1", "n_pairs"} (means over images; NaN when no batch was seen).
    """

    def __init__(self, value_range: tuple[float, float] = (-1.0, 1.0)):
        self.value_range = value_range
        self.reset()

    def reset(self) -> None:
        self._ssim_sum = 0.0
        self._l1_sum = 0.0
        self._n_ssim = 0
        self._n_l1 = 0

    def update(self, inputs: torch.Tensor, translations: Optional[torch.Tensor] = None,
               reconstructions: Optional[torch.Tensor] = None) -> None:
        if translations is not None:
            s = ssim(inputs, translations, reduction="none", value_range=self.value_range)
            self._ssim_sum += float(s.sum())
            self._n_ssim += s.numel()
        if reconstructions is not None:
            e = cycle_l1(inputs, reconstructions, reduction="none", value_range=self.value_range)
            self._l1_sum += float(e.sum())
            self._n_l1 += e.numel()

    def compute(self) -> dict[str, Any]:
        nan = float("nan")
        return {
            "ssim": self._ssim_sum / self._n_ssim if self._n_ssim else nan,
            "cycle_l1": self._l1_sum / self._n_l1 if self._n_l1 else nan,
            "n_pairs": max(self._n_ssim, self._n_l1),
        }


# ----------------------------------------------------------------------------------------------------------
# discriminator accuracy
# ----------------------------------------------------------------------------------------------------------

_PROB_MODES = {"lsgan", "mse", "ls", "vanilla_sigmoid", "sigmoid", "prob", "probability"}
_LOGIT_MODES = {"vanilla", "bce", "bce_with_logits", "logits", "hinge", "wgan", "wgangp", "wgan_gp"}


def decision_threshold(gan_mode: str) -> float:
    """0.5 for discriminators whose output is a probability-like score (lsgan, vanilla with a sigmoid),
    0 for logits / critic scores (vanilla BCE-with-logits, hinge, wgan, wgangp)."""
    mode = gan_mode.lower().replace("-", "_")
    if mode in _PROB_MODES:
        return 0.5
    if mode in _LOGIT_MODES:
        return 0.0
    raise ValueError(f"unknown gan_mode {gan_mode!r}; expected one of {sorted(_PROB_MODES | _LOGIT_MODES)}")


def _per_image_score(output: Any) -> torch.Tensor:
    if isinstance(output, (list, tuple)):  # multi-scale discriminators: average the per-image scores
        return torch.stack([_per_image_score(o) for o in output]).mean(0)
    return output.detach().float().reshape(output.shape[0], -1).mean(-1)


@torch.no_grad()
def discriminator_decisions(D: nn.Module, images: torch.Tensor, gan_mode: str = "lsgan",
                            threshold: Optional[float] = None) -> torch.Tensor:
    """Bool [N]: True where D judges the image real (PatchGAN map averaged per image, then > threshold)."""
    thr = decision_threshold(gan_mode) if threshold is None else threshold
    was_training = D.training
    D.eval()
    try:
        score = _per_image_score(D(images))
    finally:
        D.train(was_training)
    return (score > thr).cpu()


def discriminator_accuracy(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gan_mode: str = "lsgan",
                           threshold: Optional[float] = None) -> float:
    """Fraction of correct real/fake decisions over real + fake images (0.5 = indistinguishable).

    Images must be in D's training range (usually [-1, 1]). ``gan_mode``: lsgan / vanilla_sigmoid
    threshold the per-image mean at 0.5; vanilla (BCE with logits) / hinge / wgan / wgangp at 0.
    """
    real_ok = discriminator_decisions(D, real, gan_mode, threshold)
    fake_ok = ~discriminator_decisions(D, fake, gan_mode, threshold)
    n = real_ok.numel() + fake_ok.numel()
    return (int(real_ok.sum()) + int(fake_ok.sum())) / n if n else float("nan")


# ----------------------------------------------------------------------------------------------------------
# cheap KID for validation
# ----------------------------------------------------------------------------------------------------------


class ValidationKID:
    """KID of generated images against a small fixed set of real images whose features are precomputed.

    Meant for every-N-epochs validation (checkpoint monitor / sweep objective)::

        vkid = ValidationKID.from_images("data/monet/testB", load_inception(), max_real=200, cache_dir=...)
        vkid.score([G(x) for x in val_batches])    # generator outputs in [-1, 1]
        # -> {"kid_mean", "kid_std", "kid_subset_size", "n_real", "n_fake"}

    The subset size is min(subset_size, n_real, n_fake) and the subsets are drawn with a fixed seed, so
    scores of successive epochs are comparable. Fakes are float in ``fake_value_range`` (default [-1, 1])
    or uint8.
    """

    def __init__(self, real_features: torch.Tensor, extractor: nn.Module, subset_size: int = 100,
                 num_subsets: int = 50, seed: int = 0, batch_size: int = 32,
                 device: Union[str, torch.device] = "cpu", fake_value_range: tuple[float, float] = (-1.0, 1.0)):
        self.real_features = torch.as_tensor(real_features).float().cpu()
        if self.real_features.ndim != 2 or len(self.real_features) < 2:
            raise ValueError("ValidationKID needs real features [N >= 2, F]")
        self.extractor = extractor
        self.subset_size = subset_size
        self.num_subsets = num_subsets
        self.seed = seed
        self.batch_size = batch_size
        self.device = device
        self.fake_value_range = fake_value_range

    @classmethod
    def from_images(cls, real_images: Any, extractor: nn.Module, max_real: int = 200,
                    cache_dir: Optional[PathLike] = None, value_range: tuple[float, float] = (0.0, 1.0),
                    **kwargs: Any) -> "ValidationKID":
        """Real features of at most ``max_real`` images (a folder: evenly spaced over its sorted files)."""
        items = list(_as_items(real_images))
        if len(items) > max_real:
            idx = np.linspace(0, len(items) - 1, max_real).round().astype(int)
            items = [items[i] for i in idx]
        feats = compute_features(items, extractor, batch_size=kwargs.get("batch_size", 32),
                                 device=kwargs.get("device", "cpu"), cache_dir=cache_dir, value_range=value_range)
        return cls(feats, extractor, **kwargs)

    @property
    def n_real(self) -> int:
        return len(self.real_features)

    def score(self, fake_images: Union[torch.Tensor, Iterable[torch.Tensor]]) -> dict[str, Any]:
        fake = compute_features(fake_images, self.extractor, self.batch_size, self.device,
                                value_range=self.fake_value_range)
        return self.score_features(fake)

    __call__ = score

    def score_features(self, fake_features: torch.Tensor) -> dict[str, Any]:
        n_fake = len(fake_features)
        mean, std = kid_from_features(self.real_features, fake_features, self.subset_size, self.num_subsets,
                                      seed=self.seed)
        return {"kid_mean": mean, "kid_std": std,
                "kid_subset_size": kid_subset_size(self.n_real, n_fake, self.subset_size),
                "n_real": self.n_real, "n_fake": n_fake}
