"""Single-pass streaming sketch (Tropp, Yurtsever, Udell & Cevher 2017)."""

import pytest
import torch
from test_rsvd import FAST, ratio_to_optimal, spectrum_matrix

import lrkit

from conftest import EXTREME_SCALES, RTOL, SCALE_IDS, assert_scaled, at_scale, low_rank_matrix


def test_exact_for_rank_r_in_row_blocks(dtype):
    A, _ = low_rank_matrix(90, 60, 5, dtype=dtype)
    sk = lrkit.StreamingSketch(A.shape, 5, dtype=dtype, seed=0)
    for start in range(0, 90, 25):
        sk.add_rows(A[start : start + 25], start)
    # The rebuild solves against a small Gaussian co-range sketch (11 x 5), whose condition
    # (~10) amplifies rounding: measured 6-8 eps in float32 and float64.
    assert lrkit.rel_error(A, sk.to_lowrank()) < 10 * RTOL[dtype]


def test_rows_columns_and_whole_updates_agree():
    A = spectrum_matrix(80, 70, FAST[:70])
    by_rows, by_cols, whole = (
        lrkit.StreamingSketch(A.shape, 6, dtype=A.dtype, seed=3) for _ in range(3)
    )
    for s in range(0, 80, 30):
        by_rows.add_rows(A[s : s + 30], s)
    for s in range(0, 70, 16):
        by_cols.add_cols(A[:, s : s + 16], s)
    whole.add(0.5 * A)
    whole.add(A, scale=0.5)
    ref = by_rows.to_lowrank().to_dense()
    # Same sketches summed in another order: rounding level (measured 13 eps of max |ref|).
    tol = RTOL[torch.float64] * float(ref.abs().max())
    for other in (by_cols, whole):
        torch.testing.assert_close(other.to_lowrank().to_dense(), ref, rtol=0, atol=tol)


def test_close_to_optimal_on_fast_decay():
    A = spectrum_matrix(300, 200, FAST[:200])
    sk = lrkit.StreamingSketch(A.shape, 10, dtype=A.dtype, seed=0)
    sk.add(A)
    assert ratio_to_optimal(A, sk.to_lowrank(), 10) < 1.5
    # a larger sketch gets closer
    big = lrkit.StreamingSketch(A.shape, 10, range_size=40, dtype=A.dtype, seed=0)
    big.add(A)
    assert ratio_to_optimal(A, big.to_lowrank(), 10) < ratio_to_optimal(A, sk.to_lowrank(), 10)


def test_memory_is_smaller_than_the_matrix():
    sk = lrkit.StreamingSketch((2000, 1000), 10, seed=0)
    assert sk.nbits < 2000 * 1000 * 32 / 5


def test_bad_input():
    with pytest.raises(ValueError, match=r"rank \(=20\) must be <= min\(m, n\) = 10"):
        lrkit.StreamingSketch((30, 10), 20)
    with pytest.raises(ValueError, match=r"corange_size \(=5\) must be > range_size \(=5\)"):
        lrkit.StreamingSketch((30, 20), 2, range_size=5, corange_size=5)
    sk = lrkit.StreamingSketch((30, 20), 2, seed=0)
    with pytest.raises(ValueError, match=r"rows of shape \(5, 20\) at start=28 do not fit"):
        sk.add_rows(torch.ones(5, 20), 28)
    with pytest.raises(ValueError, match=r"H has shape \(20, 30\)"):
        sk.add(torch.ones(20, 30))
    with pytest.raises(ValueError, match="NaN or Inf"):
        sk.add_cols(torch.full((30, 2), float("nan")), 0)
    with pytest.warns(UserWarning, match="sketch sizes clipped"):
        lrkit.StreamingSketch((8, 5), 3, seed=0)


@pytest.mark.parametrize(("dtype", "k"), EXTREME_SCALES, ids=SCALE_IDS)
def test_streaming_sketch_at_extreme_scales(dtype, k):
    # The QR of the range sketch and the least-squares solve scale by powers of two, so a
    # subnormal sketch gives 2**k times the unit-scale result, not NaN.
    X, _ = low_rank_matrix(20, 16, 16, decay=0.7)
    A, A1 = at_scale(X, dtype, k)
    out = []
    for M in (A, A1):
        sk = lrkit.StreamingSketch(M.shape, 3, dtype=dtype, seed=0)
        sk.add_rows(M, 0)
        out.append(sk.to_lowrank().to_dense())
    assert_scaled(out[0], out[1], k, dtype)
