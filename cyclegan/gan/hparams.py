"""The ranges and choices of the hyper-parameters the model families share, written as the annotations of
their constructors' arguments: ``config/model_checks.py`` reads them from the signature (through
``models/options.py``), so a family's keys are checked without a list kept anywhere else."""

from __future__ import annotations

from typing import Annotated

from cyclegan.gan.schedulers import LR_POLICIES
from cyclegan.models.gan_modes import GAN_MODES
from cyclegan.models.options import Above, AtLeast, Below, OneOf

NonNegative = Annotated[float, AtLeast(0)]  # loss weights
Positive = Annotated[float, Above(0)]  # learning rates, temperatures, decay factors
UnitInterval = Annotated[float, AtLeast(0), Below(1)]  # Adam betas, the decay start of linear_time
Count = Annotated[int, AtLeast(0)]  # epochs, pool sizes
PositiveCount = Annotated[int, AtLeast(1)]  # widths, patches, step intervals
GanMode = Annotated[str, OneOf(GAN_MODES)]
LrPolicy = Annotated[str, OneOf(LR_POLICIES)]
