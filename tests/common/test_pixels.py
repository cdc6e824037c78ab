"""cyclegan.common.pixels: the one [-1, 1] <-> uint8 convention of training, translation, evaluation and grids."""

import torch

from cyclegan.common.pixels import from_uint8, to_uint8


def test_every_uint8_value_survives_the_round_trip():
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(2, 3, 16, 16)
    x = from_uint8(u)
    assert x.dtype == torch.float32 and x.shape == u.shape
    assert x.min() == -1 and x.max() == 1
    assert torch.equal(to_uint8(x), u)


def test_to_uint8_rounds_to_nearest_and_clamps_out_of_range_values():
    x = torch.tensor([-3.0, -1.0, -1 + 0.6 / 127.5, 0.0, 1.0, 7.0])
    assert to_uint8(x).tolist() == [0, 0, 1, 128, 255, 255]


def test_from_uint8_leaves_a_float_input_untouched():
    f = torch.tensor([0.0, 127.5, 255.0])
    assert from_uint8(f).tolist() == [-1.0, 0.0, 1.0]
    assert f.tolist() == [0.0, 127.5, 255.0]  # a new tensor, not the input scaled in place
