"""evaluate.py and the validation-KID callback: tiny models, the bundled sample, the `tiny` feature extractor."""

import json
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import nn

import cyclegan.evaluation.inception as inception
from conftest import TINY_MODEL, compose_config
from cyclegan.data import UnpairedDataModule
from cyclegan.evaluation.networks import networks_of
from cyclegan.evaluation.run import (
    EvaluationError,
    evaluate,
    evaluate_model,
    load_for_evaluation,
    resolve_compile,
)
from cyclegan.evaluation.inception import InceptionNotAvailableError, TinyFeatureExtractor
from cyclegan.gan.module import CycleGAN
from cyclegan.models.compile import COMPILE_AUTO_MIN_IMAGES, is_compiled
from cyclegan.training.run import train
from cyclegan.evaluation.validation_kid import ValidationKIDCallback

ROOT = Path(__file__).resolve().parents[2]
# The sample holds out 4 images per domain as its test split and trains on the other 26.
N_TEST, N_TRAIN = 4, 26
EVAL = ["data.image_size=32", "data.num_workers=0", "metrics.inception=tiny"]
KEYS = {"fid", "kid_mean", "kid_std", "mifid", "ssim", "cycle_l1", "d_accuracy", "n_real", "n_fake",
        "n_train_ref", "n_pairs", "d_n_real", "d_n_fake", "periodic_artifact_db", "periodic_artifact_period"}


def sample_datamodule(**kw):
    return UnpairedDataModule(source="sample", image_size=32, load_size=36, num_workers=0, val_size=N_TEST, **kw)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A real Lightning checkpoint: one training step of a tiny CycleGAN on the sample."""
    pl.seed_everything(0)
    model = CycleGAN(**TINY_MODEL)
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule=sample_datamodule())
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path


def eval_cfg(out_dir, ckpt, *overrides, cache=None):
    cache = cache or Path(out_dir).parent / "cache"
    return compose_config(out_dir, f"ckpt_path={ckpt}", f"metrics.cache_dir={cache}", *EVAL, *overrides,
                          config_name="evaluate")


# ---------------------------------------------------------------------------------------------- evaluate


def test_evaluate_writes_metrics_report_grid_and_logs(tiny_ckpt, tmp_path):
    report = evaluate(eval_cfg(tmp_path / "run", tiny_ckpt, "metrics.train_ref=true"))
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["checkpoint"] == str(tiny_ckpt) and metrics["global_step"] == 1
    for direction in ("AB", "BA"):
        m = metrics[direction]
        assert KEYS <= set(m), KEYS - set(m)
        assert m["n_real"] == m["n_fake"] == m["n_pairs"] == m["d_n_real"] == m["d_n_fake"] == N_TEST
        assert m["n_train_ref"] == N_TRAIN and m["fid"] > 0  # one training step: noise, far from the paintings
        d = m["memorization_distance"]
        assert m["memorization_distance_thr"] == (d if d < 0.1 else 1.0)  # Kaggle's threshold, eps 0.1
        assert m["mifid"] == pytest.approx(m["fid"] / m["memorization_distance_thr"])
        assert m["kid_mean"] is not None and m["not_applicable"] == {}
        assert -1 <= m["ssim"] <= 1 and 0 <= m["cycle_l1"] <= 1
        assert 0 <= m["d_accuracy"] <= 1 and 0 <= m["d_accuracy_real"] <= 1
    assert report["AB"]["fid"] == pytest.approx(metrics["AB"]["fid"])

    md = (run / "report.md").read_text()
    assert "A → B" in md and "B → A" in md and "n_real" in md and "](samples.png)" in md
    # 6 rows (real, translated, reconstructed per direction) x 4 examples of 32 px with 2 px padding
    assert Image.open(run / "samples.png").size == (4 * 34 + 2, 6 * 34 + 2)
    assert "eval/AB/fid" in (run / "csv" / "metrics.csv").read_text()


def test_real_features_are_cached_and_max_images_limits_the_translations(tiny_ckpt, tmp_path):
    cache = tmp_path / "cache"
    off = "metrics.target_rate=false"  # its classifier's training features are cached too (test_target_rate.py)
    first = evaluate(eval_cfg(tmp_path / "run1", tiny_ckpt, off, cache=cache))
    cached = sorted(cache.iterdir())
    assert len(cached) == 2  # real test A and real test B

    calls = []
    original = TinyFeatureExtractor.forward
    TinyFeatureExtractor.forward = lambda self, x: calls.append(len(x)) or original(self, x)
    try:
        second = evaluate(eval_cfg(tmp_path / "run2", tiny_ckpt, "metrics.max_images=2",
                                   "metrics.max_real_images=null", off, cache=cache))
    finally:
        TinyFeatureExtractor.forward = original
    assert sorted(cache.iterdir()) == cached
    assert sum(calls) == 2 + 2  # only the translations went through the extractor
    for d in ("AB", "BA"):
        assert (second[d]["n_fake"], second[d]["n_real"], second[d]["n_pairs"]) == (2, N_TEST, 2)
    # train+test as the real reference: more real images, a separate cache entry
    third = evaluate(eval_cfg(tmp_path / "run3", tiny_ckpt, "metrics.real_ref=train+test", off, cache=cache))
    assert third["AB"]["n_real"] == N_TRAIN + N_TEST and len(list(cache.iterdir())) == 4
    assert first["AB"]["n_real"] == N_TEST
    # whole splits are cached split by split: MiFID's training images and the domain classifier's reuse them
    calls.clear()
    TinyFeatureExtractor.forward = lambda self, x: calls.append(len(x)) or original(self, x)
    try:
        evaluate(eval_cfg(tmp_path / "run4", tiny_ckpt, "metrics.train_ref=true", "metrics.target_rate_train_images=null",
                          cache=cache))
    finally:
        TinyFeatureExtractor.forward = original
    assert sum(calls) == N_TEST + N_TEST  # the translations only


def test_max_images_alone_makes_the_real_references_small_too(tiny_ckpt, tmp_path):
    calls = []
    original = TinyFeatureExtractor.forward
    TinyFeatureExtractor.forward = lambda self, x: calls.append(len(x)) or original(self, x)
    try:
        tiny = evaluate(eval_cfg(tmp_path / "run", tiny_ckpt, "metrics.max_images=2", "metrics.train_ref=true",
                                 "metrics.target_rate=false"))
    finally:
        TinyFeatureExtractor.forward = original
    for d in ("AB", "BA"):
        assert (tiny[d]["n_fake"], tiny[d]["n_real"], tiny[d]["n_train_ref"]) == (2, 2, 2)
    assert sum(calls) == 2 * (2 + 2 + 2)  # per direction: translations, test reals, training reals


def test_evaluate_logs_the_cache_location_and_progress_with_rates(tiny_ckpt, tmp_path, caplog, monkeypatch):
    import cyclegan.evaluation.progress as progress

    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line after every batch
    cache = tmp_path / "my_cache"
    with caplog.at_level("INFO"):
        evaluate(eval_cfg(tmp_path / "run", tiny_ckpt, "metrics.batch_size=2", cache=cache))
    lines = [r.getMessage() for r in caplog.records]
    assert any(f"real-image feature cache: {cache}" in line for line in lines)
    assert "translating test images of domain A: 2/4 images (" in "\n".join(lines)
    done = [line for line in lines if line.startswith("translating test images of domain B: 4 images in")]
    assert len(done) == 1 and "images/s" in done[0]
    assert any(line.startswith("real A features (test): 4 images in") and "now cached" in line for line in lines)


def test_the_feature_cache_lives_under_paths_cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("CYCLEGAN_FEATURE_CACHE", raising=False)
    cfg = compose_config(tmp_path, f"paths.cache_dir={tmp_path / 'caches'}", config_name="evaluate")
    assert cfg.metrics.cache_dir == f"{tmp_path / 'caches'}/features"
    assert compose_config(tmp_path, "metrics.max_images=5", config_name="evaluate").metrics.max_real_images == 5


class ConstantD(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full((x.shape[0], 1, 2, 2), float(self.value), device=x.device)


def test_identity_translation_and_discriminator_wiring(tiny_ckpt):
    # D_B (judges A -> B) calls everything real: right on real B, wrong on A -> B translations;
    # D_A (judges B -> A) calls everything fake
    nets = networks_of({"AB": nn.Identity(), "BA": nn.Identity()}, {"AB": ConstantD(1.0), "BA": ConstantD(0.0)})
    results, examples = evaluate_model(nets, sample_datamodule(), TinyFeatureExtractor(), num_examples=3)
    for d in ("AB", "BA"):
        assert results[d]["ssim"] == pytest.approx(1.0, abs=1e-4)
        assert results[d]["cycle_l1"] == pytest.approx(0.0, abs=1e-6)
        assert results[d]["periodic_artifact_db"] == pytest.approx(0.0, abs=1e-6)  # nothing printed over them
        assert results[d]["d_accuracy"] == pytest.approx(0.5)
    assert (results["AB"]["d_accuracy_real"], results["AB"]["d_accuracy_fake"]) == (1.0, 0.0)
    assert (results["BA"]["d_accuracy_real"], results["BA"]["d_accuracy_fake"]) == (0.0, 1.0)
    assert examples["real_A"].shape == examples["fake_B"].shape == (3, 3, 32, 32)
    assert torch.equal(examples["real_A"], examples["fake_B"])


def test_compiled_networks_pad_the_last_batch_and_give_the_eager_numbers(tiny_ckpt):
    eager, _ = evaluate_model(load_for_evaluation(tiny_ckpt)[0], sample_datamodule(), TinyFeatureExtractor(),
                              batch_size=3)
    nets, _ = load_for_evaluation(tiny_ckpt)
    seen = []
    nets["AB"].generator.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    # aot_eager: the compile path (one batch shape, padding) without inductor's C++ build time
    fast, _ = evaluate_model(nets, sample_datamodule(), TinyFeatureExtractor(), batch_size=3,
                             compile={"backend": "aot_eager"})
    assert is_compiled(nets["AB"].generator) and is_compiled(nets["AB"].discriminator)
    assert set(seen) == {3}  # 4 test images per domain: batches of 3 and 1, the 1 padded to 3
    for d in ("AB", "BA"):
        for key in ("fid", "kid_mean", "ssim", "cycle_l1", "d_accuracy"):
            assert fast[d][key] == pytest.approx(eager[d][key], rel=1e-4, abs=1e-6), (d, key)
        assert fast[d]["n_fake"] == fast[d]["n_pairs"] == fast[d]["d_n_fake"] == N_TEST


def test_one_direction_translates_only_its_source_and_still_judges_the_real_targets(tiny_ckpt, tmp_path):
    nets, _ = load_for_evaluation(tiny_ckpt)
    translated = []
    nets["AB"].generator.register_forward_pre_hook(lambda module, args: translated.append(("G_AB", args[0].shape[0])))
    nets["BA"].generator.register_forward_pre_hook(lambda module, args: translated.append(("G_BA", args[0].shape[0])))
    both, _ = evaluate_model(load_for_evaluation(tiny_ckpt)[0], sample_datamodule(), TinyFeatureExtractor())
    results, examples = evaluate_model(nets, sample_datamodule(), TinyFeatureExtractor(), directions=["BA"])
    assert list(results) == ["BA"] and set(examples) == {"real_B", "fake_A", "rec_B"}
    assert translated == [("G_BA", N_TEST), ("G_AB", N_TEST)]  # B -> A, then the cycle back; no A -> B pass
    for key in ("fid", "kid_mean", "ssim", "cycle_l1", "d_accuracy", "d_accuracy_real", "d_n_real"):
        assert results["BA"][key] == pytest.approx(both["BA"][key]), key  # D_A still saw the real A images

    report = evaluate(eval_cfg(tmp_path / "run", tiny_ckpt, "metrics.directions=[BA]"))
    assert "BA" in report and "AB" not in report
    with pytest.raises(EvaluationError, match=r"metrics.directions=.*use \[AB,BA\]") as e:
        evaluate(eval_cfg(tmp_path / "bad", tiny_ckpt, "metrics.directions=[B2C]"))
    assert "\n" not in str(e.value)


def test_compile_auto_is_on_for_large_cpu_runs_only_and_bad_values_fail_in_one_line():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_compile("auto", cpu, 10) is False and resolve_compile("auto", cuda, 10_000) is False
    assert resolve_compile("auto", cpu, COMPILE_AUTO_MIN_IMAGES) is True and resolve_compile(True, cuda, 1) is True
    assert resolve_compile(False, cuda, 10_000) is False
    with pytest.raises(EvaluationError, match=r"compile='fastest' is not understood; use auto") as e:
        resolve_compile("fastest", cpu, 10)
    assert "\n" not in str(e.value)


def test_no_inception_fails_first_saying_how_to_get_the_standard_one(tiny_ckpt, tmp_path, monkeypatch):
    def unavailable():
        raise FileNotFoundError("not installed")

    monkeypatch.setitem(inception._LOADERS, "fid_helper", unavailable)
    monkeypatch.setitem(inception._LOADERS, "torchmetrics", unavailable)
    cfg = eval_cfg(tmp_path / "run", tiny_ckpt, "metrics.inception=fid_helper")
    with pytest.raises(InceptionNotAvailableError, match="standard FID network"):
        evaluate(cfg)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_user_errors_name_the_key(tiny_ckpt, tmp_path):
    with pytest.raises(EvaluationError, match="ckpt_path is required"):
        evaluate(eval_cfg(tmp_path / "a", tiny_ckpt, "ckpt_path=null"))
    with pytest.raises(EvaluationError, match="metrics.real_ref"):
        evaluate(eval_cfg(tmp_path / "b", tiny_ckpt, "metrics.real_ref=validation"))
    with pytest.raises(EvaluationError, match="data.image_size=30"):
        evaluate(eval_cfg(tmp_path / "c", tiny_ckpt, "data.image_size=30"))  # resnet needs multiples of 4
    with pytest.raises(EvaluationError, match="data.eval_size=30"):
        evaluate(eval_cfg(tmp_path / "d", tiny_ckpt, "data.eval_size=30"))  # the size evaluation translates at


def test_evaluate_py_command_line(tiny_ckpt, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "evaluate.py", f"ckpt_path={tiny_ckpt}", *EVAL, f"metrics.cache_dir={tmp_path / 'c'}",
           f"hydra.run.dir={run}"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["AB"]["n_fake"] == metrics["BA"]["n_fake"] == N_TEST
    assert (run / "report.md").exists() and (run / "samples.png").exists()

    missing = subprocess.run([*cmd[:2], f"ckpt_path={tmp_path / 'nope.ckpt'}", *cmd[3:]], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2  # user errors: one line, exit code 2 (cyclegan.common.errors.exit_on_user_error)
    assert "nope.ckpt: no such file" in missing.stderr + missing.stdout
    assert "Traceback" not in missing.stderr


# ---------------------------------------------------------------------------------------------- val KID


def test_val_kid_is_logged_and_drives_checkpointing_and_the_objective(tiny_cfg, tmp_path, caplog):
    cfg = tiny_cfg("trainer.max_steps=-1", "trainer.max_epochs=2", "+trainer.limit_train_batches=2",
                   "callbacks.val_kid.inception=tiny", "callbacks.model_checkpoint.monitor=val/kid")
    with caplog.at_level("INFO"):
        metrics = train(cfg)
    kid_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("val KID on 2 + 2 images")]
    # 2 val images: the caveat is said on the first line only
    assert len(kid_lines) == 2 and ["a smoke signal only" in line for line in kid_lines] == [True, False]
    assert {"val/kid", "val/kid_AB", "val/kid_BA"} <= set(metrics)
    assert metrics["val/kid"] == pytest.approx((metrics["val/kid_AB"] + metrics["val/kid_BA"]) / 2)
    assert metrics["objective"] == metrics["val/kid"]

    rows = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    col = rows[0].split(",").index("val/kid")
    assert sum(1 for r in rows[1:] if r.split(",")[col]) == 2  # once per epoch

    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state = next(v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert state["monitor"] == "val/kid" and torch.isfinite(torch.as_tensor(state["best_model_score"]))
    assert Path(state["best_model_path"]).exists()


def test_val_kid_schedule():
    cb = ValidationKIDCallback(every_n_epochs=3, inception="tiny")
    due = []
    for epoch in range(7):
        if cb._due(SimpleNamespace(current_epoch=epoch, max_epochs=7)):
            due.append(epoch)
            cb._computed_this_fit = True
    assert due == [0, 2, 5, 6]  # the first validation, every third epoch, the last epoch


def test_val_kid_without_inception_warns_once_and_training_goes_on(tiny_cfg, monkeypatch):
    def unavailable():
        raise FileNotFoundError("not installed")

    monkeypatch.setitem(inception._LOADERS, "fid_helper", unavailable)
    monkeypatch.setitem(inception._LOADERS, "torchmetrics", unavailable)
    cfg = tiny_cfg("trainer.max_steps=-1", "trainer.max_epochs=2", "+trainer.limit_train_batches=1",
                   "callbacks.val_kid.inception=auto")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = train(cfg)
    disabled = [w for w in caught if "ValidationKIDCallback disabled" in str(w.message)]
    assert len(disabled) == 1 and "no Inception network" in str(disabled[0].message)
    assert "val/kid" not in metrics
    assert "train/G_loss_epoch" in metrics  # training finished and logged its losses


def test_ckpt_path_identity_scores_the_untranslated_images(tiny_ckpt, tmp_path):
    cache = tmp_path / "cache"
    baseline = evaluate(eval_cfg(tmp_path / "identity", "identity", "metrics.train_ref=true",
                                 "metrics.directions=[BA]", cache=cache))
    m = json.loads((tmp_path / "identity" / "metrics.json").read_text())["BA"]
    assert baseline["checkpoint"] == "identity" and baseline["global_step"] is None
    assert m["ssim"] == pytest.approx(1.0, abs=1e-4) and m["cycle_l1"] == pytest.approx(0.0, abs=1e-6)
    assert m["n_fake"] == m["n_pairs"] == N_TEST and m["n_train_ref"] == N_TRAIN
    assert m["d_accuracy"] is None and m["d_n_real"] == m["d_n_fake"] == 0  # no discriminators to judge with
    # the photos themselves, so a translated photo (one training step: noise) is further from them
    trained = evaluate(eval_cfg(tmp_path / "trained", tiny_ckpt, "metrics.directions=[BA]", cache=cache))["BA"]
    assert trained["ssim"] < m["ssim"]
