"""A cheap KID during training, usable as checkpoint monitor and sweep objective.

At the end of a validation run, :class:`ValidationKIDCallback` translates a small fixed subset of
validation images of each domain (``num_images`` per domain, evenly spaced over the datamodule's val
split, test pipeline) and compares their Inception features with those of the real images of the
target domain in that subset. It logs

- ``val/kid_AB``: KID(G_AB(val A), val B), ``val/kid_BA``: KID(G_BA(val B), val A), for each direction the
  model family trains (a CUT model has one of them),
- ``val/kid``: their mean (``callbacks.model_checkpoint.monitor=val/kid``; the sweep objective);
- with ``target_rate=true``: ``val/target_rate_AB``, ``val/target_rate_BA`` and their mean
  ``val/target_rate``, the share of translated val images that the domain classifier of
  :mod:`cyclegan.evaluation.domain_rate` (fitted once per fit on at most ``target_rate_train_images``
  training images per domain, cached in ``cache_dir``) takes for the target domain: whether the
  painter paints, which KID alone does not show.

The real features are computed once per fit. The KID subsets are drawn with a fixed seed, so epochs
are comparable; with tens of images the absolute value is noisy and biased upwards compared with the
full-test-set KID of ``evaluate.py`` and only meant for comparing epochs of one run.

It computes on the first validation of a fit, every ``every_n_epochs``-th epoch after that (Lightning's
convention: when ``(epoch + 1) % every_n_epochs == 0``) and at the last epoch; in between the previous
value stays in ``trainer.callback_metrics`` so a ModelCheckpoint monitoring ``val/kid`` keeps working.
Every rank computes the same value on the same images (no communication, consistent logging under DDP).
When no Inception network can be loaded it warns once and switches itself off; training goes on.

Below :data:`SMOKE_SIGNAL_BELOW` images per domain (the bundled sample has 4) every log line calls the
value a smoke signal: it shows that the pipeline runs and moves, not how good the translations are.
"""

from __future__ import annotations

import logging
import time
from os import PathLike
from typing import Any, Iterable, Optional, Union

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn

from cyclegan.common.directions import DOMAINS_OF
from cyclegan.evaluation.domain_rate import DomainClassifier, domain_classifier_for
from cyclegan.evaluation.features import as_items, compute_features
from cyclegan.evaluation.inception import load_inception
from cyclegan.evaluation.metrics import kid_from_features, kid_subset_size
from cyclegan.common.subsets import evenly_spaced, evenly_spaced_indices

log = logging.getLogger(__name__)

__all__ = ["ValidationKID", "ValidationKIDCallback", "SMOKE_SIGNAL_BELOW"]

# Fewer val images per domain than this: val/kid is labelled a smoke signal in the log (a few images
# give a KID dominated by which images were drawn; evaluate.py on a test split measures quality).
SMOKE_SIGNAL_BELOW = 50


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
        items = list(as_items(real_images))
        items = evenly_spaced(items, max_real)
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


class ValidationKIDCallback(pl.Callback):
    def __init__(
        self,
        every_n_epochs: int = 1,
        num_images: int = 16,
        inception: Any = "auto",
        kid_subset_size: int = 100,
        kid_subsets: int = 50,
        batch_size: int = 16,
        seed: int = 0,
        target_rate: bool = False,
        target_rate_train_images: Optional[int] = 200,
        cache_dir: Optional[Union[str, PathLike]] = None,
    ):
        if int(every_n_epochs) < 1:
            raise ValueError(f"callbacks.val_kid.every_n_epochs must be >= 1, got {every_n_epochs}")
        if int(num_images) < 2:
            raise ValueError(f"callbacks.val_kid.num_images must be >= 2 (KID needs two images), got {num_images}")
        self.every_n_epochs = int(every_n_epochs)
        self.num_images = int(num_images)
        self.inception = inception
        self.kid_subset_size = int(kid_subset_size)
        self.kid_subsets = int(kid_subsets)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.target_rate = bool(target_rate)
        self.target_rate_train_images = target_rate_train_images
        self.cache_dir = cache_dir
        self._classifier: Optional[DomainClassifier] = None
        self.disabled = False
        self._extractor: Optional[nn.Module] = None
        self._images: Optional[dict[str, torch.Tensor]] = None  # the fixed val subset, [-1, 1], CPU
        self._scorers: Optional[dict[str, ValidationKID]] = None  # per target domain, real features inside
        self._computed_this_fit = False
        self._smoke_signal_said = False  # the caveat is said once per run, not on every validation line

    # ------------------------------------------------------------------ state
    def _disable(self, reason: str) -> None:
        self.disabled = True
        rank_zero_warn(f"ValidationKIDCallback disabled: {reason}. val/kid will not be logged; training continues.")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The val images and their real features are computed once per fit (the data may differ between fits).
        self._images = None
        self._scorers = None
        self._classifier = None
        self._computed_this_fit = False

    # ------------------------------------------------------------------ data
    def _subset(self, trainer: pl.Trainer) -> dict[str, torch.Tensor]:
        """``{"A": [n,3,H,W], "B": ...}``: ``num_images`` evenly spaced val images per domain."""
        dm = trainer.datamodule
        if dm is not None and hasattr(dm, "domain_dataset"):
            out = {}
            for domain in ("A", "B"):
                ds = dm.domain_dataset("val", domain)
                idx = evenly_spaced_indices(len(ds), self.num_images)
                out[domain] = torch.stack([ds[i]["image"] for i in idx]) if len(ds) else torch.zeros(0)
            return out
        # Any other data source: the first images of the val dataloader's {"A", "B"} batches.
        loaders = trainer.val_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        got: dict[str, list[torch.Tensor]] = {"A": [], "B": []}
        for batch in loader or []:
            for domain in got:
                got[domain].extend(batch[domain].detach().cpu())
            if min(len(v) for v in got.values()) >= self.num_images:
                break
        return {d: torch.stack(v[: self.num_images]) if v else torch.zeros(0) for d, v in got.items()}

    def _prepare(self, trainer: pl.Trainer, device: torch.device) -> bool:
        """Load the Inception and the real features once; False (and disabled) when that is impossible."""
        if self._scorers is not None:
            return True
        if self._extractor is None:
            try:
                self._extractor = load_inception(self.inception)
            except Exception as exc:  # no network, bad path, offline download: never fail the training
                # The full message: it lists what was tried and how to get the standard network.
                self._disable(f"no Inception network for callbacks.val_kid.inception={self.inception} "
                              f"({type(exc).__name__}: {exc})")
                return False
        images = self._subset(trainer)
        if min(len(v) for v in images.values()) < 2:
            self._disable(f"the val split has fewer than 2 images in a domain ({ {d: len(v) for d, v in images.items()} })")
            return False
        extractor = self._extractor.to(device)
        self._images = images
        self._scorers = {
            domain: ValidationKID(
                compute_features(images[domain], extractor, self.batch_size, device, value_range=(-1.0, 1.0)),
                extractor, subset_size=self.kid_subset_size, num_subsets=self.kid_subsets, seed=self.seed,
                batch_size=self.batch_size, device=device,
            )
            for domain in ("A", "B")
        }
        if self.target_rate:
            self._classifier = self._fit_classifier(trainer, extractor, device)
        return True

    def _fit_classifier(self, trainer: pl.Trainer, extractor: nn.Module, device: torch.device) -> Optional[DomainClassifier]:
        """The domain classifier on the datamodule's training images; None (one warning) when there is none."""
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "files"):
            rank_zero_warn("callbacks.val_kid.target_rate: needs the framework's datamodule (its training images); "
                           "val/target_rate will not be logged")
            return None
        try:
            return domain_classifier_for(dm, extractor, max_train_images=self.target_rate_train_images,
                                         cache_dir=self.cache_dir, batch_size=self.batch_size, device=device)
        except ValueError as exc:
            rank_zero_warn(f"callbacks.val_kid.target_rate: {exc}; val/target_rate will not be logged")
            return None

    # ------------------------------------------------------------------ hooks
    def _due(self, trainer: pl.Trainer) -> bool:
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and trainer.max_epochs > 0 and epoch + 1 >= trainer.max_epochs
        return not self._computed_this_fit or (epoch + 1) % self.every_n_epochs == 0 or last

    def _features(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        return compute_features(images, self._extractor, self.batch_size, device, value_range=(-1.0, 1.0))

    @torch.no_grad()
    def _translate(self, G: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        dtype = next(G.parameters()).dtype  # bf16-true / 16-true trainings keep the weights in half precision
        outs = [G(images[i : i + self.batch_size].to(device, dtype)).float().clamp(-1, 1)
                for i in range(0, len(images), self.batch_size)]
        return torch.cat(outs)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.disabled or trainer.sanity_checking or not self._due(trainer):
            return
        device = pl_module.device
        t0 = time.perf_counter()
        if not self._prepare(trainer, device):
            return
        was_training = pl_module.training
        pl_module.eval()
        try:  # every direction the model family trains (CycleGAN both, CUT its one)
            fakes = {  # direction -> features of the translated val images of its source domain
                direction: self._features(self._translate(G, self._images[DOMAINS_OF[direction][0]], device), device)
                for direction, G in pl_module.generators().items()
            }
        finally:
            pl_module.train(was_training)
        kid = {d: self._scorers[DOMAINS_OF[d][1]].score_features(f)["kid_mean"] for d, f in fakes.items()}
        self._computed_this_fit = True
        n = min(len(v) for v in self._images.values())
        smoke = ""
        if n < SMOKE_SIGNAL_BELOW and not self._smoke_signal_said:
            smoke = (f"; a smoke signal only: under {SMOKE_SIGNAL_BELOW} images per domain KID says that training "
                     "runs, not how good it is (evaluate.py on a test split measures that)")
            self._smoke_signal_said = True
        log.info("val KID on %d + %d images: %s (%.1f s)%s", len(self._images["A"]), len(self._images["B"]),
                 ", ".join(f"{d} {v:.4f}" for d, v in kid.items()), time.perf_counter() - t0, smoke)
        # Identical on every rank (same images, same weights), so no sync is needed.
        logged = [*((f"val/kid_{d}", v) for d, v in kid.items()), ("val/kid", sum(kid.values()) / len(kid))]
        if self._classifier is not None:
            rate = {d: self._classifier.rate(f, DOMAINS_OF[d][1]) for d, f in fakes.items()}
            log.info("val target-domain rate: %s", ", ".join(f"{d} {v:.3f}" for d, v in rate.items()))
            logged += [*((f"val/target_rate_{d}", v) for d, v in rate.items()),
                       ("val/target_rate", sum(rate.values()) / len(rate))]
        for name, value in logged:
            pl_module.log(name, float(value), on_epoch=True, on_step=False, prog_bar=name == "val/kid", batch_size=n)
