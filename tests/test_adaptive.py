"""Adaptive range finder and a-posteriori error estimation."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import aslinearoperator
from test_rsvd import FAST, SLOW, spectrum_matrix

import lrkit

from conftest import EXTREME_SCALES, SCALE_IDS, assert_scaled, at_scale, scaled_eps

EPS64 = torch.finfo(torch.float64).eps


@pytest.mark.parametrize("tol", [1e-1, 1e-2, 1e-4])
def test_adaptive_meets_tol_with_near_optimal_rank(tol):
    A = spectrum_matrix(400, 300, 0.9 ** torch.arange(300, dtype=torch.float64))
    Q = lrkit.adaptive_range_finder(A, tol, seed=0)
    k, k_opt = Q.shape[1], lrkit.rank_for_error(A, tol)
    # The finder stops when its downdated |A|^2 - |Q^T A|^2 <= (tol |A|)^2; rounding leaves
    # that count off by ~k eps |A|^2, so the true error meets tol to k eps / tol^2 relative.
    assert lrkit.rel_error(A, Q @ (Q.T @ A)) <= tol * (1 + 100 * EPS64 / tol**2)
    assert k_opt <= k <= k_opt + 2  # k >= k_opt: Eckart-Young; measured k == k_opt
    # re-orthogonalized blocks: orthonormal to rounding (measured 9-17 eps)
    torch.testing.assert_close(Q.T @ Q, torch.eye(k, dtype=Q.dtype), rtol=0, atol=1000 * EPS64)


def test_adaptive_result_into_lowrank_and_block_size():
    A = spectrum_matrix(200, 150, FAST[:150])
    for block in (1, 7, 32):
        Q = lrkit.adaptive_range_finder(A, 1e-3, block=block, seed=0)
        approx = lrkit.lowrank_from_basis(A, Q)
        assert approx.rank == Q.shape[1]
        assert lrkit.rel_error(A, approx) <= 1e-3 * (1 + 100 * EPS64 / 1e-3**2)  # as above


def test_adaptive_on_sparse_and_operator():
    As = sp.random(200, 150, density=0.1, random_state=1, format="csr")
    for A, kw in ((As, {}), (aslinearoperator(As), {"fro_norm": sp.linalg.norm(As)})):
        Q = lrkit.adaptive_range_finder(A, 0.5, seed=0, **kw)
        D = torch.from_numpy(As.toarray())
        assert lrkit.rel_error(D, Q @ (Q.T @ D)) <= 0.5


def test_adaptive_max_rank_warns_and_bad_input():
    A = spectrum_matrix(100, 80, SLOW[:80])
    with pytest.warns(UserWarning, match=r"not reached within max_rank \(=5\)"):
        Q = lrkit.adaptive_range_finder(A, 1e-3, max_rank=5, seed=0)
    assert Q.shape == (100, 5)
    with pytest.raises(ValueError, match=r"tol \(=1.0\) must be in \(0, 1\)"):
        lrkit.adaptive_range_finder(A, 1.0)
    with pytest.raises(ValueError, match=r"max_rank \(=81\) must be <= min\(m, n\) = 80"):
        lrkit.adaptive_range_finder(A, 0.1, max_rank=81)
    with pytest.raises(TypeError, match="pass its Frobenius norm as fro_norm="):
        lrkit.adaptive_range_finder(aslinearoperator(A.numpy()), 0.1)
    with pytest.raises(ValueError, match="all-zero matrix"):
        lrkit.adaptive_range_finder(np.zeros((5, 4)), 0.1)
    with pytest.raises(ValueError, match=r"must be a 2-D matrix; got 3-D"):
        lrkit.adaptive_range_finder(np.ones((2, 5, 4)), 0.1)


def test_adaptive_warns_below_precision_floor():
    A = spectrum_matrix(50, 40, FAST[:40], dtype=torch.float32)
    with pytest.warns(UserWarning, match="below sqrt"):
        lrkit.adaptive_range_finder(A, 1e-5, seed=0)


def test_estimate_error_matches_spectral_error():
    A = spectrum_matrix(300, 200, 0.9 ** torch.arange(200, dtype=torch.float64))
    approx = lrkit.rsvd(A, 15, seed=0)
    exact = lrkit.rel_error(A, approx, ord=2)
    est = lrkit.estimate_error(A, approx, seed=0)
    # 20 power steps on 4 vectors converge like (s_5 / s_1)^40 of the residual, 0.9^160 ~ 5e-8
    # on this 0.9^i spectrum (measured 5e-14): 1e-3 is loose for any seed.
    assert est == pytest.approx(exact, rel=1e-3)
    assert est <= exact * (1 + 1e-9)  # power iteration approaches from below
    dense_est = lrkit.estimate_error(A.numpy(), approx.to_dense(), seed=0)
    assert dense_est == pytest.approx(exact, rel=1e-3)


def test_estimate_error_tightens_with_iterations_on_a_slow_spectrum():
    A = spectrum_matrix(300, 200, SLOW[:200])
    approx = lrkit.rsvd(A, 10, n_iter=0, seed=0)
    exact = lrkit.rel_error(A, approx, ord=2)
    gaps = [exact - lrkit.estimate_error(A, approx, n_iter=q, seed=1) for q in (1, 5, 40)]
    assert gaps[0] >= gaps[1] >= gaps[2] >= -1e-12
    assert gaps[-1] < 0.02 * exact


def test_estimate_error_on_sparse_and_bad_input():
    As = sp.random(120, 90, density=0.1, random_state=0, format="csr")
    approx = lrkit.rsvd(As, 5, seed=0)
    D = torch.from_numpy(As.toarray())
    assert lrkit.estimate_error(As, approx, n_iter=50, seed=0) == pytest.approx(
        lrkit.rel_error(D, approx, ord=2), rel=1e-2
    )
    with pytest.raises(ValueError, match=r"approx has shape \(5, 5\)"):
        lrkit.estimate_error(D, lrkit.truncated_svd(torch.eye(5), 2))
    with pytest.raises(ValueError, match=r"n_iter \(=0\) must be in \[1, 1000\]"):
        lrkit.estimate_error(D, approx, n_iter=0)


@pytest.mark.parametrize(("dtype", "k"), EXTREME_SCALES, ids=SCALE_IDS)
def test_adaptive_range_finder_at_extreme_scales(dtype, k):
    # The error is tracked relative to ||A||_F, so it neither overflows (1e19 in float32) nor
    # underflows (1e-170 in float64): the basis has the unit-scale rank and the same span.
    X = spectrum_matrix(40, 30, FAST[:30])
    A, A1 = at_scale(X, dtype, k)
    Q = lrkit.adaptive_range_finder(A, 0.1, seed=0)
    Q1 = lrkit.adaptive_range_finder(A1, 0.1, seed=0)
    assert Q.shape == Q1.shape and Q.shape[1] > 0
    assert_scaled(
        lrkit.lowrank_from_basis(A, Q).to_dense(),
        lrkit.lowrank_from_basis(A1, Q1).to_dense(),
        k,
        dtype,
    )
    # estimate_error is a ratio of power-iteration norms; 20 steps converge the same way.
    est = lrkit.estimate_error(A, lrkit.rsvd(A, 5, seed=0), seed=0)
    assert est == pytest.approx(
        lrkit.estimate_error(A1, lrkit.rsvd(A1, 5, seed=0), seed=0), rel=1000 * scaled_eps(dtype, k)
    )
