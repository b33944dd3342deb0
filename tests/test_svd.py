"""truncated_svd: exact recovery, Eckart–Young, agreement with numpy, dtypes, devices, batches."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import lrkit

from conftest import EXTREME_SCALES, RTOL, SCALE_IDS, assert_scaled, at_scale, low_rank_matrix


def test_exact_recovery_of_rank_r(device, dtype):
    A, S = low_rank_matrix(40, 30, 6, dtype=dtype, device=device)
    approx = lrkit.truncated_svd(A, 6)
    assert approx.U.shape == (40, 6) and approx.S.shape == (6,) and approx.Vh.shape == (6, 30)
    assert approx.device == A.device and approx.dtype == dtype
    torch.testing.assert_close(approx.S, S, rtol=RTOL[dtype], atol=RTOL[dtype] * 6)
    assert lrkit.rel_error(A, approx) < 10 * RTOL[dtype]


def test_factors_are_orthonormal(device, dtype):
    g = torch.Generator().manual_seed(0)
    A = torch.randn(50, 20, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    approx = lrkit.truncated_svd(A, 8)
    eye = torch.eye(8, dtype=dtype, device=device)
    tol = 100 * RTOL[dtype]
    torch.testing.assert_close(approx.U.T @ approx.U, eye, rtol=tol, atol=tol)
    torch.testing.assert_close(approx.Vh @ approx.Vh.T, eye, rtol=tol, atol=tol)
    assert bool((approx.S[:-1] >= approx.S[1:]).all())  # descending


@pytest.mark.parametrize("k", [1, 3, 10, 19])
def test_eckart_young_frobenius_and_spectral(k, device, dtype):
    g = torch.Generator().manual_seed(k)
    A = torch.randn(30, 20, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    s = torch.linalg.svdvals(A.double())
    approx = lrkit.truncated_svd(A, k)
    fro = float(torch.sqrt((s[k:] ** 2).sum()) / torch.linalg.norm(s))
    spec = float(s[k] / s[0])
    tol = 10 * RTOL[dtype]
    assert lrkit.rel_error(A, approx) == pytest.approx(fro, rel=tol)
    assert lrkit.rel_error(A, approx, ord=2) == pytest.approx(spec, rel=tol)


def test_eckart_young_beats_other_rank_k_matrices():
    # Any other rank-k matrix is at least as far from A: try perturbed factors and the
    # "wrong" singular triplets.
    g = torch.Generator().manual_seed(1)
    A = torch.randn(25, 18, generator=g, dtype=torch.float64)
    k = 5
    best = lrkit.rel_error(A, lrkit.truncated_svd(A, k))
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    wrong = lrkit.LowRank(U[:, k : 2 * k], S[k : 2 * k], Vh[k : 2 * k])
    assert lrkit.rel_error(A, wrong) > best
    for _ in range(20):
        B = (U[:, :k] + 0.05 * torch.randn(25, k, generator=g, dtype=torch.float64)) * S[:k]
        assert lrkit.rel_error(A, B @ Vh[:k]) >= best


def test_numpy_and_torch_inputs_agree():
    a = np.random.default_rng(0).standard_normal((20, 15))
    from_np = lrkit.truncated_svd(a, 4)
    from_t = lrkit.truncated_svd(torch.from_numpy(a), 4)
    assert isinstance(from_np.U, torch.Tensor) and from_np.dtype == torch.float64
    for x, y in zip(from_np, from_t, strict=True):
        torch.testing.assert_close(x, y)


def test_matches_numpy_svd_sign_free():
    a = np.random.default_rng(2).standard_normal((30, 12))
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    approx = lrkit.truncated_svd(a, 5)
    np.testing.assert_allclose(approx.S.numpy(), s[:5], rtol=1e-12)
    np.testing.assert_allclose(approx.to_dense().numpy(), (u[:, :5] * s[:5]) @ vh[:5], atol=1e-12)
    # Projectors onto the singular subspaces do not depend on signs.
    P = approx.U.numpy() @ approx.U.numpy().T
    np.testing.assert_allclose(P, u[:, :5] @ u[:, :5].T, atol=1e-12)


def test_sign_convention_is_deterministic():
    a = torch.randn(20, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    first, second = lrkit.truncated_svd(a, 3), lrkit.truncated_svd(a.clone(), 3)
    assert torch.equal(first.U, second.U) and torch.equal(first.Vh, second.Vh)
    # the largest-magnitude entry of every left singular vector is positive
    idx = first.U.abs().argmax(dim=0)
    assert bool((first.U[idx, torch.arange(3)] > 0).all())


def test_sign_flip_changes_sign_of_negative_columns():
    U = torch.tensor([[-3.0, 1.0], [1.0, -2.0]])
    Vh = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    Uf, Vf = lrkit.svd_flip(U, Vh)
    torch.testing.assert_close(Uf, torch.tensor([[3.0, -1.0], [-1.0, 2.0]]))
    torch.testing.assert_close(Vf, torch.tensor([[-1.0, -2.0], [-3.0, -4.0]]))
    torch.testing.assert_close(Uf @ Vf, U @ Vh)


def test_float32_stays_float32_and_integers_promote():
    assert lrkit.truncated_svd(torch.randn(6, 5), 2).dtype == torch.float32
    assert lrkit.truncated_svd(np.ones((6, 5), dtype=np.float32), 2).dtype == torch.float32
    assert (
        lrkit.truncated_svd(np.arange(30, dtype=np.uint8).reshape(6, 5), 2).dtype == torch.float32
    )
    assert lrkit.truncated_svd(torch.randn(6, 5).half(), 2).dtype == torch.float32


def test_input_is_not_modified(device):
    A = torch.randn(12, 9, device=device)
    before = A.clone()
    lrkit.truncated_svd(A, 3)
    assert torch.equal(A, before)
    a = np.random.default_rng(0).standard_normal((12, 9))
    b = a.copy()
    lrkit.truncated_svd(a, 3).U.mul_(0)  # result does not share memory with the input
    np.testing.assert_array_equal(a, b)


def test_batched_equals_loop(device, dtype):
    g = torch.Generator().manual_seed(0)
    A = torch.randn(2, 3, 15, 10, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    batched = lrkit.truncated_svd(A, 4)
    assert batched.shape == (2, 3, 15, 10) and batched.U.shape == (2, 3, 15, 4)
    for i in range(2):
        for j in range(3):
            single = lrkit.truncated_svd(A[i, j], 4)
            torch.testing.assert_close(
                batched.to_dense()[i, j],
                single.to_dense(),
                rtol=10 * RTOL[dtype],
                atol=10 * RTOL[dtype],
            )


def test_wide_and_tall(dtype):
    for shape in [(5, 40), (40, 5)]:
        A, _ = low_rank_matrix(*shape, 3, dtype=dtype)
        approx = lrkit.truncated_svd(A, 3)
        assert approx.shape == shape
        assert lrkit.rel_error(A, approx) < 10 * RTOL[dtype]


def test_full_rank_is_exact():
    A = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert lrkit.rel_error(A, lrkit.truncated_svd(A, 4)) < RTOL[torch.float64]


def test_error_decreases_with_rank():
    A = torch.randn(30, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    errs = [lrkit.rel_error(A, lrkit.truncated_svd(A, k)) for k in range(1, 31)]
    assert all(a > b for a, b in zip(errs, errs[1:], strict=False))


# -- property tests over shapes and ranks ---------------------------------------------------
@st.composite
def matrix_and_rank(draw):
    m = draw(st.integers(1, 12))
    n = draw(st.integers(1, 12))
    a = draw(arrays(np.float64, (m, n), elements=st.floats(-1e3, 1e3, allow_nan=False, width=64)))
    k = draw(st.integers(1, min(m, n)))
    return a, k


@settings(max_examples=60, deadline=None)
@given(matrix_and_rank())
def test_property_eckart_young_any_shape(ak):
    a, k = ak
    approx = lrkit.truncated_svd(a, k)
    assert approx.shape == a.shape and approx.rank == k
    s = np.linalg.svd(a, compute_uv=False)
    tail = np.sqrt(np.sum(s[k:] ** 2))
    err = np.linalg.norm(a - approx.to_dense().numpy())
    # A backward stable SVD of a <= 12 x 12 matrix moves singular values by ~n eps |A|_2;
    # the floor of 1 keeps the bound meaningful for (sub)normal-tiny entries.
    tol = RTOL[torch.float64] * max(1.0, s[0])
    assert err == pytest.approx(tail, abs=tol)
    np.testing.assert_allclose(approx.S.numpy(), s[:k], atol=tol)


@settings(max_examples=40, deadline=None)
@given(matrix_and_rank(), st.integers(1, 4))
def test_property_matmul_equals_dense(ak, p):
    a, k = ak
    approx = lrkit.truncated_svd(a, k)
    D = approx.to_dense()
    X = torch.linspace(-1, 1, a.shape[1] * p, dtype=torch.float64).reshape(a.shape[1], p)
    Y = torch.linspace(-1, 1, p * a.shape[0], dtype=torch.float64).reshape(p, a.shape[0])
    # Two ways of summing <= 12 x 12 products of entries <= 1 and factors of norm <= S[0]:
    # they differ by ~n^2 eps S[0] at worst (n <= 12), inside 1000 eps S[0].
    scale = RTOL[torch.float64] * max(1.0, float(approx.S[0]))
    torch.testing.assert_close(approx @ X, D @ X, rtol=RTOL[torch.float64], atol=scale)
    torch.testing.assert_close(Y @ approx, Y @ D, rtol=RTOL[torch.float64], atol=scale)


@pytest.mark.parametrize(("dtype", "k"), EXTREME_SCALES, ids=SCALE_IDS)
def test_truncated_svd_at_extreme_scales(dtype, k):
    # Singular values well apart (ratio 0.7): subspaces are conditioned by 1 / (1 - 0.7), so
    # rounding moves the rank-3 approximation by a few hundred eps at most.
    X, _ = low_rank_matrix(20, 16, 16, decay=0.7)
    A, A1 = at_scale(X, dtype, k)
    assert_scaled(
        lrkit.truncated_svd(A, 3).to_dense(),
        lrkit.truncated_svd(A1, 3).to_dense(),
        k,
        dtype,
    )
