"""LPLR and its baselines: the paper's setting, the 16-bit limit, budgets, checks."""

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize
from test_rsvd import spectrum_matrix

import lrkit
from lrkit.core.quant import quantize
from lrkit.matrix.lplr import QuantizedLowRank, dsvd_quant, lplr, lplr_max_rank, rank_for_bits

from conftest import EXTREME_SCALES, SCALE_IDS, assert_scaled, at_scale


@pytest.fixture(scope="module")
def phantom():
    # The paper's image experiment: the Shepp-Logan phantom resized to 1000 x 1000.
    return torch.from_numpy(resize(shepp_logan_phantom(), (1000, 1000)))


def test_paper_budget():
    assert lplr_max_rank((1000, 1000), 1, 4, 8, 1) == 83
    assert lplr_max_rank((1000, 1000), 1, 4, 8, 2) == 166
    assert lplr_max_rank((1000, 500), 0.5, 4, 8, 2) == 500 * 1000 // (4000 + 4000)


def test_paper_ordering_at_its_setting(phantom):
    # Measured: LPLR 0.179 (mean of 3 seeds), DSVD 0.328, naive 0.558 (min/max quantizer;
    # the symmetric one gives 3.7 on this non-negative image) at ~1 bit per entry.
    k = lplr_max_rank(phantom.shape, 1, 4, 8, 1)
    e_lplr = np.mean(
        [
            lrkit.rel_error(phantom, lplr(phantom, k, bits_left=4, bits_right=8, seed=s))
            for s in range(3)
        ]
    )
    e_dsvd = lrkit.rel_error(phantom, dsvd_quant(phantom, k, bits_left=4, bits_right=8))
    naive = quantize(phantom, 1, symmetric=False)
    e_naive = lrkit.rel_error(phantom, naive)
    assert e_lplr < e_dsvd < e_naive
    assert dsvd_quant(phantom, k, bits_left=4, bits_right=8).bits_per_entry <= naive.bits_per_entry


def test_lplr_below_naive_at_one_and_two_bits(phantom):
    for b_ref in (1, 2):
        k = lplr_max_rank(phantom.shape, 1, 4, 8, b_ref)
        f = lplr(phantom, k, bits_left=4, bits_right=8, seed=0)
        naive = quantize(phantom, b_ref, symmetric=False)
        assert f.bits_per_entry <= naive.bits_per_entry
        assert lrkit.rel_error(phantom, f) < 0.5 * lrkit.rel_error(phantom, naive)


def test_sixteen_bits_match_unquantized_sketch_and_solve(device):
    A = spectrum_matrix(120, 90, 0.9 ** torch.arange(90, dtype=torch.float64), device=device)
    f = lplr(A, 10, bits_left=16, bits_right=16, seed=3)
    g = torch.Generator(device=device).manual_seed(3)
    S = torch.randn((90, 10), generator=g, dtype=A.dtype, device=device)
    L = A @ S
    ref = L @ torch.linalg.lstsq(L, A).solution
    assert f.device.type == device.type
    # 16-bit codes err by <= half a step = max|L| / 65535 per entry, 6e-5 of |L|_F here
    # (max/rms = 4); the refit R amplifies it by cond(L) ~ 6: < 5e-4 (measured 7e-5).
    assert lrkit.rel_error(ref, f) < 1e-3
    assert lrkit.rel_error(A, f) == pytest.approx(lrkit.rel_error(A, ref), rel=1e-3)


def test_refit_absorbs_left_quantization_error():
    # Fitting R to the quantized L (step 3) beats quantizing L and keeping the unquantized
    # least-squares R fitted to A S.
    A = spectrum_matrix(200, 150, 1 / torch.arange(1, 151, dtype=torch.float64))
    f = lplr(A, 20, bits_left=2, bits_right=16, seed=0)
    g = torch.Generator().manual_seed(0)
    L = A @ torch.randn((150, 20), generator=g, dtype=A.dtype)
    no_refit = f.L.to_dense() @ torch.linalg.lstsq(L, A).solution
    assert lrkit.rel_error(A, f) < lrkit.rel_error(A, no_refit)


def test_vector_scales_help_dsvd_most(phantom):
    # Sigma_k V_k^T has rows of very different sizes: one range per row fixes DSVD.
    k = 83
    t = lrkit.rel_error(phantom, dsvd_quant(phantom, k, bits_left=4, bits_right=8))
    v = lrkit.rel_error(phantom, dsvd_quant(phantom, k, bits_left=4, bits_right=8, scales="vector"))
    assert v < 0.5 * t  # measured 0.115 vs 0.328


def test_power_iterations_help_lplr_on_slow_spectrum():
    A = spectrum_matrix(200, 150, 1 / torch.arange(1, 151, dtype=torch.float64))
    e0 = np.mean(
        [lrkit.rel_error(A, lplr(A, 15, bits_left=8, bits_right=8, seed=s)) for s in range(3)]
    )
    e2 = np.mean(
        [
            lrkit.rel_error(A, lplr(A, 15, bits_left=8, bits_right=8, n_iter=2, seed=s))
            for s in range(3)
        ]
    )
    assert e2 < e0


def test_result_protocol_and_bits():
    A = spectrum_matrix(60, 40, 0.8 ** torch.arange(40, dtype=torch.float64)).float()
    f = lplr(A, 5, bits_left=4, bits_right=8, scales="vector", seed=0)
    assert isinstance(f, QuantizedLowRank) and f.shape == (60, 40) and f.rank == 5
    assert f.dtype == torch.float32
    # codes + one float32 range per column of L and per row of R
    assert f.nbits == 60 * 5 * 4 + 5 * 32 + 5 * 40 * 8 + 5 * 32 == f.L.nbits + f.R.nbits
    X = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
    # float32, two summation orders: a few eps32 of max |f @ X| = 0.65 (measured 1.5 eps32);
    # 1e-5 is ~130 eps32 of it
    torch.testing.assert_close(f @ X, f.to_dense() @ X, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(X.T @ f.to_dense().T, (f.to_dense() @ X).T)
    assert f.to(torch.float64).dtype == torch.float64
    assert "rank=5, bits=(4, 8), scales='vector'" in repr(f)
    g = lplr(A, 5, bits_left=4, bits_right=8, scales="group", group_size=8, seed=0)
    assert g.nbits == 60 * 5 * 4 + 5 * 8 * 32 + 5 * 40 * 8 + 5 * 5 * 32


def test_same_seed_same_result():
    A = torch.randn(30, 20, dtype=torch.float64)
    a, b = (
        lplr(A, 4, bits_left=3, bits_right=3, seed=1),
        lplr(A, 4, bits_left=3, bits_right=3, seed=1),
    )
    assert torch.equal(a.to_dense(), b.to_dense())


def test_rank_for_bits_includes_the_ranges():
    shape = (300, 200)
    for scales, kw in (("tensor", {}), ("vector", {}), ("group", {"group_size": 32})):
        k = rank_for_bits(shape, 2.0, bits_left=4, bits_right=8, scales=scales, **kw)
        A = torch.randn(*shape)
        f = lplr(A, k, bits_left=4, bits_right=8, scales=scales, seed=0, **kw)
        assert f.bits_per_entry <= 2.0
        f1 = lplr(A, k + 1, bits_left=4, bits_right=8, scales=scales, seed=0, **kw)
        assert f1.bits_per_entry > 2.0
    with pytest.raises(ValueError, match="even rank 1 does not fit"):
        rank_for_bits(shape, 0.01, bits_left=4, bits_right=8)


def test_bad_input():
    A = torch.randn(20, 10)
    with pytest.raises(ValueError, match=r"bits_left \(=0\) must be in \[1, 16\]"):
        lplr(A, 2, bits_left=0, bits_right=8)
    with pytest.raises(ValueError, match=r"bits_right \(=20\) must be in \[1, 16\]"):
        dsvd_quant(A, 2, bits_left=4, bits_right=20)
    with pytest.raises(ValueError, match=r"rank \(=11\) must be <= min\(m, n\) = 10"):
        lplr(A, 11, bits_left=4, bits_right=8)
    with pytest.raises(ValueError, match=r"scales \(='channel'\) must be one of"):
        lplr(A, 2, bits_left=4, bits_right=8, scales="channel")
    with pytest.raises(ValueError, match=r"sketch \(='srht'\) must be one of 'gaussian'"):
        lplr(A, 2, bits_left=4, bits_right=8, sketch="srht")
    with pytest.raises(ValueError, match="NaN or Inf"):
        lplr(np.full((4, 4), np.nan), 2, bits_left=4, bits_right=8)
    with pytest.raises(ValueError, match=r"compression_ratio \(=0\) must be > 0"):
        lplr_max_rank((10, 10), 0, 4, 8, 1)


def test_lplr_is_deterministic_for_a_seed():
    A = torch.randn(30, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    first = lplr(A, 4, bits_left=3, bits_right=3, seed=1).to_dense()
    for _ in range(20):
        assert torch.equal(lplr(A, 4, bits_left=3, bits_right=3, seed=1).to_dense(), first)


def test_rank_loss_of_the_quantized_left_factor_warns():
    # 1-bit L with one range: its columns are sign patterns, and k of them can coincide
    g = torch.Generator().manual_seed(0)
    A = torch.ones(6, 40, dtype=torch.float64)
    A += 0.01 * torch.randn(6, 40, generator=g, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"quantized left factor has rank \d+ < 5"):
        f = lplr(A, 5, bits_left=1, bits_right=8, seed=0)
    assert torch.isfinite(f.to_dense()).all()


def test_dsvd_symmetric_and_scale_dtype_are_used():
    A = torch.rand(40, 30, dtype=torch.float64)
    sym = dsvd_quant(A, 5, bits_left=4, bits_right=4)
    asym = dsvd_quant(A, 5, bits_left=4, bits_right=4, symmetric=False)
    assert sym.L.symmetric and not asym.L.symmetric
    assert asym.nbits == sym.nbits + 2 * 32  # one more range number per factor
    half = dsvd_quant(A, 5, bits_left=4, bits_right=4, scale_dtype=torch.float16)
    assert half.nbits == sym.nbits - 2 * 16


@pytest.mark.parametrize(("dtype", "k"), EXTREME_SCALES, ids=SCALE_IDS)
def test_lplr_at_extreme_scales(dtype, k):
    # Sketch, power steps, least squares and quantizer are scale-free: 2**k times the
    # unit-scale result, with ranges stored at A's own dtype; where they would fall below
    # that dtype's smallest normal number (float32 at 1e-40), a clear error instead.
    X = spectrum_matrix(20, 16, 0.7 ** torch.arange(16.0, dtype=torch.float64))
    A, A1 = at_scale(X, dtype, k)
    kw = dict(bits_left=8, bits_right=8, scale_dtype=dtype, n_iter=1, seed=0)
    if k < -126 and dtype == torch.float32:
        with pytest.raises(ValueError, match="below the smallest normal number of scale_dtype"):
            lplr(A, 3, **kw)
        return
    assert_scaled(lplr(A, 3, **kw).to_dense(), lplr(A1, 3, **kw).to_dense(), k, dtype)
