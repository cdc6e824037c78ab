"""The benchmark times the CUT families as train.py builds them (`--families cyclegan cut fastcut`)."""

from __future__ import annotations

import json

from cyclegan.gan.cut import CUT
from cyclegan.tools.bench import main
from cyclegan.tools.bench_training import build_model


def test_the_bench_builds_each_family_from_its_model_config():
    fast = build_model("fastcut", ngf=4, ndf=4, n_blocks=1)
    assert isinstance(fast, CUT)
    assert (fast.hparams.lambda_NCE, fast.hparams.nce_idt, fast.hparams.flip_equivariance) == (10.0, False, True)
    assert build_model("cut", ngf=4, ndf=4, n_blocks=1).hparams.pool_size == 0  # not CycleGAN's pool of 50


def test_the_bench_times_one_row_per_family_and_config(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["--device", "cpu", "--configs", "fp32+b1", "--families", "cyclegan", "cut", "fastcut",
                 "--no-inference", "--data-workers", "--image-size", "32", "--ngf", "4", "--ndf", "4",
                 "--n-blocks", "1", "--warmup", "1", "--steps", "1", "--json", str(out)]) == 0
    rows = {row["config"]: row for row in json.loads(out.read_text())["results"]}
    assert [name for name in rows if name.endswith("ref")] == ["cyclegan ref"]  # the reference step: CycleGAN's, once
    for name in ("cyclegan fp32+b1", "cut fp32+b1", "fastcut fp32+b1"):
        assert not rows[name]["error"] and rows[name]["pairs_per_s"] > 0, name
