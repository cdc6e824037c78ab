"""CycleGAN: unpaired image-to-image translation on PyTorch Lightning and Hydra."""

import os

# albumentations checks PyPI for a newer release on import; never do that (offline machines, CI).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
