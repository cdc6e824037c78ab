"""Train a CycleGAN: `python train.py data=vangogh2photo model.gen=unet` (see README for the surface)."""

import sys

import hydra
from omegaconf import DictConfig

import cyclegan.config.resolvers  # noqa: F401  (registers the config resolvers)
from cyclegan.config.overrides import check_overrides
from cyclegan.errors import exit_on_user_error
from cyclegan.training.run import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # Return the sweep objective (validation KID when it is computed) so Hydra sweepers can minimise it.
    with exit_on_user_error():  # user errors: one line + exit code 2; bugs keep their traceback
        return train(cfg).get("objective")


if __name__ == "__main__":
    check_overrides(sys.argv[1:], config_name="train")  # a misspelled key: one line listing the real ones
    main()
