"""Target-domain rate: does a painter paint? The share of translations a domain classifier takes for
the target domain.

KID rewards a near-identity filter (a photo nudged toward the palette scores well), so evaluate.py also
asks a classifier that has seen both domains: a logistic regression on the Inception pool features
FID uses, fitted on the TRAINING images of domains A and B (never the test split, whose images it then
judges). For each direction it reports the share of translations assigned to the target domain, beside
the same share for the untranslated inputs (the floor: near 0 for a classifier that separates the
domains) and for the real test images of the target domain (the ceiling).

The regression is torch's (no scikit-learn dependency): features standardised with the training
mean / std, class-balanced logistic loss plus an L2 penalty, fitted by L-BFGS. Fitting takes seconds;
the fitted classifier is cached beside the features (``metrics.cache_dir``), keyed by a hash of the
training features and the settings, so it is refitted exactly when they change.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from cyclegan.evaluation.passes import real_features
from cyclegan.common.files import atomic_write

log = logging.getLogger(__name__)

__all__ = ["DomainClassifier", "fit_domain_classifier", "domain_classifier_for", "DEFAULT_L2"]

CLASSIFIER_VERSION = 1
DEFAULT_L2 = 1e-2  # on standardised features and a mean loss; strong enough to keep the weights finite on separable data


@dataclass
class DomainClassifier:
    """p(domain B | features) = sigmoid(((f - mean) / scale) . weight + bias)."""

    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    n_train: dict  # {"A": n, "B": n}: the training images it was fitted on
    train_accuracy: float

    def prob_b(self, features: torch.Tensor) -> torch.Tensor:
        z = (torch.as_tensor(features).double() - self.mean) / self.scale
        return torch.sigmoid(z @ self.weight + self.bias)

    def predict(self, features: torch.Tensor) -> list[str]:
        return ["B" if p > 0.5 else "A" for p in self.prob_b(features).tolist()]

    def rate(self, features: torch.Tensor, domain: str) -> Optional[float]:
        """The share of ``features`` assigned to ``domain`` ("A" or "B"); None for no images."""
        if len(features) == 0:
            return None
        is_b = self.prob_b(features) > 0.5
        return float((is_b if domain == "B" else ~is_b).double().mean())

    def state(self) -> dict[str, Any]:
        return {"version": CLASSIFIER_VERSION, "mean": self.mean, "scale": self.scale, "weight": self.weight,
                "bias": self.bias, "n_train": dict(self.n_train), "train_accuracy": self.train_accuracy}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "DomainClassifier":
        return cls(state["mean"], state["scale"], state["weight"], state["bias"], dict(state["n_train"]),
                   float(state["train_accuracy"]))


def fit_domain_classifier(features_a: torch.Tensor, features_b: torch.Tensor, l2: float = DEFAULT_L2,
                          max_iter: int = 200) -> DomainClassifier:
    """Logistic regression A (0) vs B (1) on standardised features, each domain weighing half
    (a 220-painting domain against 5,000 photos is not outvoted), L2-penalised, fitted by L-BFGS."""
    a, b = torch.as_tensor(features_a).double(), torch.as_tensor(features_b).double()
    if len(a) < 1 or len(b) < 1:
        raise ValueError(f"a domain classifier needs training images of both domains (got {len(a)} A, {len(b)} B)")
    x = torch.cat([a, b])
    y = torch.cat([torch.zeros(len(a)), torch.ones(len(b))]).double()
    sample_weight = torch.cat([torch.full((len(a),), 0.5 / len(a)), torch.full((len(b),), 0.5 / len(b))]).double()
    mean = x.mean(0)
    scale = x.std(0, unbiased=False).clamp(min=1e-6)  # constant features stay 0 after standardising
    z = (x - mean) / scale
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = z @ weight + bias
        loss = (nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none") * sample_weight).sum()
        loss = loss + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    weight, bias = weight.detach(), bias.detach()
    accuracy = float((((z @ weight + bias) > 0).double() == y).double().mean())
    return DomainClassifier(mean, scale, weight, bias, {"A": len(a), "B": len(b)}, accuracy)


def _digest(*tensors: torch.Tensor, extra: str) -> str:
    h = hashlib.sha256(f"{CLASSIFIER_VERSION}:{extra}".encode())
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def domain_classifier_for(
    datamodule,
    extractor: nn.Module,
    *,
    max_train_images: Optional[int] = 1000,
    cache_dir: Optional[str | os.PathLike] = None,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    l2: float = DEFAULT_L2,
) -> DomainClassifier:
    """The classifier of ``datamodule``'s two domains, fitted on their TRAINING split (at most
    ``max_train_images`` per domain, evenly spaced, test pipeline); features and classifier cached in
    ``cache_dir``. Raises ValueError when a domain has no training images."""
    feats = {d: real_features(datamodule, ["train"], d, extractor, batch_size=batch_size, device=device,
                              cache_dir=cache_dir, num_workers=num_workers, max_images=max_train_images)
             for d in ("A", "B")}
    path = None
    if cache_dir is not None:
        path = Path(cache_dir).expanduser() / f"domain-classifier-{_digest(feats['A'], feats['B'], extra=str(l2))}.pt"
        if path.is_file():
            try:
                classifier = DomainClassifier.from_state(torch.load(path, map_location="cpu", weights_only=True))
                log.info("domain classifier from the cache: %s", path)
                return classifier
            except Exception as exc:  # a corrupt or older file: refit
                log.warning("ignoring unreadable domain classifier %s (%s)", path, exc)
    classifier = fit_domain_classifier(feats["A"], feats["B"], l2=l2)
    log.info("domain classifier fitted on %d A + %d B training images (training accuracy %.3f)%s",
             classifier.n_train["A"], classifier.n_train["B"], classifier.train_accuracy,
             f", cached: {path}" if path else "")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            torch.save(classifier.state(), str(tmp))
    return classifier
