"""The one-call GPU suite: its CPU dry run goes through every stage, the time guards skip and stop what
cannot finish, the prepared folder stays under the carry limit, the returned checkpoint parts join back."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
import torch

from cyclegan.tools import bench, gpu_prepare, gpu_suite
from cyclegan.inference.checkpoint import load_generator


def test_dry_run_goes_through_every_stage_and_finish_evaluates_the_returned_parts(tmp_path, monkeypatch):
    monkeypatch.setenv("CYCLEGAN_FEATURE_CACHE", str(tmp_path / "features"))  # finish's evaluate.py caches there
    out, work, fin = tmp_path / "out", tmp_path / "work", tmp_path / "finish"
    assert gpu_suite.main(["--suite", "gpu", "--dry-run", "--device", "cpu", "--out", str(out), "--work", str(work)]) == 0
    report = json.loads((out / gpu_suite.RESULT_FILE).read_text())
    st = report["stages"]
    assert report["dry_run"] and st["ceilings"] == {"status": "skipped", "reason": "GPU only", "seconds": st["ceilings"]["seconds"]}

    rows = {r["config"]: r for r in st["training"]["configs"]}
    naive = rows["fp32+b1+nofused"]
    assert naive["pairs_per_s"] > 0 and naive["x_naive"] == 1.0 and st["training"]["flops_per_pair"] > 0
    assert rows["bf16+cl+compile=reduce-overhead+b1"]["error"] == "skipped: GPU only (CUDA graphs)"
    compiled = rows["bf16+cl+compile+b16"]
    assert compiled["ran_as"] == "bf16+cl+compile=aot_eager+b2" and not compiled["error"] and compiled["batch"] == 2
    assert compiled["extra"]["finite_losses"]
    infer = st["inference"]["configs"]
    assert [r["config"] for r in infer] == ["bf16+cl+b8", "bf16+cl+compile=aot_eager+b8"]
    assert all(r["images_per_s"] > 0 and not r["error"] for r in infer)

    z = st["kaggle_zip"]
    assert z["status"] == "ok" and z["zip_entries"] == 16 and z["wall_s"] > 0

    m = st["monet_run"]
    assert m["status"] == "ok", m
    assert list(rows) == list(gpu_suite.Plan.train_configs[:3])  # the dry plan's shorter list
    # the only stable config of batch 2, less its compile (the dry plan saves train.py's compilation)
    assert m["config"] == "bf16+cl+b2" and m["pairs_seen"] == 2 * m["global_step"] > 0
    metrics = m["metrics"]
    assert metrics["n_pairs"] == 8 and 0 < metrics["ssim"] <= 1 and "kid_mean" not in metrics  # tiny Inception
    parts = [p["file"] for p in m["checkpoint"]["parts"]]
    assert set(parts) | {gpu_suite.RESULT_FILE, "grid.jpg"} == set(report["returned_files"])
    assert len(report["returned_files"]) <= 7 and (out / "grid.jpg").stat().st_size < 200_000  # + suite.log <= 8
    targets = {t["key"]: t for t in report["targets"]}
    assert targets["kid_x1000"]["met"] is None and targets["ssim"]["value"] == metrics["ssim"]

    assert gpu_suite.main(["--finish-gpu", str(out), "--data", str(work / "data"), "--out", str(fin),
                           "--inception", "tiny"]) == 0
    final = json.loads((fin / gpu_suite.FINAL_FILE).read_text())
    assert final["finish"]["metrics"]["n_pairs"] == 8
    # the half-precision weights round the trained ones: the CPU's SSIM stays close to the GPU run's
    assert abs(final["finish"]["metrics"]["ssim"] - metrics["ssim"]) < 0.02
    G = load_generator(fin / "G_BA_fp16.pt")
    saved = torch.load(fin / "G_BA_fp16.pt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in saved.values() if v.is_floating_point())
    assert G(torch.rand(1, 3, 32, 32) * 2 - 1).shape == (1, 3, 32, 32)


def test_stage_budget_skips_configs_and_the_deadline_stops_a_running_one():
    plan = gpu_suite.dry_plan(train_configs=("fp32+b1+nofused", "bf16+cl+compile+b16"),
                              estimates={"train_eager": 1, "train_compile": 1000, "infer_eager": 1, "infer_compile": 1})
    clock = gpu_suite.Clock(60)
    clock.start_stage(30)
    report = {"stages": {}}
    result = gpu_suite.stage_training(torch.device("cpu"), plan, report, clock)
    naive, compiled = result["configs"]
    assert naive["pairs_per_s"] > 0 and not naive["error"]
    assert compiled["error"].startswith("skipped: stage budget") and "~1000 s needed" in compiled["error"]

    args = SimpleNamespace(warmup=1, steps=2, profile_steps=0, image_size=32, ngf=4, ndf=4, n_blocks=1,
                           deadline=time.perf_counter())  # already spent: stops before the first timed step
    r = bench.bench_training(bench.Config.parse("fp32+b1"), args, torch.device("cpu"))
    assert r.error == "stopped by the time budget after 0 of 3 steps"


def test_prepare_copies_the_images_and_refuses_a_folder_over_the_carry_limit(tmp_path, monkeypatch):
    source = tmp_path / "shared"
    for split, n in (("trainA", 3), ("testA", 2), ("testB", 4), ("trainB", 9)):
        bench.write_jpegs(source / "monet2photo" / split, n, 16, seed=n)
    dest = tmp_path / "carry"
    manifest = gpu_prepare.prepare(dest, source, train_photos=3, wheels=False)
    assert manifest["images"] == {"trainA": 3, "testA": 2, "testB": 4, "trainB": 3}
    kept = sorted(p.name for p in (dest / "data" / "monet2photo" / "trainB").iterdir())
    assert kept == ["0000.jpg", "0004.jpg", "0008.jpg"]  # evenly spaced, first and last included
    assert json.loads((dest / "manifest.json").read_text())["carry_total_mib"] == manifest["carry_total_mib"] > 0

    monkeypatch.setattr(gpu_prepare, "CARRY_LIMIT", 1024)
    with pytest.raises(gpu_prepare.PrepareError, match="over the device's 64 MiB carry limit; pass a smaller --train-photos"):
        gpu_prepare.prepare(dest, source, train_photos=3, wheels=False)
    (source / "monet2photo" / "testB").rename(source / "monet2photo" / "testB_moved")
    assert gpu_suite.main(["--prepare-gpu", str(dest), "--source", str(source), "--no-wheels"]) == 2


def test_checkpoint_parts_join_back_and_a_damaged_part_is_refused(tmp_path):
    blob = tmp_path / "x.ckpt"
    blob.write_bytes(bytes(range(256)) * 10)
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    info = {"bytes": blob.stat().st_size, "sha256": gpu_suite.sha256(blob),
            "parts": gpu_suite.split_file(blob, parts_dir, part_bytes=1000)}
    assert [p["bytes"] for p in info["parts"]] == [1000, 1000, 560]
    assert gpu_suite.join_parts(parts_dir, info, tmp_path / "joined").read_bytes() == blob.read_bytes()
    (parts_dir / "x.ckpt.part1").write_bytes(b"\0" * 1000)
    with pytest.raises(gpu_prepare.PrepareError, match="a part is damaged"):
        gpu_suite.join_parts(parts_dir, info, tmp_path / "joined")


def test_configs_become_device_runs_and_train_overrides():
    cpu, cuda, dry, full = torch.device("cpu"), torch.device("cuda"), gpu_suite.dry_plan(), gpu_suite.full_plan()
    assert gpu_suite.device_config("bf16+cl+compile+b32", dry, cpu) == ("bf16+cl+compile=aot_eager+b4", "")
    assert gpu_suite.device_config("bf16+cl+compile+b32", full, cuda) == ("bf16+cl+compile+b32", "")
    assert gpu_suite.device_config("bf16+compile=reduce-overhead+b1", dry, cpu)[0] is None
    assert gpu_suite.hydra_overrides(bench.Config.parse("bf16+cl+compile=aot_eager+b2")) == [
        "trainer.precision=bf16-mixed", "model.channels_last=true", "model.compile={backend:aot_eager}",
        "data.batch_size=2", "model.fused_adam=null"]
    assert gpu_suite.hydra_overrides(bench.Config.parse("fp32+b1+nofused"))[2:] == [
        "model.compile=false", "data.batch_size=1", "model.fused_adam=false"]
    assert gpu_suite.max_time(330) == "00:00:05:30"


def test_a_full_run_needs_a_gpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert gpu_suite.main(["--suite", "gpu", "--out", "unused"]) == 2
    assert "needs a CUDA device; on a CPU add --dry-run" in capsys.readouterr().err
