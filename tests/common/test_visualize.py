"""The training grid: labelled rows and columns, tiles large enough to see."""

import numpy as np
import torch

from cyclegan.common.visualize import CYCLE_COLUMNS, cycle_grid, upscale

KEYS = ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B")


def visuals(n=2, size=64):
    g = torch.Generator().manual_seed(0)
    return {k: torch.rand(n, 3, size, size, generator=g) * 2 - 1 for k in KEYS}


def test_small_training_crops_are_shown_at_128_px_or_more_pixel_for_pixel():
    images = visuals(1, 48)["real_A"]
    big = upscale(images, 128)
    assert big.shape[-2:] == (144, 144)  # 3 x 48: the smallest whole factor reaching 128
    assert torch.equal(big[..., ::3, ::3], images)
    assert upscale(visuals(1, 256)["real_A"], 128).shape[-1] == 256  # large enough already


def test_the_grid_has_two_labelled_rows_per_example_and_three_labelled_columns():
    v = visuals(n=2, size=64)
    grid = cycle_grid(v, max_images=2)
    tile, pad = 128, 2
    rows, columns = 4, len(CYCLE_COLUMNS)
    body_h, body_w = rows * (tile + pad) + pad, columns * (tile + pad) + pad
    assert grid.shape[0] > body_h and grid.shape[1] > body_w  # margins for the labels above and left
    top, left = grid.shape[0] - body_h, grid.shape[1] - body_w
    assert (grid[:top, left:] < 128).any() and (grid[top:, :left] < 128).any()  # dark text in both margins
    # the first cell is real A at twice its size; the second row starts with real B
    first = grid[top + pad: top + pad + tile, left + pad: left + pad + tile]
    expected = ((upscale(v["real_A"][:1])[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(first, expected)
    second = grid[top + 2 * pad + tile: top + 2 * pad + 2 * tile, left + pad: left + pad + tile]
    expected_b = ((upscale(v["real_B"][:1])[0] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(second, expected_b)
