"""CycleGAN: unpaired image-to-image translation on PyTorch Lightning and Hydra.

Packages, by stage (docs/ARCHITECTURE.md has the data flow):

- ``models``: generators, discriminators, reference-weight import, the model-config -> network
  arguments table (``spec``), ``torch.compile`` of networks (``compile``);
- ``data``: the datamodule, dataset sources, datasets, TFRecord, download, transforms;
- ``gan``: the LightningModule, losses, image pools, LR schedules, training speed switches;
- ``training``: what ``train.py`` runs (fit, callbacks, NaN guard, shutdown, resume, preflight, sweeps);
- ``evaluation``: what ``evaluate.py`` runs (metrics, Inception, validation KID, report);
- ``inference``: the one generator loader, export, translation, comparison grids;
- ``config``: resolvers, config validation, override checks, the Hydra job's run mode;
- ``app``: the local web app (``python -m cyclegan.app``, Gradio): painters, uploads, the page;
- ``tools``: around the stages, not part of a run: ``bench`` (the benchmark, ``python -m
  cyclegan.tools.bench``: training, inference, the Kaggle zip, the default callbacks' cost).
- ``common``: the shared layer under them all (errors, directions, image files, atomic writes,
  devices, the OpenMP wait policy, pixels, subsets, safe loading, grids and plots, loggers).

Import rule (tests/test_architecture.py checks it on every module's source):

- ``inference`` imports only ``models`` and the shared layer;
- ``evaluation`` may import ``inference``, ``models``, ``data`` and the shared layer;
- ``app`` imports only ``inference``, ``models`` and the shared layer;
- ``models`` and ``data`` import only the shared layer (``common``); it imports nothing above it;
- nothing imports ``training``; there are no import cycles;
- imports sit at the top of a module; inside a function only for heavy or optional third-party
  packages (Lightning in the inference CLIs, onnx, torchmetrics, matplotlib, wandb).

``cyclegan/translate.py`` and ``cyclegan/compare.py`` are thin shims that only run
:mod:`cyclegan.inference.translate` / :mod:`cyclegan.inference.compare`, so the commands
``python -m cyclegan.translate`` and ``python -m cyclegan.compare`` keep their names.
"""

import os

# albumentations checks PyPI for a newer release on import; never do that (offline machines, CI).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# The OpenMP wait policy (cyclegan/common/openmp.py, docs/SPEED.md): a bounded spin instead of libgomp's ~3 ms, unless the
# environment sets GOMP_SPINCOUNT or OMP_WAIT_POLICY. libgomp reads it when torch loads it, so it applies when
# cyclegan is imported before torch (train.py, evaluate.py, python -m cyclegan.*).
from cyclegan.common.openmp import apply_default_wait_policy  # noqa: E402  (no torch import there)

apply_default_wait_policy()

__version__ = "0.1.0"
