"""CycleGAN: unpaired image-to-image translation on PyTorch Lightning and Hydra.

Packages, by stage (docs/ARCHITECTURE.md has the data flow):

- ``models``: generators, discriminators, reference-weight import;
- ``data``: the datamodule, dataset sources, datasets, TFRecord, download, transforms;
- ``gan``: the LightningModule, losses, image pools, LR schedules, speed switches;
- ``training``: what ``train.py`` runs (instantiate + fit, callbacks, safety, resume, preflight, sweeps);
- ``evaluation``: what ``evaluate.py`` runs (metrics, Inception, validation KID, report);
- ``inference``: loading a trained generator, export, translation, comparison grids;
- ``config``: resolvers, config validation, override checks;
- ``bench``: the throughput benchmark (``python -m cyclegan.bench``).

``cyclegan/translate.py`` and ``cyclegan/compare.py`` are thin shims that only run
:mod:`cyclegan.inference.translate` / :mod:`cyclegan.inference.compare`, so the commands
``python -m cyclegan.translate`` and ``python -m cyclegan.compare`` keep their names.
"""

import os

# albumentations checks PyPI for a newer release on import; never do that (offline machines, CI).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
