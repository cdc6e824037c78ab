"""One spelling of the two directions (AB/BA) everywhere; the other common spellings read as the same."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cyclegan.common.directions import DirectionError, as_direction, direction_argument, normalize_direction
from cyclegan.common.errors import UserError
from cyclegan.evaluation.run import EvaluationError, parse_directions
from cyclegan.inference.chain import parse_spec


@pytest.mark.parametrize("spelling, direction", [
    ("AB", "AB"), ("ba", "BA"), ("A2B", "AB"), ("b2a", "BA"), ("AtoB", "AB"), ("BtoA", "BA"),
    ("A->B", "AB"), ("b_a", "BA"), (" B2A ", "BA"),
])
def test_every_accepted_spelling_reads_as_ab_or_ba(spelling, direction):
    assert as_direction(spelling) == normalize_direction(spelling) == direction_argument(spelling) == direction


@pytest.mark.parametrize("bad", ["AA", "A", "", "CD", "ABA", "A2C"])
def test_anything_else_is_one_line_naming_the_key(bad):
    assert as_direction(bad) is None
    with pytest.raises(DirectionError) as e:
        normalize_direction(bad, "--direction")
    assert isinstance(e.value, UserError) and str(e.value).startswith("--direction=") and "\n" not in str(e.value)
    with pytest.raises(argparse.ArgumentTypeError):
        direction_argument(bad)


def test_metrics_directions_takes_the_old_spelling_and_answers_in_the_new():
    assert parse_directions(["B2A"]) == parse_directions("BA") == ["BA"]
    assert parse_directions(["BA", "A2B"]) == parse_directions(None) == ["AB", "BA"]  # in AB, BA order
    with pytest.raises(EvaluationError, match=r"use \[AB,BA\]"):
        parse_directions(["B2C"])


def test_a_checkpoint_spec_takes_either_spelling_of_its_suffix():
    assert parse_spec("runs/m2p.ckpt:B2A") == (Path("runs/m2p.ckpt"), "BA")
    assert parse_spec("runs/m2p.ckpt", "A2B") == (Path("runs/m2p.ckpt"), "AB")
    assert parse_spec("runs/m:2p.ckpt") == (Path("runs/m:2p.ckpt"), "AB")  # not a direction: part of the name
