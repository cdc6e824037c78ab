"""Train a CycleGAN: `python train.py data=vangogh2photo model.gen=unet` (see README for the surface)."""

import logging
import sys

import hydra
from omegaconf import DictConfig

import cyclegan.config.resolvers  # noqa: F401  (registers the config resolvers)
from cyclegan.config.help import help_arguments
from cyclegan.config.overrides import check_overrides, reuse_stored_overrides
from cyclegan.common.errors import exit_on_user_error
from cyclegan.training.run import train

# which stored configuration a resume in place took, and how loudly to say it (see __main__ below)
RESUME_NOTE: tuple[str | None, int] = (None, logging.INFO)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # Return the sweep objective (validation KID when it is computed) so Hydra sweepers can minimise it.
    note, level = RESUME_NOTE
    if note:
        logging.getLogger("train").log(level, note)
    with exit_on_user_error():  # user errors: one line + exit code 2; bugs keep their traceback
        return train(cfg).get("objective")


if __name__ == "__main__":
    logging.basicConfig(format="[%(name)s][%(levelname)s] %(message)s")  # until Hydra configures logging
    with exit_on_user_error():
        # `ckpt_path=... hydra.run.dir=<old run>`: continue with that run's stored overrides (Hydra is about to
        # rewrite them); those that could run code are refused in one line
        sys.argv[1:], *RESUME_NOTE = reuse_stored_overrides(sys.argv[1:])
    sys.argv[1:] = help_arguments(sys.argv[1:])  # --help: a short page; --help-all: every key (cyclegan.config.help)
    check_overrides(sys.argv[1:], config_name="train")  # a misspelled key: one line listing the real ones
    main()
