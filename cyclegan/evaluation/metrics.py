"""FID, KID and MiFID from Inception features (the distribution metrics of ``evaluate.py``).

Beside it: :mod:`~cyclegan.evaluation.features` (images -> cached features),
:mod:`~cyclegan.evaluation.paired` (SSIM, cycle L1), :mod:`~cyclegan.evaluation.discriminator`
(D accuracy), :mod:`~cyclegan.evaluation.validation_kid` (a cheap KID during training).

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

import warnings
from typing import Any, Optional

import torch
import torch.nn.functional as F

__all__ = [
    "FEW_IMAGES",
    "MIFID_EPS",
    "few_images_note",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "generative_metrics",
    "kid_from_features",
    "kid_subset_size",
    "memorization_distance",
    "mifid_from_features",
    "pairwise_cosine_distance",
    "poly_kernel",
    "poly_mmd",
]

MIFID_EPS = 0.1
# Below this many images in either set, FID/KID say more about which images were drawn than about the
# translation (FID's bias grows as the count falls; 2048-d covariances need far more images).
FEW_IMAGES = 100


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


def few_images_note(counts: dict[str, tuple[int, int]], threshold: int = FEW_IMAGES) -> Optional[str]:
    """One sentence when FID/KID of some direction rest on fewer than ``threshold`` images:
    ``counts`` = {direction: (n_fake, n_real)}; None when every set is large enough."""
    few = {d: c for d, c in counts.items() if min(c) < threshold}
    if not few:
        return None
    listed = ", ".join(f"{d}: {fake} translated vs {real} real images" for d, (fake, real) in few.items())
    return (f"FID/KID on few images ({listed}): below {threshold} images they depend on which images were drawn "
            "and FID is biased upward, so they mean little; compare such numbers only at equal counts, "
            "and judge a model on a full test split")
