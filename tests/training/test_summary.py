"""The closing summary of a run: the files it wrote and the next two commands."""

from pathlib import Path

from cyclegan.training.run import train
from cyclegan.training.summary import closing_summary, data_arguments


def test_a_run_ends_with_its_files_and_the_translate_and_evaluate_commands(tiny_cfg, tmp_path, caplog):
    with caplog.at_level("INFO"):
        train(tiny_cfg())
    summary = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("finished after 2 steps"))
    assert caplog.records[-1].getMessage() == summary or "optimized_metric" in caplog.records[-1].getMessage()
    for name in ("checkpoints/last.ckpt", "images/step_0000002.png", "loss_curves.png", "csv/metrics.csv",
                 "result.json"):
        assert name in summary and (name == "result.json" or (tmp_path / name).exists())
    translate, evaluate = summary.splitlines()[-2:]
    ckpt = str(tmp_path / "checkpoints" / "last.ckpt")
    assert translate.split()[:4] == ["python", "-m", "cyclegan.translate", "--ckpt"] and f"{ckpt}:BA" in translate
    assert "--input cyclegan/data/sample/B" in translate
    assert evaluate.split() == ["python", "evaluate.py", f"ckpt_path={ckpt}", "data=sample"]


def test_the_evaluate_command_keeps_the_runs_data_overrides(tmp_path):
    args = data_arguments("monet2photo", ["paths.data_dir=/datasets", "model.lr=1e-4", "data.image_size=128"])
    assert args == ["data=monet2photo", "paths.data_dir=/datasets", "data.image_size=128"]
    text = closing_summary(tmp_path, tmp_path / "missing.ckpt", 0, args, None)
    assert "evaluate.py" not in text  # no checkpoint, no commands that would fail
