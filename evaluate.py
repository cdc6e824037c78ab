"""Evaluate a CycleGAN checkpoint: `python evaluate.py ckpt_path=PATH data=monet2photo` (see docs/EVALUATION.md)."""

import logging

import sys

import hydra
from omegaconf import DictConfig

import cyclegan.config.resolvers  # noqa: F401  (registers the config resolvers)
from cyclegan.inference.checkpoint import CheckpointError
from cyclegan.config.overrides import check_overrides
from cyclegan.config.checks import exit_on_user_error, validate_config
from cyclegan.data.datasets import ImageLoadError
from cyclegan.evaluation.run import EvaluationError, evaluate
from cyclegan.evaluation.inception import InceptionNotAvailableError

log = logging.getLogger("evaluate")

# Problems the user can fix: reported as their message alone, without a traceback.
USER_ERRORS = (EvaluationError, CheckpointError, InceptionNotAvailableError, FileNotFoundError, ImageLoadError)


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error(extra=USER_ERRORS):  # one line + exit code 2, as train.py; bugs keep their traceback
        validate_config(cfg)
        evaluate(cfg)


if __name__ == "__main__":
    check_overrides(sys.argv[1:], config_name="evaluate")  # a misspelled key: one line listing the real ones
    main()
