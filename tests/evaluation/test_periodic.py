"""The periodic-artefact score: zero for the identity, high for a printed checkerboard or grating,
low for changes that are not one pattern repeated over every image."""

import math

import pytest
import torch

from cyclegan.evaluation.periodic import PeriodicArtifacts


def _photos(n=32, size=64, seed=0):
    """Random images in [-1, 1] shaped like photos: mostly low frequencies, some fine grain."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size // 8, size // 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    x = 0.8 * x / x.abs().amax() + 0.02 * torch.randn(n, 3, size, size, generator=g)
    return x.clamp(-1, 1)


def _score(inputs, translations, batch=4):
    meter = PeriodicArtifacts()
    for i in range(0, len(inputs), batch):
        meter.update(inputs[i:i + batch], translations[i:i + batch])
    return meter.compute()


def test_identity_scores_zero():
    x = _photos()
    assert _score(x, x)["periodic_artifact_db"] == pytest.approx(0.0, abs=1e-6)


def test_a_checkerboard_stands_out_at_its_period():
    x = _photos()
    i = torch.arange(x.shape[-1])
    checker = ((i[:, None] + i[None, :]) % 2 * 2 - 1).float()
    scores = _score(x, (x + 0.05 * checker).clamp(-1, 1))
    assert scores["periodic_artifact_db"] > 20
    assert scores["periodic_artifact_period"] == pytest.approx(math.sqrt(2), rel=1e-3)


def test_a_diagonal_grating_of_four_pixels_is_found():
    x = _photos()
    i = torch.arange(x.shape[-1]).float()
    grating = torch.cos(2 * math.pi * (i[:, None] + i[None, :]) / 4)
    scores = _score(x, (x + 0.05 * grating).clamp(-1, 1))
    assert scores["periodic_artifact_db"] > 20
    assert scores["periodic_artifact_period"] == pytest.approx(2 * math.sqrt(2), rel=0.05)  # the window spreads it over 3 bins


def test_changes_without_a_printed_pattern_score_low():
    x = _photos()
    g = torch.Generator().manual_seed(1)
    noisy = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)   # fresh, stronger grain in each image
    darker = 0.7 * x - 0.1                                                # a colour / tone change
    assert _score(x, noisy)["periodic_artifact_db"] < 6
    assert abs(_score(x, darker)["periodic_artifact_db"]) < 1


def test_batches_of_another_size_are_left_out_and_counted():
    x, small = _photos(4, 64), _photos(2, 32)
    meter = PeriodicArtifacts()
    meter.update(x, x)
    meter.update(small, small + 0.5)
    assert meter.skipped == 2
    assert meter.compute()["periodic_artifact_db"] == pytest.approx(0.0, abs=1e-6)


def test_nothing_seen_gives_nan_and_mismatched_pairs_are_refused():
    assert math.isnan(PeriodicArtifacts().compute()["periodic_artifact_db"])
    with pytest.raises(ValueError, match="one shape"):
        PeriodicArtifacts().update(_photos(2, 64), _photos(2, 32))
