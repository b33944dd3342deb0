import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit


def test_rank_for_energy_on_known_spectrum():
    s = np.array([3.0, 2.0, 1.0, 0.0])  # energies 9, 4, 1 of 14
    assert lrkit.rank_for_energy(s, keep=9 / 14) == 1
    assert lrkit.rank_for_energy(s, keep=9 / 14 + 1e-6) == 2
    assert lrkit.rank_for_energy(s, keep=13 / 14) == 2
    assert lrkit.rank_for_energy(s, keep=1.0) == 3
    assert lrkit.rank_for_energy(s[::-1].copy(), keep=0.5) == 1  # unsorted input is sorted


def test_rank_for_energy_accepts_matrix():
    A = torch.diag(torch.tensor([10.0, 1.0, 0.1], dtype=torch.float64))
    assert lrkit.rank_for_energy(A, keep=0.99) == 1  # 100 / 101.01 = 0.9901
    assert lrkit.rank_for_energy(A, keep=0.995) == 2
    assert lrkit.rank_for_energy(A.numpy(), keep=0.999) == 2
    assert lrkit.rank_for_energy(A, keep=0.99999) == 3


def test_rank_for_error_on_known_spectrum():
    s = np.array([4.0, 2.0, 1.0])
    # Frobenius errors at k=1,2,3: sqrt(5/21), sqrt(1/21), 0
    assert lrkit.rank_for_error(s, tol=0.5) == 1
    assert lrkit.rank_for_error(s, tol=0.4) == 2
    assert lrkit.rank_for_error(s, tol=0.0) == 3
    # spectral errors at k=1,2,3: 0.5, 0.25, 0
    assert lrkit.rank_for_error(s, tol=0.5, ord=2) == 1
    assert lrkit.rank_for_error(s, tol=0.3, ord=2) == 2
    assert lrkit.rank_for_error(s, tol=0.2, ord=2) == 3


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 15), st.integers(2, 15), st.floats(0.01, 0.9), st.sampled_from(["fro", 2]))
def test_rank_for_error_is_the_smallest_that_meets_tol(m, n, tol, ord):
    g = torch.Generator().manual_seed(m * 100 + n)
    A = torch.randn(m, n, generator=g, dtype=torch.float64)
    k = lrkit.rank_for_error(A, tol, ord=ord)
    # rank_for_error reads singular values, rel_error a rebuilt matrix: they agree to ~n eps,
    # so both sides of the threshold get that slack (1e-12 >> 15 eps).
    assert lrkit.rel_error(A, lrkit.truncated_svd(A, k), ord=ord) <= tol + 1e-12
    if k > 1:
        assert lrkit.rel_error(A, lrkit.truncated_svd(A, k - 1), ord=ord) > tol - 1e-12


def test_energy_and_error_agree():
    s = np.linspace(5, 0.1, 40)
    for keep in (0.5, 0.9, 0.99):
        assert lrkit.rank_for_energy(s, keep) == lrkit.rank_for_error(s, np.sqrt(1 - keep))


def test_rank_choosers_bad_input():
    with pytest.raises(ValueError, match=r"keep \(=0.0\) must be in \(0, 1\]"):
        lrkit.rank_for_energy(np.ones(3), keep=0.0)
    with pytest.raises(ValueError, match=r"tol \(=1.0\) must be in \[0, 1\)"):
        lrkit.rank_for_error(np.ones(3), tol=1.0)
    with pytest.raises(ValueError, match="singular values must be >= 0"):
        lrkit.rank_for_energy(np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        lrkit.rank_for_energy(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"S_or_A must be a 2-D matrix; got 3-D"):
        lrkit.rank_for_energy(np.ones((2, 2, 2)))


def test_rank_for_budget():
    # 512x512 at 32-bit factors: a rank costs 1025 * 32 bits; 2 bits/entry = 524288 bits
    assert lrkit.rank_for_budget((512, 512), bits_per_entry=2) == 15
    assert lrkit.rank_for_budget((512, 512), bits_per_entry=2, width=16) == 31
    assert lrkit.rank_for_budget((100, 50), param_ratio=0.5) == 16  # 16 * 151 <= 2500
    assert lrkit.rank_for_budget((3, 100, 50), param_ratio=0.5) == 16  # last two dims
    k = lrkit.rank_for_budget((300, 200), bits_per_entry=4)
    f = lrkit.truncated_svd(torch.randn(300, 200), k)
    assert f.bits_per_entry <= 4 < lrkit.truncated_svd(torch.randn(300, 200), k + 1).bits_per_entry


def test_rank_for_budget_bad_and_clipped():
    with pytest.raises(ValueError, match="exactly one of"):
        lrkit.rank_for_budget((10, 10))
    with pytest.raises(ValueError, match="exactly one of"):
        lrkit.rank_for_budget((10, 10), bits_per_entry=1, param_ratio=0.5)
    with pytest.raises(ValueError, match=r"even rank 1 needs bits_per_entry >= 6.72"):
        lrkit.rank_for_budget((10, 10), bits_per_entry=1)
    with pytest.raises(ValueError, match=r"bits_per_entry \(=-1\) must be > 0"):
        lrkit.rank_for_budget((10, 10), bits_per_entry=-1)
    with pytest.raises(ValueError, match=r"shape \(=\(10,\)\) must have at least 2 entries"):
        lrkit.rank_for_budget((10,), param_ratio=0.5)
    with pytest.warns(UserWarning, match="rank clipped to 4"):
        assert lrkit.rank_for_budget((4, 100), param_ratio=2.0) == 4  # 800 // 105 = 7


@pytest.mark.parametrize("scale", [1e-170, 1e-30, 1.0, 1e150])
def test_rank_choosers_are_scale_free(scale):
    # Only ratios of singular values matter; their squares must not underflow or overflow.
    S = 0.5 ** np.arange(10.0)
    for f in (lambda s: lrkit.rank_for_energy(s, 0.99), lambda s: lrkit.rank_for_error(s, 0.1)):
        assert f(S * scale) == f(S)
