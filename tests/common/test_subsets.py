"""cyclegan.common.subsets: evenly spaced subsets, the same rule for evaluation, validation KID and compare grids."""

import pytest

from cyclegan.common.subsets import evenly_spaced, evenly_spaced_indices


@pytest.mark.parametrize("n,count", [(10, 3), (100, 7), (5, 4), (1000, 999), (2, 2)])
def test_indices_are_distinct_sorted_and_span_the_list(n, count):
    idx = evenly_spaced_indices(n, count)
    assert len(idx) == min(n, count) and idx == sorted(set(idx))
    assert idx[0] == 0 and idx[-1] == n - 1


def test_spacing_is_even():
    assert evenly_spaced_indices(10, 4) == [0, 3, 6, 9]
    assert evenly_spaced(list("abcdefghi"), 3) == ["a", "e", "i"]


@pytest.mark.parametrize("count", [None, 0, -1, 5, 50])
def test_no_limit_or_a_limit_above_the_length_keeps_everything(count):
    assert evenly_spaced_indices(5, count) == [0, 1, 2, 3, 4]


def test_one_item_is_the_first():
    assert evenly_spaced(["x", "y", "z"], 1) == ["x"]
