import pytest
import torch

from lrkit.core._random import make_generator


def test_same_seed_same_draws(device):
    a = torch.randn(5, generator=make_generator(3, device), device=device)
    b = torch.randn(5, generator=make_generator(3, device), device=device)
    c = torch.randn(5, generator=make_generator(4, device), device=device)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_generator_passed_through_and_advances():
    g = torch.Generator().manual_seed(0)
    assert make_generator(g) is g
    a = torch.randn(3, generator=make_generator(g))
    b = torch.randn(3, generator=make_generator(g))
    assert not torch.equal(a, b)


def test_none_gives_fresh_entropy():
    a = torch.randn(8, generator=make_generator(None))
    b = torch.randn(8, generator=make_generator(None))
    assert not torch.equal(a, b)


def test_bad_seeds():
    with pytest.raises(
        TypeError, match=r"seed must be an int, a torch.Generator or None; got 1.5 \(float\)"
    ):
        make_generator(1.5)
    with pytest.raises(ValueError, match=r"seed \(=-1\) must be >= 0"):
        make_generator(-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_generator_on_wrong_device():
    with pytest.raises(ValueError, match="torch.Generator on cpu, but the data lives on cuda"):
        make_generator(torch.Generator(), "cuda")
