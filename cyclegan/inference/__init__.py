"""A trained generator outside training: one loader (checkpoints, exports, reference weights), export,
translation (tiling, Kaggle zip, chains, the ``python -m cyclegan.translate`` CLI) and comparison grids."""
