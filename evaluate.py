"""Evaluate a trained CycleGAN or a lone generator: `python evaluate.py ckpt_path=PATH data=monet2photo`; `--help` lists
the keys (docs/EVALUATION.md has the rest)."""

import sys

import hydra
from omegaconf import DictConfig

import cyclegan.config.resolvers  # noqa: F401  (registers the config resolvers)
from cyclegan.config.checks import validate_config
from cyclegan.config.help import help_arguments
from cyclegan.config.overrides import check_overrides
from cyclegan.common.errors import exit_on_user_error
from cyclegan.evaluation.run import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():  # one line + exit code 2, as train.py; bugs keep their traceback
        validate_config(cfg)
        evaluate(cfg)


if __name__ == "__main__":
    sys.argv[1:] = help_arguments(sys.argv[1:])  # --help: a short page; --help-all: every key (cyclegan.config.help)
    check_overrides(sys.argv[1:], config_name="evaluate")  # a misspelled key: one line listing the real ones
    main()
