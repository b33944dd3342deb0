"""CUR and interpolative decompositions: exact recovery, closeness to the SVD optimum,
determinism, seeds, agreement with scipy's ID, sparse storage, the protocol, bad input."""

import itertools
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.linalg.interpolative as sli
import scipy.sparse as sp
import torch

import lrkit
from lrkit.matrix.cur import CUR, cur
from lrkit.matrix.interp import Interpolative, interp_decomp

from conftest import EXTREME_SCALES, RTOL, SCALE_IDS, assert_scaled, at_scale, low_rank_matrix

METHODS = ["leverage", "deim", "qr", "uniform"]


def noisy_low_rank(m=300, n=200, rank=10, noise=1e-3, seed=0):
    """Rank-10 signal with singular values 0.8^i, plus Gaussian noise: approximately low rank."""
    A, _ = low_rank_matrix(m, n, rank, decay=0.8, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    return A + noise * torch.randn(m, n, generator=g, dtype=torch.float64)


def coherent(m=200, n=100, k=5, seed=0):
    """All the signal sits in the first k columns; small noise everywhere else."""
    g = torch.Generator().manual_seed(seed)
    A = 0.05 * torch.randn(m, n, generator=g, dtype=torch.float64)
    A[:, :k] += 3 * torch.randn(m, k, generator=g, dtype=torch.float64)
    return A


def svd_error(A, rank):
    """Relative Frobenius error of the best rank-``rank`` approximation (Eckart-Young)."""
    S = torch.linalg.svdvals(A)
    return float(torch.linalg.vector_norm(S[rank:]) / torch.linalg.vector_norm(S))


# -- CUR: exactness --------------------------------------------------------------------------
@pytest.mark.parametrize("u", ["pinv", "intersection"])
@pytest.mark.parametrize("method", METHODS)
def test_exact_recovery_of_rank_r(method, u, device, dtype):
    # Any r columns of a generic rank-r matrix span its column space, so every method
    # recovers it, with exactly r columns and rows or with twice as many.
    A, _ = low_rank_matrix(60, 45, 7, dtype=dtype, device=device)
    for count in (7, 14):
        fact = cur(A, 7, method=method, n_cols=count, n_rows=count, u=u, seed=0)
        assert isinstance(fact, CUR) and fact.shape == A.shape
        assert fact.device == A.device and fact.dtype == dtype
        assert fact.C.shape == (60, count) and fact.U.shape == (count, count)
        assert fact.R.shape == (count, 45)
        assert torch.equal(fact.C, A[:, fact.cols]) and torch.equal(fact.R, A[fact.rows])
        assert len(set(fact.cols.tolist())) == count and len(set(fact.rows.tolist())) == count
        assert lrkit.rel_error(A, fact) < 10 * RTOL[dtype]  # rounding x cond(C) cond(R): ~50 eps


def noisy_flat(m, n, rank, noise, seed):
    """Rank-``rank`` signal with equal singular values plus Gaussian noise of ``noise`` times
    its Frobenius norm: the hardest of the families measured for the default (flat spectrum)."""
    g = torch.Generator().manual_seed(seed)
    Q1 = torch.linalg.qr(torch.randn(m, rank, generator=g, dtype=torch.float64))[0]
    Q2 = torch.linalg.qr(torch.randn(n, rank, generator=g, dtype=torch.float64))[0]
    L, N = Q1 @ Q2.T, torch.randn(m, n, generator=g, dtype=torch.float64)
    return L + noise * N * (torch.linalg.matrix_norm(L) / torch.linalg.matrix_norm(N))


@pytest.mark.parametrize("shape", [(500, 300), (200, 200)])
def test_default_within_2x_of_svd_optimum_on_noisy_low_rank(shape):
    # The default (DEIM, 2k columns and rows, pinv core; see the module docstring) against the
    # rank-k optimum. No proven bound is this tight (DEIM's worst case grows like
    # sqrt(k n) 2^k), so this holds a seeded family to the 2x the default promises: measured
    # at most 1.46x over 216 matrices (flat spectra at k = 30 the worst), a 1.37x margin.
    # The old default (leverage sampling, k of each) reached 7.8x-30x on such matrices.
    for rank, noise, seed in itertools.product((5, 12, 30), (0.01, 0.1, 0.5), (0, 1)):
        A = noisy_flat(*shape, rank, noise, seed)
        fact = cur(A, rank)
        assert fact.method == "deim" and fact.C.shape[1] == fact.R.shape[0] == 2 * rank
        assert lrkit.rel_error(A, fact) < 2 * svd_error(A, rank), (rank, noise, seed)


def test_default_count_is_clipped_to_the_matrix():
    A = noisy_flat(60, 40, 5, 0.1, 0)
    assert cur(A, 25).C.shape == (60, 40)  # 2 * 25 > min(m, n) = 40: DEIM takes 40
    fact = cur(A, 25, method="qr")
    assert fact.C.shape == (60, 40) and fact.R.shape == (50, 40)  # 50 rows <= m = 60


def test_leverage_within_2x_of_svd_optimum():
    # Mahoney & Drineas 2009: (2 + eps) times the rank-k optimum with enough columns.
    # Measured at seeds 0-4 on this matrix: 2k columns and rows 1.45-1.59x, 4k 1.13-1.18x.
    A = noisy_low_rank()
    svd, best = lrkit.truncated_svd(A, 10), svd_error(A, 10)  # one SVD for all the draws
    for seed in range(5):
        kw = dict(method="leverage", svd=svd, seed=seed)
        assert lrkit.rel_error(A, cur(A, 10, n_cols=20, n_rows=20, **kw)) < 2 * best
        assert lrkit.rel_error(A, cur(A, 10, n_cols=40, n_rows=40, **kw)) < 1.3 * best


def test_knob_leverage_beats_uniform_on_a_coherent_matrix():
    # The signal lives in 5 columns: leverage scores find them, uniform sampling mostly
    # does not. Measured at seeds 0-4: leverage 1.21-1.53x the optimum, uniform 11.9-13.6x.
    A = coherent()
    svd, best = lrkit.truncated_svd(A, 5), svd_error(A, 5)
    for seed in range(5):
        kw = dict(method="leverage", n_cols=10, n_rows=10, svd=svd, seed=seed)
        lev = lrkit.rel_error(A, cur(A, 5, **kw)) / best
        uni = lrkit.rel_error(A, cur(A, 5, method="uniform", n_cols=10, n_rows=10, seed=seed))
        assert lev < 2 and uni / best > 5 * lev


@pytest.mark.parametrize("method", METHODS)
def test_knob_pinv_core_is_best_for_the_chosen_columns(method):
    # C^+ A R^+ minimizes ||A - C X R||_F over X, so the intersection core can only be worse;
    # on a noisy matrix much worse (measured at seed 0: pinv 1.3-1.6x the optimum,
    # intersection 1.8x (qr), 4.9x (deim), 17x (leverage), 89x (uniform)).
    A = noisy_low_rank()
    pinv = cur(A, 10, method=method, n_cols=20, n_rows=20, seed=0)
    inter = cur(A, 10, method=method, n_cols=20, n_rows=20, u="intersection", seed=0)
    assert torch.equal(pinv.cols, inter.cols) and torch.equal(pinv.rows, inter.rows)
    assert lrkit.rel_error(A, pinv) <= lrkit.rel_error(A, inter) * (1 + 1e-12)


# -- CUR: how the columns are chosen ---------------------------------------------------------
def test_deim_and_qr_are_deterministic():
    A = noisy_low_rank(120, 80)
    for method in ("deim", "qr"):
        first, second = cur(A, 10, method=method, seed=0), cur(A.clone(), 10, method=method)
        assert torch.equal(first.cols, second.cols) and torch.equal(first.rows, second.rows)
        assert torch.equal(first.U, second.U)


def test_qr_columns_are_lapack_pivots_and_rows_come_from_c():
    A = noisy_low_rank(120, 80).numpy()
    fact = cur(A, 8, method="qr", n_cols=8, n_rows=8)
    piv_cols = scipy.linalg.qr(A, pivoting=True)[2][:8]
    piv_rows = scipy.linalg.qr(A[:, piv_cols].T, pivoting=True)[2][:8]  # Voronin & Martinsson
    assert fact.cols.tolist() == piv_cols.tolist() and fact.rows.tolist() == piv_rows.tolist()
    more_rows = cur(A, 8, method="qr", n_cols=8, n_rows=12)  # more rows than C tells apart: A^T
    assert more_rows.rows.tolist() == scipy.linalg.qr(A.T, pivoting=True)[2][:12].tolist()


def test_deim_picks_argmax_first_and_meets_its_error_bound():
    # Sorensen & Embree 2016: ||A - CUR||_2 <= (eta_p + eta_q) s_{k+1}, with
    # eta_p = ||V[p, :]^-1||_2 and eta_q = ||U[q, :]^-1||_2 (measured 1.2-1.9 s_{k+1}).
    g = torch.Generator().manual_seed(3)
    A = torch.randn(80, 60, generator=g, dtype=torch.float64) * 0.7 ** torch.arange(60)
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    for k in (5, 10, 20):
        fact = cur(A, k, method="deim", n_cols=k, n_rows=k)
        assert int(fact.cols[0]) == int(Vh[0].abs().argmax())
        assert int(fact.rows[0]) == int(U[:, 0].abs().argmax())
        eta_p = torch.linalg.matrix_norm(torch.linalg.inv(Vh[:k, fact.cols]), 2)
        eta_q = torch.linalg.matrix_norm(torch.linalg.inv(U[fact.rows, :k]), 2)
        err = torch.linalg.matrix_norm(A - fact.to_dense(), 2)
        assert float(err) <= float((eta_p + eta_q) * S[k])


@pytest.mark.parametrize(
    "method, sampling",
    [("leverage", "without"), ("leverage", "with"), ("uniform", "without"), ("uniform", "with")],
)
def test_same_seed_same_indices(method, sampling, device):
    A = noisy_low_rank(120, 80).to(device)
    kw = dict(method=method, sampling=sampling, n_cols=20, n_rows=20)
    first, second = cur(A, 10, seed=7, **kw), cur(A, 10, seed=7, **kw)
    assert torch.equal(first.cols, second.cols) and torch.equal(first.rows, second.rows)
    other = cur(A, 10, seed=8, **kw)
    assert not torch.equal(first.cols, other.cols)
    gen = torch.Generator(device=device).manual_seed(7)
    assert torch.equal(cur(A, 10, seed=gen, **kw).cols, first.cols)


def test_sampling_with_replacement_keeps_each_column_once():
    A = coherent()  # 5 columns hold nearly all the leverage: draws repeat
    fact = cur(A, 5, method="leverage", n_cols=30, n_rows=30, sampling="with", seed=0)
    cols = fact.cols.tolist()
    assert len(cols) == len(set(cols)) < 30 and fact.C.shape[1] == len(cols)
    assert set(range(5)) <= set(cols)


def test_topk_takes_the_largest_leverage_scores():
    A = noisy_low_rank(120, 80)
    kw = dict(method="leverage", n_cols=15, n_rows=12, sampling="topk")
    fact = cur(A, 10, **kw, seed=0)
    _, _, Vh = lrkit.truncated_svd(A, 10)
    scores = (Vh**2).sum(0)
    assert fact.cols.tolist() == torch.argsort(scores, descending=True)[:15].tolist()
    assert torch.equal(fact.cols, cur(A, 10, **kw, seed=1).cols)


def test_zero_columns_are_never_sampled_before_the_others():
    A, _ = low_rank_matrix(40, 30, 4)
    A[:, 10:] = 0  # 20 zero columns: leverage score 0
    for seed in range(3):
        fact = cur(A, 4, method="leverage", n_cols=10, seed=seed)
        assert set(fact.cols.tolist()) == set(range(10))


def test_randomized_svd_for_the_scores():
    A = noisy_low_rank()
    best = svd_error(A, 10)
    kw = dict(method="leverage", n_cols=20, n_rows=20)
    exact = cur(A, 10, **kw, svd="exact", seed=0)
    rand = cur(A, 10, **kw, svd="randomized", seed=0)
    assert (
        lrkit.rel_error(A, rand) < 2 * best and lrkit.rel_error(A, exact) < 2 * best
    )  # 1.48x, 1.55x
    assert torch.equal(rand.cols, cur(A, 10, **kw, svd="randomized", seed=0).cols)


def test_precomputed_svd_is_reused():
    A = noisy_low_rank(120, 80)
    svd = lrkit.truncated_svd(A, 25)
    for method in ("leverage", "deim"):
        given = cur(A, 10, method=method, n_cols=20, n_rows=25, svd=svd, seed=0)
        exact = cur(A, 10, method=method, n_cols=20, n_rows=25, svd="exact", seed=0)
        assert torch.equal(given.cols, exact.cols) and torch.equal(given.rows, exact.rows)
    with pytest.raises(ValueError, match=r"svd has rank 25; method='deim' needs 30 singular"):
        cur(A, 10, method="deim", n_cols=30, svd=svd)
    with pytest.raises(ValueError, match=r"svd has shape \(120, 80\); A has shape \(80, 120\)"):
        cur(A.T, 10, svd=svd)


# -- CUR: sparse input -----------------------------------------------------------------------
def sparse_matrix(m=200, n=150, density=0.05, dtype=np.float64):
    return sp.random(m, n, density=density, format="csr", dtype=dtype, random_state=0)


@pytest.mark.parametrize("method", METHODS)
def test_sparse_input_keeps_c_and_r_sparse(method):
    A = sparse_matrix()
    fact = cur(A, 10, method=method, n_cols=20, n_rows=20, svd="exact", seed=0)
    dense = cur(A.toarray(), 10, method=method, n_cols=20, n_rows=20, svd="exact", seed=0)
    assert fact.is_sparse and fact.C.layout == torch.sparse_csr == fact.R.layout
    assert torch.equal(fact.cols, dense.cols) and torch.equal(fact.rows, dense.rows)
    # Same columns, so only the order of sums differs: rounding times cond(C), cond(R) ~ 3
    tol = RTOL[torch.float64]
    torch.testing.assert_close(fact.to_dense(), dense.to_dense(), rtol=tol, atol=tol)
    np.testing.assert_array_equal(fact.C.to_dense().numpy(), A[:, fact.cols.numpy()].toarray())


def test_sparse_storage_counts_nonzeros_and_indices():
    A = sparse_matrix(dtype=np.float32)
    fact = cur(A, 10, n_cols=20, n_rows=15, seed=0)
    nnz_c = A[:, fact.cols.numpy()].nnz
    nnz_r = A[fact.rows.numpy()].nnz
    assert fact.num_params == nnz_c + nnz_r + 20 * 15
    # values at 32 bits; CSR: one 32-bit column index per nonzero, one row pointer per row + 1
    csr_idx = 32 * (nnz_c + 200 + 1) + 32 * (nnz_r + 15 + 1)
    assert fact.nbits == 32 * fact.num_params + csr_idx + 64 * (20 + 15)
    assert fact.nbits_at(16) == 16 * fact.num_params + csr_idx + 64 * (20 + 15)
    dense = cur(A.toarray(), 10, n_cols=20, n_rows=15, seed=0)
    assert dense.num_params == 200 * 20 + 20 * 15 + 15 * 150
    assert fact.nbits < dense.nbits / 4  # 5% nonzeros: measured 4.9x smaller in all
    assert "sparse C and R" in repr(fact)


def test_sparse_integer_and_nan_input():
    A = sp.random(30, 20, density=0.3, format="coo", random_state=0)
    counts = A.copy()
    counts.data = np.ceil(10 * counts.data).astype(np.int64)
    assert cur(counts, 3, seed=0).dtype == torch.float32
    A.data[0] = np.nan
    with pytest.raises(ValueError, match="A contains NaN"):
        cur(A, 3)


# -- CUR: the protocol -----------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
def test_matmul_both_sides_equals_dense(sparse, device, dtype):
    if sparse and device.type != "cpu":
        pytest.skip("scipy sparse input lives on the CPU")
    A = noisy_low_rank(60, 40)
    A = sp.csr_array(A.numpy() * (np.abs(A.numpy()) > 0.05)) if sparse else A
    fact = cur(A, 5, n_cols=8, n_rows=9, seed=0).to(device=device, dtype=dtype)
    D = fact.to_dense()
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=g, dtype=torch.float64).to(device, dtype)
    Y = torch.randn(2, 60, generator=g, dtype=torch.float64).to(device, dtype)
    tol = dict(rtol=10 * RTOL[dtype], atol=10 * RTOL[dtype])
    torch.testing.assert_close(fact @ X, D @ X, **tol)
    torch.testing.assert_close(Y @ fact, Y @ D, **tol)
    torch.testing.assert_close(fact @ X[:, 0], D @ X[:, 0], **tol)
    torch.testing.assert_close(Y[0] @ fact, Y[0] @ D, **tol)
    C, U, R = fact
    torch.testing.assert_close(C.to_dense() @ U @ R.to_dense(), D, **tol)


def test_dense_storage_and_repr():
    A = noisy_low_rank().float()
    fact = cur(A, 10, method="leverage", n_cols=20, n_rows=30, seed=0)
    assert fact.num_params == 300 * 20 + 20 * 30 + 30 * 200
    assert fact.nbits == 32 * fact.num_params + 64 * (20 + 30)
    assert fact.nbits_at(16) == 16 * fact.num_params + 64 * (20 + 30)
    assert fact.compression_ratio() == pytest.approx(300 * 200 * 32 / fact.nbits)
    text = repr(fact)
    assert text.startswith("CUR(shape=(300, 200), 20 cols, 30 rows, method='leverage'")
    assert "dtype=float32" in text


def test_to_casts_values_and_keeps_indices():
    fact = cur(sparse_matrix(), 10, seed=0)
    f32 = fact.to(torch.float32)
    assert f32.dtype == torch.float32 and f32.U.dtype == torch.float32
    assert f32.R.values().dtype == torch.float32 and f32.cols.dtype == torch.int64
    torch.testing.assert_close(f32.to_dense(), fact.to_dense().float())
    big = CUR(
        torch.full((3, 1), 1e6), torch.ones(1, 1), torch.ones(1, 2), torch.zeros(1), torch.zeros(1)
    )
    with pytest.warns(UserWarning, match="overflowed in C"):
        big.to(torch.float16)


def test_float32_stays_float32_integers_promote_input_untouched(device):
    A = torch.randn(30, 20, device=device)
    before = A.clone()
    fact = cur(A, 4, seed=0)
    assert fact.dtype == torch.float32 and torch.equal(A, before)
    fact.C.mul_(0)  # C is a copy, not a view into A
    assert torch.equal(A, before)
    a = np.arange(600, dtype=np.int32).reshape(30, 20) % 7
    b = a.copy()
    assert cur(a, 3, seed=0).dtype == torch.float32
    np.testing.assert_array_equal(a, b)


BAD_CUR = [
    (dict(rank=0), ValueError, r"rank \(=0\) must be >= 1"),
    (dict(rank=46), ValueError, r"rank \(=46\) must be <= min\(m, n\) = 45"),
    (dict(rank=2.5), TypeError, r"rank must be an int; got 2.5"),
    (dict(method="svd"), ValueError, r"method \(='svd'\) must be one of 'leverage'"),
    (dict(u="lstsq"), ValueError, r"u \(='lstsq'\) must be one of 'pinv', 'intersection'"),
    (dict(svd="lanczos"), ValueError, r"svd \(='lanczos'\) must be one of"),
    (dict(method="leverage", sampling="poisson"), ValueError, r"sampling \(='poisson'\) must be"),
    (dict(method="deim", sampling="with"), ValueError, r"sampling .* 'leverage' and 'uniform'"),
    (dict(method="uniform", sampling="topk"), ValueError, r"'topk'\) needs scores"),
    (dict(n_cols=3), ValueError, r"n_cols \(=3\) must be in \[rank, min\(m, n\)\] = \[5, 45\]"),
    (dict(n_rows=4), ValueError, r"n_rows \(=4\) must be in \[rank, min\(m, n\)\] = \[5, 45\]"),
    (
        dict(method="leverage", n_cols=46),
        ValueError,
        r"n_cols \(=46\) must be in \[rank, n\] = \[5, 45\]",
    ),
    (
        dict(method="leverage", n_rows=61),
        ValueError,
        r"n_rows \(=61\) must be in \[rank, m\] = \[5, 60\]",
    ),
    (
        dict(method="deim", n_rows=50),
        ValueError,
        r"n_rows \(=50\) must be in \[rank, min\(m, n\)\] = \[5, 45\]",
    ),
    (dict(n_cols=7.0), TypeError, r"n_cols must be an int; got 7.0"),
    (dict(seed="zero"), TypeError, r"seed must be an int, a torch.Generator or None"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD_CUR)
def test_cur_rejects_bad_arguments(kwargs, exc, match):
    A, _ = low_rank_matrix(60, 45, 5)
    kwargs = {"rank": 5, **kwargs}
    with pytest.raises(exc, match=match):
        cur(A, kwargs.pop("rank"), **kwargs)


def test_cur_rejects_bad_arrays():
    A = torch.ones(6, 5)
    A[1, 2] = float("inf")
    with pytest.raises(ValueError, match=r"A contains 1 NaN or Inf"):
        cur(A, 2)
    with pytest.raises(ValueError, match=r"A must be a 2-D matrix; got 1-D"):
        cur(np.ones(5), 1)
    with pytest.raises(ValueError, match=r"A must be a 2-D matrix; got 3-D"):
        cur(np.ones((2, 5, 4)), 1)
    with pytest.raises(TypeError, match=r"A is a torch sparse tensor"):
        cur(torch.eye(4).to_sparse(), 1)
    with pytest.raises(TypeError, match=r"A must be a numpy.ndarray or a torch.Tensor"):
        cur("matrix", 1)
    with pytest.raises(ValueError, match=r"shapes do not agree"):
        CUR(torch.ones(4, 2), torch.ones(3, 2), torch.ones(2, 5), torch.zeros(2), torch.zeros(2))


# -- interpolative decomposition -------------------------------------------------------------
def decaying(m=120, n=80, rate=0.7, seed=0):
    g = np.random.default_rng(seed)
    U, _ = np.linalg.qr(g.standard_normal((m, n)))
    V, _ = np.linalg.qr(g.standard_normal((n, n)))
    return (U * rate ** np.arange(n)) @ V.T


@pytest.mark.parametrize("k", [5, 10, 20])
def test_id_matches_scipy_interpolative(k):
    A = decaying()
    idx, proj = sli.interp_decomp(A.copy(), k, rand=False)
    ours = interp_decomp(A, k)
    scipy_err = np.linalg.norm(A - sli.reconstruct_matrix_from_id(A[:, idx[:k]], idx, proj))
    ours_err = np.linalg.norm(A - ours.to_dense().numpy())
    # Both errors are >= 0.7^k |A| (8e-4 |A| at k = 20), so rounding at eps |A| moves them by
    # < 1e-12 relative: 1e-8 only allows for the two codes' different pivoted QRs.
    assert ours_err == pytest.approx(scipy_err, rel=1e-8)
    assert sorted(ours.idx.tolist()) == sorted(idx[:k].tolist())
    # the error is exactly the part the pivoted QR left out: ||R22||_F
    R = scipy.linalg.qr(A, mode="r", pivoting=True)[0]
    assert ours_err == pytest.approx(np.linalg.norm(R[k:, k:]), rel=1e-8)


@pytest.mark.parametrize("axis", [1, 0])
def test_id_exact_for_rank_r_and_skeleton_reproduced(axis, device, dtype):
    A, _ = low_rank_matrix(50, 40, 6, dtype=dtype, device=device)
    ID = interp_decomp(A, 6, axis=axis)
    assert isinstance(ID, Interpolative) and ID.shape == A.shape and ID.rank == 6
    assert ID.device == A.device and ID.dtype == dtype
    assert lrkit.rel_error(A, ID) < 10 * RTOL[dtype]
    D = ID.to_dense()
    if axis == 1:
        assert torch.equal(ID.skeleton, A[:, ID.idx]) and torch.equal(D[:, ID.idx], A[:, ID.idx])
        assert ID.P.shape == (6, 40)
        torch.testing.assert_close(ID.P[:, ID.idx], torch.eye(6, dtype=dtype, device=device))
        torch.testing.assert_close(ID.skeleton @ ID.P, D)
    else:
        assert torch.equal(ID.skeleton, A[ID.idx]) and torch.equal(D[ID.idx], A[ID.idx])
        assert ID.P.shape == (50, 6)
        torch.testing.assert_close(ID.P @ ID.skeleton, D)


def test_row_id_is_column_id_of_transpose():
    A = decaying()
    rows, cols = interp_decomp(A, 10, axis=0), interp_decomp(A.T, 10)
    assert torch.equal(rows.idx, cols.idx)
    torch.testing.assert_close(rows.to_dense(), cols.to_dense().T)


def test_randomized_id_close_to_deterministic_and_seeded():
    # Sketch with rank + 10 rows; measured 1.59-1.77x the error of the full pivoted QR here.
    A = decaying()
    exact = lrkit.rel_error(A, interp_decomp(A, 10))
    for seed in range(3):
        rand = interp_decomp(A, 10, oversample=10, seed=seed)
        assert lrkit.rel_error(A, rand) < 2.5 * exact
    first, second = (interp_decomp(A, 10, oversample=10, seed=3) for _ in range(2))
    assert torch.equal(first.perm, second.perm) and torch.equal(first.proj, second.proj)


@pytest.mark.parametrize("axis", [1, 0])
def test_id_matmul_storage_and_repr(axis, device):
    A = torch.from_numpy(decaying(60, 40)).to(device)
    ID = interp_decomp(A, 8, axis=axis)
    D = ID.to_dense()
    g = torch.Generator().manual_seed(0)
    X, Y = (
        torch.randn(40, 3, generator=g, dtype=torch.float64).to(device),
        torch.randn(2, 60, generator=g, dtype=torch.float64).to(device),
    )
    torch.testing.assert_close(ID @ X, D @ X)
    torch.testing.assert_close(Y @ ID, Y @ D)
    torch.testing.assert_close(ID @ X[:, 0], D @ X[:, 0])
    torch.testing.assert_close(Y[0] @ ID, Y[0] @ D)
    N = 40 if axis == 1 else 60
    assert ID.num_params == ID.skeleton.numel() + 8 * (N - 8)
    assert ID.nbits == 64 * ID.num_params + 64 * N
    assert ID.nbits_at(16) == 16 * ID.num_params + 64 * N
    assert repr(ID).startswith(f"Interpolative(shape=(60, 40), rank=8, axis={axis}")


BAD_ID = [
    (dict(rank=0), ValueError, r"rank \(=0\) must be >= 1"),
    (dict(rank=41), ValueError, r"rank \(=41\) must be <= min\(m, n\) = 40"),
    (dict(axis=2), ValueError, r"axis \(=2\) must be one of 1, 0"),
    (dict(oversample=-1), ValueError, r"oversample \(=-1\) must be >= 0"),
    (dict(oversample=2.5), TypeError, r"oversample must be an int; got 2.5"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD_ID)
def test_id_rejects_bad_arguments(kwargs, exc, match):
    kwargs = {"rank": 5, **kwargs}
    with pytest.raises(exc, match=match):
        interp_decomp(decaying(60, 40), kwargs.pop("rank"), **kwargs)
    with pytest.raises(ValueError, match="NaN or Inf"):
        interp_decomp(np.full((4, 3), np.nan), 1)


def test_exactly_rank_deficient_id_does_not_fail():
    A = np.zeros((6, 5))
    A[:, 0] = 1.0  # rank 1, asked for rank 3: R11 is exactly singular
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ID = interp_decomp(A, 3)
    assert lrkit.rel_error(A, ID) < RTOL[torch.float64]  # exact: rank 1 <= 3


@pytest.mark.parametrize(("dtype", "k"), EXTREME_SCALES, ids=SCALE_IDS)
def test_cur_and_id_at_extreme_scales(dtype, k):
    X, _ = low_rank_matrix(20, 16, 16, decay=0.7)
    A, A1 = at_scale(X, dtype, k)
    f = lambda a: interp_decomp(a, 3, seed=0)  # noqa: E731
    assert_scaled(f(A).to_dense(), f(A1).to_dense(), k, dtype)
    if k < -128 and dtype == torch.float32:
        # CUR's core U = C^+ A R^+ scales as 1 / A: ~1e40 does not fit float32.
        with pytest.raises(ValueError, match="core U has entries beyond the range"):
            cur(A, 3, seed=0)
    else:
        assert_scaled(cur(A, 3, seed=0).to_dense(), cur(A1, 3, seed=0).to_dense(), k, dtype)
