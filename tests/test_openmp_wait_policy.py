"""cyclegan/__init__.py's OpenMP wait policy: a bounded spin unless the environment chose a policy or a spin count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def libgomp_setting(**env: str) -> dict[str, str]:
    """The GOMP_SPINCOUNT / OMP_WAIT_POLICY that libgomp uses after ``import cyclegan, torch`` (its own display)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", "import cyclegan, torch; torch.ones(2).sum()"], cwd=ROOT,
                         env={**clean, **env, "OMP_DISPLAY_ENV": "verbose", "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, check=True)
    lines = [line.strip().split(" = ") for line in (out.stdout + out.stderr).splitlines() if " = " in line]
    return {k: v.strip("'") for k, v in lines if k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}


@pytest.mark.parametrize("env,spin", [({}, "10000"), ({"GOMP_SPINCOUNT": "777"}, "777"),
                                      ({"OMP_WAIT_POLICY": "PASSIVE"}, "0"),
                                      ({"OMP_WAIT_POLICY": "ACTIVE"}, "30000000000")],
                         ids=["default-bounded", "spincount-wins", "passive-wins", "active-wins"])
def test_libgomp_spins_what_cyclegan_or_the_environment_says(env, spin):
    import cyclegan

    assert cyclegan.DEFAULT_SPINCOUNT == "10000"
    assert libgomp_setting(**env)["GOMP_SPINCOUNT"] == spin
