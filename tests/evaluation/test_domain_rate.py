"""The target-domain rate (cyclegan.evaluation.domain_rate): a classifier fitted on the training images
of two synthetic, separable domains (reddish A, bluish B), judged through the tiny stand-in network."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import compose_config
from cyclegan.data import UnpairedDataModule
from cyclegan.evaluation.domain_rate import domain_classifier_for, fit_domain_classifier
from cyclegan.evaluation.inception import TinyFeatureExtractor
from cyclegan.evaluation.networks import IdentityGenerator, networks_of
from cyclegan.evaluation.run import evaluate, evaluate_model

N_TRAIN, N_TEST = 12, 6


def _write_domain(folder, n, base, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):  # a domain colour plus texture: separable, but no two images alike
        img = np.clip(np.array(base) + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:02d}.png")


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    _write_domain(root / "trainA", N_TRAIN, (190, 70, 60), 0)
    _write_domain(root / "trainB", N_TRAIN, (60, 80, 190), 1)
    _write_domain(root / "testA", N_TEST, (190, 70, 60), 2)
    _write_domain(root / "testB", N_TEST, (60, 80, 190), 3)
    return root


def datamodule(root):
    return UnpairedDataModule(source="folders", dir_a=str(root / "trainA"), dir_b=str(root / "trainB"),
                              test_dir_a=str(root / "testA"), test_dir_b=str(root / "testB"), image_size=32,
                              load_size=32, num_workers=0, val_size=2)


class Painter(nn.Module):
    """Swaps red and blue: a reddish A image becomes a bluish B-like one (and back)."""

    def forward(self, x):
        return x.flip(1)


class NearIdentity(nn.Module):
    """A light filter: the input nudged a little toward blue."""

    def forward(self, x):
        return (x + torch.tensor([-0.03, 0.0, 0.03]).view(1, 3, 1, 1)).clamp(-1, 1)


def test_the_classifier_separates_separable_features_and_balances_the_domains():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 8, generator=g) + torch.tensor([2.0] + [0.0] * 7)
    b = torch.randn(20, 8, generator=g) - torch.tensor([2.0] + [0.0] * 7)  # 15x fewer: still not outvoted
    clf = fit_domain_classifier(a, b)
    test_a = torch.randn(200, 8, generator=g) + torch.tensor([2.0] + [0.0] * 7)
    test_b = torch.randn(200, 8, generator=g) - torch.tensor([2.0] + [0.0] * 7)
    assert clf.rate(test_b, "B") > 0.9 and clf.rate(test_a, "B") < 0.1
    assert clf.rate(test_a, "A") == pytest.approx(1 - clf.rate(test_a, "B"))
    assert clf.n_train == {"A": 300, "B": 20} and clf.rate(test_a[:0], "B") is None
    with pytest.raises(ValueError, match="both domains"):
        fit_domain_classifier(a, b[:0])


def test_real_targets_score_high_inputs_low_and_a_painter_above_a_light_filter(domains):
    nets = networks_of({"AB": Painter(), "BA": NearIdentity()})
    results, _ = evaluate_model(nets, datamodule(domains), TinyFeatureExtractor(), target_rate_train_images=None)
    for d in ("AB", "BA"):
        r = results[d]
        assert r["target_rate_ceiling"] >= 5 / 6, d  # the real test images of the target domain
        assert r["target_rate_floor"] <= 1 / 6, d  # the untranslated inputs
        assert r["not_applicable"].keys() == {"d_accuracy", "d_accuracy_real", "d_accuracy_fake"}
    assert results["AB"]["target_rate"] >= 5 / 6  # red -> blue: taken for B
    assert results["BA"]["target_rate"] <= 1 / 6  # a nudge keeps it a B image: not taken for A


def test_the_classifier_is_fitted_on_training_images_only_and_cached(domains, tmp_path, caplog):
    dm = datamodule(domains)
    dm.setup("test")
    seen = []
    ext = TinyFeatureExtractor()
    original = ext.forward
    ext.forward = lambda x: seen.append(len(x)) or original(x)
    with caplog.at_level(logging.INFO):
        first = domain_classifier_for(dm, ext, max_train_images=None, cache_dir=tmp_path, batch_size=64)
    assert first.n_train == {"A": N_TRAIN, "B": N_TRAIN} and sum(seen) == 2 * N_TRAIN  # never the test split
    assert len(list(tmp_path.glob("domain-classifier-*.pt"))) == 1
    with caplog.at_level(logging.INFO):
        again = domain_classifier_for(dm, ext, max_train_images=None, cache_dir=tmp_path, batch_size=64)
    assert sum(seen) == 2 * N_TRAIN  # features and classifier from the cache
    assert any("domain classifier from the cache" in r.getMessage() for r in caplog.records)
    torch.testing.assert_close(again.weight, first.weight)
    capped = domain_classifier_for(dm, ext, max_train_images=4, cache_dir=tmp_path, batch_size=64)
    assert capped.n_train == {"A": 4, "B": 4} and len(list(tmp_path.glob("domain-classifier-*.pt"))) == 2


def test_evaluate_reports_the_rates_in_metrics_json_and_report_md(domains, tmp_path):
    overrides = ["ckpt_path=identity", "data=folders", f"data.dir_a={domains / 'trainA'}",
                 f"data.dir_b={domains / 'trainB'}", f"data.test_dir_a={domains / 'testA'}",
                 f"data.test_dir_b={domains / 'testB'}", "data.image_size=32", "data.load_size=32",
                 "data.num_workers=0", "metrics.inception=tiny", f"metrics.cache_dir={tmp_path / 'cache'}"]
    evaluate(compose_config(tmp_path / "run", *overrides, config_name="evaluate"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for d in ("AB", "BA"):  # untranslated: the translations ARE the inputs
        assert metrics[d]["target_rate"] == metrics[d]["target_rate_floor"] <= 1 / 6
        assert metrics[d]["target_rate_ceiling"] >= 5 / 6
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| target-domain rate ↑ |" in md and "| … untranslated inputs |" in md and "| … real target images |" in md

    evaluate(compose_config(tmp_path / "off", *overrides, "metrics.target_rate=false", config_name="evaluate"))
    off = json.loads((tmp_path / "off" / "metrics.json").read_text())["AB"]
    assert off["target_rate"] is None and "metrics.target_rate=false" in off["not_applicable"]["target_rate"]
