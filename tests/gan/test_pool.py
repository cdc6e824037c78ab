import torch

from cyclegan.gan.pool import ImagePool


def batch(values):
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)


def test_zero_size_pool_returns_input_untouched():
    pool = ImagePool(0)
    x = batch([1, 2, 3])
    assert pool.query(x) is x
    assert len(pool) == 0


def test_filling_stores_and_returns_new_images_batch_by_image():
    pool = ImagePool(3)
    out = pool.query(batch([1, 2]))
    assert out.flatten().tolist() == [1, 2]
    # batch of 2 with one free slot: the first fills the pool, the second already goes through the 50/50 rule
    torch.manual_seed(0)
    out = pool.query(batch([3, 4]))
    assert out.shape == (2, 1, 1, 1)
    assert out[0].item() == 3
    assert len(pool) == 3


def test_full_pool_swaps_about_half_of_the_time_and_keeps_its_size():
    torch.manual_seed(0)
    pool = ImagePool(50)
    pool.query(batch(list(range(50))))
    seen_old = 0
    for i in range(200):
        new = 1000 + i
        out = pool.query(batch([new])).item()
        assert len(pool) == 50
        if out != new:
            seen_old += 1
            assert out < 1000 + i  # an earlier image, and the new one took its slot
            assert any(img.item() == new for img in pool.images)
    assert 70 < seen_old < 130


def test_result_is_detached_and_pool_state_round_trips():
    pool = ImagePool(2)
    x = batch([1, 2]).requires_grad_(True)
    assert not pool.query(x * 2).requires_grad
    clone = ImagePool(7)
    clone.load_state_dict(pool.state_dict())
    assert clone.size == 2 and [t.item() for t in clone.images] == [2, 4]


def test_negative_size_is_refused():
    import pytest

    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(-1)
