"""cyclegan/common/openmp.py, applied by cyclegan/__init__.py: a bounded spin unless the environment chose a policy or a spin
count, or the machine is busier than its cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cyclegan.common.openmp import DEFAULT_SPINCOUNT, apply_default_wait_policy, choose_spincount

ROOT = Path(__file__).resolve().parents[2]


def libgomp_setting(**env: str) -> dict[str, str]:
    """The GOMP_SPINCOUNT / OMP_WAIT_POLICY that libgomp uses after ``import cyclegan, torch`` (its own display)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", "import cyclegan, torch; torch.ones(2).sum()"], cwd=ROOT,
                         env={**clean, **env, "OMP_DISPLAY_ENV": "verbose", "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, check=True)
    lines = [line.strip().split(" = ") for line in (out.stdout + out.stderr).splitlines() if " = " in line]
    return {k: v.strip("'") for k, v in lines if k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}


@pytest.mark.parametrize("env,spin", [({"GOMP_SPINCOUNT": "777"}, "777"), ({"OMP_WAIT_POLICY": "PASSIVE"}, "0"),
                                      ({"OMP_WAIT_POLICY": "ACTIVE"}, "30000000000")],
                         ids=["spincount-wins", "passive-wins", "active-wins"])
def test_the_environment_wins_over_the_default(env, spin):
    assert libgomp_setting(**env)["GOMP_SPINCOUNT"] == spin


def test_libgomp_gets_a_bounded_spin_or_none_never_its_own_3_ms():
    assert libgomp_setting()["GOMP_SPINCOUNT"] in {"0", str(DEFAULT_SPINCOUNT)}  # which one: the load at start


def test_a_bounded_spin_on_an_idle_machine_none_on_a_busy_one():
    assert choose_spincount(0.3, 2) == choose_spincount(None, 2) == DEFAULT_SPINCOUNT
    assert choose_spincount(2.0, 2) == choose_spincount(7.5, 2) == 0
    env = {}
    apply_default_wait_policy(env)
    assert env["GOMP_SPINCOUNT"] in {"0", str(DEFAULT_SPINCOUNT)}
    for chosen in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "5"}):
        env = dict(chosen)
        apply_default_wait_policy(env)
        assert env == chosen  # untouched: libgomp would let GOMP_SPINCOUNT override the policy
