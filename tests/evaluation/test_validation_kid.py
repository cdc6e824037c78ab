"""The validation callback's target-domain rate option (callbacks.val_kid.target_rate)."""

from __future__ import annotations

import pytest

from cyclegan.training.run import train


def test_val_target_rate_is_logged_beside_val_kid_when_asked(tiny_cfg, tmp_path, caplog):
    cache = tmp_path / "cache"
    cfg = tiny_cfg("trainer.max_steps=-1", "trainer.max_epochs=1", "+trainer.limit_train_batches=1",
                   "callbacks.val_kid.target_rate=true", "callbacks.val_kid.target_rate_train_images=6",
                   f"callbacks.val_kid.cache_dir={cache}")
    with caplog.at_level("INFO"):
        metrics = train(cfg)
    assert {"val/target_rate", "val/target_rate_AB", "val/target_rate_BA", "val/kid"} <= set(metrics)
    assert all(0 <= metrics[k] <= 1 for k in ("val/target_rate_AB", "val/target_rate_BA"))
    assert metrics["val/target_rate"] == pytest.approx((metrics["val/target_rate_AB"] + metrics["val/target_rate_BA"]) / 2)
    fitted = [r.getMessage() for r in caplog.records if r.getMessage().startswith("domain classifier fitted")]
    assert len(fitted) == 1 and "on 6 A + 6 B training images" in fitted[0]
    assert len(list(cache.glob("domain-classifier-*.pt"))) == 1


def test_val_target_rate_is_off_by_default(tiny_cfg):
    metrics = train(tiny_cfg("trainer.max_steps=-1", "trainer.max_epochs=1", "+trainer.limit_train_batches=1"))
    assert "val/kid" in metrics and not any(k.startswith("val/target_rate") for k in metrics)
