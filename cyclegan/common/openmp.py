"""The OpenMP wait policy of torch's libgomp, chosen before torch loads it (``cyclegan/__init__.py`` applies it).

A thread of libgomp that finished its share of a parallel region spins ``GOMP_SPINCOUNT`` iterations waiting
for the next one, then sleeps. libgomp's default, 300,000 (~3 ms by its own estimate of 100,000 per ms), is
fast alone but beside another CPU-heavy process burns the core the other one needs (two copies of a training
collapsed 6x, docs/SPEED.md); ``OMP_WAIT_POLICY=PASSIVE`` (no spin) is safe but pays a futex wake-up at every
region, 14-20 % of a CPU step alone. A short bounded spin (1,000: ~10 us) covers the shortest gaps between the
ops of an eager step and sleeps through long ones. Measured on 2 cores (docs/SPEED.md, "CPU step"): 10,000
spins were faster alone but kept only 22 % of the solo rate beside a copy of the job, as bad as ACTIVE; 1,000
kept 46 % and was still faster than PASSIVE for the reference step. On a machine already busier than its cores when the job starts
(1-minute load average >= the CPUs this process may use) any spin takes a core from someone: no spin then.

No torch import here: libgomp reads the variables once, when torch loads it.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

DEFAULT_SPINCOUNT = 1000  # measured: the most spin that still shares 2 cores with a second job


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def choose_spincount(load: float | None, cpus: int) -> int:
    """The spin for a job starting at 1-minute load ``load`` (None: unknown) on ``cpus`` CPUs."""
    return 0 if load is not None and load >= cpus else DEFAULT_SPINCOUNT


def apply_default_wait_policy(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set ``GOMP_SPINCOUNT`` unless the environment chose a policy: ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY``
    (libgomp lets ``GOMP_SPINCOUNT`` override ``OMP_WAIT_POLICY=ACTIVE/PASSIVE``, so neither is touched then)."""
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    environ["GOMP_SPINCOUNT"] = str(choose_spincount(load, usable_cpus()))
