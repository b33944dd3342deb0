"""lrkit.structured: Kronecker sums, Monarch and butterfly matrices.

Known answers: exact recovery of structured inputs, the Van Loan-Pitsianis error identity,
optimality of the Monarch projection, the exact FFT and Hadamard butterflies; fast products
against the dense reference on outputs and gradients; bad input.
"""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

import lrkit
from lrkit.structured import (
    Butterfly,
    KroneckerSum,
    Monarch,
    bit_reversal_permutation,
    butterfly_dense,
    butterfly_fit,
    butterfly_matmul,
    butterfly_project,
    kron_approx,
    kron_dense,
    kron_matmul,
    kron_rearrange,
    monarch_dense,
    monarch_matmul,
    monarch_project,
    monarch_rmatmul,
)

from conftest import EXTREME_SCALES, RTOL, SCALE_IDS, assert_scaled, at_scale

COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def randn(*shape, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def assert_close(x, y, dtype, scale=10):
    tol = scale * RTOL[dtype]
    torch.testing.assert_close(x, y, rtol=tol, atol=tol * float(y.detach().abs().max()))


def check_grads(fast, dense, inputs, dtype, scale=100):
    """fast(*inputs) and dense(*inputs) agree on the output and on every input's gradient."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fast(*leaves)
    g_out = randn(*out.shape, dtype=out.dtype, device=out.device, seed=9)
    grads = torch.autograd.grad(out, leaves, g_out)
    leaves_d = [x.detach().clone().requires_grad_(True) for x in inputs]
    out_d = dense(*leaves_d)
    grads_d = torch.autograd.grad(out_d, leaves_d, g_out)
    assert_close(out, out_d, dtype, scale)
    for g, gd in zip(grads, grads_d, strict=True):
        assert_close(g, gd, dtype, scale)


# -- Kronecker ---------------------------------------------------------------------------------
def test_kron_rank_one_is_torch_kron(device, dtype):
    B, C = randn(3, 4, dtype=dtype, device=device), randn(5, 2, dtype=dtype, device=device, seed=1)
    K = kron_approx(torch.kron(B, C), (3, 4))
    assert K.B.shape == (1, 3, 4) and K.C.shape == (1, 5, 2) and K.shape == (15, 8)
    assert K.device == B.device and K.dtype == dtype
    assert_close(K.to_dense(), torch.kron(B, C), dtype)
    assert_close(KroneckerSum(B, C).to_dense(), torch.kron(B, C), dtype, scale=1)


@pytest.mark.parametrize("r", [1, 2, 4])
def test_kron_sum_of_r_terms_recovered_at_rank_r(r, device, dtype):
    B, C = randn(r, 4, 3, dtype=dtype, device=device), randn(r, 6, 5, seed=1, dtype=dtype)
    A = kron_dense(B, C.to(device))
    K = kron_approx(A, (4, 3), rank=r)
    assert K.rank == r and lrkit.rel_error(A, K) < 10 * RTOL[dtype]
    if r > 1:  # one term fewer is not enough
        assert lrkit.rel_error(A, kron_approx(A, (4, 3), rank=r - 1)) > 1e-3


@pytest.mark.parametrize("k", [1, 3, 7])
def test_kron_error_is_tail_of_rearranged_spectrum(k, device, dtype):
    A = randn(24, 20, dtype=dtype, device=device)
    s = torch.linalg.svdvals(kron_rearrange(A, (6, 4)).double())  # (24, 20) rearranged
    assert kron_rearrange(A, (6, 4)).shape == (24, 20)
    tail = float(torch.linalg.vector_norm(s[k:]) / torch.linalg.vector_norm(s))
    # An identity (Van Loan & Pitsianis): equal to rounding (measured <= 1 eps; tail >= 0.5).
    err = lrkit.rel_error(A, kron_approx(A, (6, 4), rank=k))
    assert err == pytest.approx(tail, rel=10 * RTOL[dtype])
    # Every entry moves, none is lost: the rearrangement keeps the Frobenius norm.
    norm = float(A.double().norm())
    assert float(torch.linalg.vector_norm(s)) == pytest.approx(norm, rel=RTOL[torch.float64])


def test_kron_rearrange_maps_kron_to_outer_product():
    B, C = randn(2, 3), randn(4, 5, seed=1)
    R = kron_rearrange(torch.kron(B, C), (2, 3))
    torch.testing.assert_close(R, torch.outer(B.flatten(), C.flatten()))


def test_kron_fast_product_matches_dense(device, dtype):
    K = KroneckerSum(
        randn(3, 4, 2, dtype=dtype, device=device), randn(3, 5, 6, seed=1, dtype=dtype)
    )
    D = K.to_dense()  # (20, 12)
    for X in (randn(12, dtype=dtype, seed=2), randn(12, 7, seed=3), randn(2, 3, 12, 7, seed=4)):
        X = X.to(device=device, dtype=dtype)
        assert_close(K @ X, D @ X, dtype)
    for Y in (randn(20, seed=5), randn(7, 20, seed=6), randn(2, 7, 20, seed=7)):
        Y = Y.to(device=device, dtype=dtype)
        assert_close(Y @ K, Y @ D, dtype)
    assert_close(K.T.to_dense(), D.T, dtype, scale=1)


def test_kron_fast_and_dense_agree_on_gradients(device, dtype):
    B, C = randn(2, 3, 4, dtype=dtype, device=device), randn(2, 5, 2, seed=1, dtype=dtype)
    X = randn(8, 6, seed=2, dtype=dtype, device=device)
    check_grads(kron_matmul, lambda B, C, X: kron_dense(B, C) @ X, [B, C.to(device), X], dtype)


def test_kron_numpy_input_float32_kept_and_not_modified():
    a = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    before = a.copy()
    K = kron_approx(a, (2, 3), rank=2)
    assert K.dtype == torch.float32 and isinstance(K.B, torch.Tensor)
    np.testing.assert_array_equal(a, before)
    assert K.num_params == 2 * (2 * 3 + 4 * 2) and K.nbits == 32 * K.num_params
    assert "rank=2" in repr(K) and "left=(2, 3)" in repr(K)


def test_kron_keeps_autograd_through_factors():
    B = randn(1, 2, 2).requires_grad_(True)
    K = KroneckerSum(B, randn(1, 3, 3, seed=1))
    (K @ randn(6, seed=2)).sum().backward()
    assert B.grad is not None and B.grad.shape == B.shape


@pytest.mark.parametrize(
    "left_shape, rank, match",
    [
        ((3, 4), 1, r"left_shape\[0\] \(=3\) must divide the number of rows of A, m = 8"),
        ((2, 5), 1, r"left_shape\[1\] \(=5\) must divide the number of columns of A, n = 6"),
        ((0, 2), 1, r"left_shape\[0\] \(=0\) must be >= 1"),
        ((2, 3), 0, r"rank \(=0\) must be >= 1"),
        ((2, 3), 7, r"rank \(=7\) must be <= min\(m, n\) = 6 .*left shape \(2, 3\)"),
    ],
)
def test_kron_bad_input(left_shape, rank, match):
    with pytest.raises(ValueError, match=match):
        kron_approx(randn(8, 6), left_shape, rank=rank)


def test_kron_bad_input_types():
    with pytest.raises(TypeError, match=r"left_shape must be a tuple of ints; got 2 \(int\)"):
        kron_approx(randn(8, 6), 2)
    with pytest.raises(ValueError, match="NaN"):
        kron_approx(np.full((4, 4), np.nan), (2, 2))
    with pytest.raises(ValueError, match="must be a 2-D matrix"):
        kron_approx(randn(16), (2, 2))
    with pytest.raises(ValueError, match="same number of terms"):
        KroneckerSum(randn(2, 2, 2), randn(3, 2, 2))


def test_kron_complex_input(device):
    B, C = randn(3, 3, device=device).to(torch.complex128), randn(4, 2, seed=1).to(torch.complex128)
    B, C = B * (1 + 2j), C.to(device) * (2 - 1j)
    K = kron_approx(torch.kron(B, C), (3, 3))
    assert K.dtype == torch.complex128 and K.num_params == 2 * (9 + 8) and K.nbits == 128 * 17
    torch.testing.assert_close(K.to_dense(), torch.kron(B, C))
    x = randn(6, 2, device=device, seed=2)  # a real operand: the product is complex
    torch.testing.assert_close(K @ x, torch.kron(B, C) @ x.to(torch.complex128))


# -- Monarch -----------------------------------------------------------------------------------
def random_monarch(m, n, b, *, dtype=torch.float64, device="cpu", seed=0):
    return Monarch(
        randn(m // b, b, b, dtype=dtype, device=device, seed=seed),
        randn(b, m // b, n // b, dtype=dtype, device=device, seed=seed + 1),
    )


@pytest.mark.parametrize(
    "m, n, b", [(16, 16, 4), (16, 16, 2), (16, 16, 8), (36, 36, 6), (12, 18, 3)]
)
def test_monarch_projection_exact_on_monarch_input(m, n, b, device, dtype):
    M = random_monarch(m, n, b, dtype=dtype, device=device)
    A = M.to_dense()
    assert A.shape == (m, n) and M.shape == (m, n) and M.nblocks == b
    P = monarch_project(A, b)
    assert P.L.shape == (m // b, b, b) and P.R.shape == (b, m // b, n // b)
    assert P.device == A.device and P.dtype == dtype
    assert lrkit.rel_error(A, P) < 10 * RTOL[dtype]


def test_monarch_projection_exact_on_kron_and_block_diagonal(device):
    # B (b x b) ⊗ C (n/b x n/b) = P (I ⊗ B) P^T (I ⊗ C): a Monarch matrix.
    B, C = randn(4, 4, device=device), randn(8, 8, device=device, seed=1)
    assert lrkit.rel_error(torch.kron(B, C), monarch_project(torch.kron(B, C), 4)) < 1e-12
    D = torch.block_diag(*randn(4, 8, 8, seed=2)).to(device)  # R alone, L = identity
    assert lrkit.rel_error(D, monarch_project(D, 4)) < 1e-12


def test_dft_with_grid_transposed_columns_is_monarch():
    # Cooley-Tukey with n = b * (n/b): F_n = (F_b ⊗ I) T (I ⊗ F_{n/b}) Pi, a Monarch matrix
    # once the stride permutation Pi is undone; F_n itself is far from Monarch.
    n, b = 64, 8
    F = torch.fft.fft(torch.eye(n, dtype=torch.complex128), dim=0)
    stride = torch.arange(n).reshape(b, n // b).T.flatten()
    FP = F[:, stride]

    def err(A):
        return float(torch.linalg.norm(A - monarch_project(A, b).to_dense()) / A.norm())

    assert err(FP) < 1e-12 and err(F) > 0.5  # measured 4.5e-16 and 0.94


@pytest.mark.parametrize("n, b", [(16, 4), (32, 8)])
def test_butterfly_without_permutation_is_monarch(n, b):
    # The first floor(L/2) levels act inside blocks of n/b (R); the others, for each value
    # of the low bits, mix the high ones (P L P^T). Dao et al. 2022, section 3.
    B = Butterfly(randn(int(math.log2(n)), n // 2, 2, 2)).to_dense()
    assert lrkit.rel_error(B, monarch_project(B, b)) < 1e-12


def test_monarch_projection_no_worse_than_perturbations():
    A = randn(16, 16)
    P = monarch_project(A, 4)
    best = lrkit.rel_error(A, P)
    assert 0.3 < best < 1  # a random matrix is far from Monarch
    g = torch.Generator().manual_seed(0)
    for scale in (1e-3, 1e-2, 1e-1):
        for _ in range(10):
            L = P.L + scale * torch.randn(P.L.shape, generator=g, dtype=torch.float64)
            R = P.R + scale * torch.randn(P.R.shape, generator=g, dtype=torch.float64)
            assert lrkit.rel_error(A, Monarch(L, R)) >= best


def test_monarch_matches_the_papers_reference_multiply():
    # blockdiag_butterfly_multiply_reference(x, w1_bfly=R, w2_bfly=L), "version 2", of the
    # Monarch paper's code (HazyResearch/fly), with rows of x as vectors.
    M = random_monarch(24, 24, 4)
    x = randn(5, 24, seed=3)
    k, q, p = M.R.shape
    l, s, r = M.L.shape
    out1 = torch.einsum("kqp,bkp->bkq", M.R, x.reshape(5, k, p))
    out1 = out1.reshape(5, k * q).reshape(5, r, l).transpose(-1, -2)  # 'b (r l) -> b l r'
    ref = torch.einsum("lsr,blr->bsl", M.L, out1).reshape(5, s * l)
    torch.testing.assert_close((M @ x.T).T, ref)
    torch.testing.assert_close(x @ M.to_dense().T, ref)


def test_monarch_fast_product_matches_dense(device, dtype):
    M = random_monarch(12, 18, 3, dtype=dtype, device=device)
    D = M.to_dense()
    for X in (randn(18, seed=2), randn(18, 7, seed=3), randn(2, 3, 18, 7, seed=4)):
        X = X.to(device=device, dtype=dtype)
        assert_close(M @ X, D @ X, dtype)
    for Y in (randn(12, seed=5), randn(7, 12, seed=6), randn(2, 7, 12, seed=7)):
        Y = Y.to(device=device, dtype=dtype)
        assert_close(Y @ M, Y @ D, dtype)


def test_monarch_fast_and_dense_agree_on_gradients(device, dtype):
    M = random_monarch(16, 16, 4, dtype=dtype, device=device)
    X = randn(16, 5, seed=2, dtype=dtype, device=device)
    check_grads(monarch_matmul, lambda L, R, X: monarch_dense(L, R) @ X, [M.L, M.R, X], dtype)
    Y = randn(5, 16, seed=3, dtype=dtype, device=device)
    check_grads(monarch_rmatmul, lambda L, R, Y: Y @ monarch_dense(L, R), [M.L, M.R, Y], dtype)


def test_monarch_storage_and_repr():
    M = monarch_project(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), 8)
    assert M.dtype == torch.float32
    assert M.num_params == 64 * 64 // 8 + 64 * 8 == 2 * 64**1.5
    assert M.compression_ratio() == pytest.approx(4.0)
    assert "nblocks=8" in repr(M)


@pytest.mark.parametrize(
    "shape, nblocks, match",
    [
        ((16, 16), 3, r"nblocks \(=3\) must divide the number of rows of A, 16"),
        ((16, 12), 8, r"nblocks \(=8\) must divide the number of columns of A, 12"),
        ((16, 16), 0, r"nblocks \(=0\) must be >= 1"),
    ],
)
def test_monarch_bad_input(shape, nblocks, match):
    with pytest.raises(ValueError, match=match):
        monarch_project(randn(*shape), nblocks)


def test_monarch_bad_input_more():
    A = randn(16, 16)
    A[3, 4] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        monarch_project(A, 4)
    with pytest.raises(TypeError, match=r"nblocks must be an int; got 4.0 \(float\)"):
        monarch_project(randn(16, 16), 4.0)
    with pytest.raises(ValueError, match=r"L must have shape \(m/b, b, b\) = \(4, 4, 4\)"):
        Monarch(randn(4, 2, 2), randn(4, 4, 4))


# -- Butterfly ---------------------------------------------------------------------------------
def test_bit_reversal_permutation():
    assert bit_reversal_permutation(8).tolist() == [0, 4, 2, 6, 1, 5, 3, 7]
    p = bit_reversal_permutation(64)
    assert torch.equal(p[p], torch.arange(64))  # its own inverse


@pytest.mark.parametrize("n", [2, 8, 64, 256])
def test_fft_butterfly_is_the_dft(n, device, dtype):
    F = Butterfly.fft(n, dtype=COMPLEX[dtype], device=device)
    assert F.shape == (n, n) and F.device.type == device.type and F.bit_reversal
    x = randn(n, 3, dtype=dtype, device=device)
    z = torch.complex(x, randn(n, 3, dtype=dtype, device=device, seed=1))
    for v in (x, z, x[:, 0], z[:, 0]):
        assert_close(F @ v, torch.fft.fft(v, dim=0), dtype, scale=10 * math.log2(n))
    eye = torch.eye(n, dtype=COMPLEX[dtype], device=device)
    assert_close(F.to_dense(), torch.fft.fft(eye, dim=0), dtype, scale=10 * math.log2(n))


@pytest.mark.parametrize("n", [2, 16, 128])
def test_hadamard_butterfly_is_scipy_hadamard(n, device, dtype):
    H = Butterfly.hadamard(n, dtype=dtype, device=device)
    assert not H.bit_reversal and H.dtype == dtype
    H_ref = torch.from_numpy(scipy.linalg.hadamard(n)).to(device=device, dtype=dtype)
    assert torch.equal(H.to_dense(), H_ref)  # +-1 entries: exact, not approximate
    x = randn(n, 4, dtype=dtype, device=device)
    assert_close(H @ x, H_ref @ x, dtype)


@pytest.mark.parametrize("bit_reversal", [False, True])
@pytest.mark.parametrize("complex_", [False, True])
def test_butterfly_fast_and_dense_agree_on_outputs_and_gradients(
    bit_reversal, complex_, device, dtype
):
    tw = randn(4, 8, 2, 2, dtype=dtype, device=device)
    X = randn(16, 5, dtype=dtype, device=device, seed=1)
    if complex_:
        tw = torch.complex(tw, randn(4, 8, 2, 2, dtype=dtype, device=device, seed=2))
        X = X.to(tw.dtype)

    def dense(tw, X):
        return butterfly_dense(tw, bit_reversal) @ X

    def fast(tw, X):
        return butterfly_matmul(tw, X, bit_reversal)

    check_grads(fast, dense, [tw, X], dtype)
    B = Butterfly(tw, bit_reversal=bit_reversal)
    D = B.to_dense()
    for Y in (X[:, 0], X.T, X.T.reshape(1, 5, 16)):
        assert_close(Y @ B, Y @ D, dtype)
    assert_close(B @ X.reshape(1, 16, 5), (D @ X).reshape(1, 16, 5), dtype)


@pytest.mark.parametrize("bit_reversal", [False, True])
def test_butterfly_project_exact_on_butterfly_input(bit_reversal, device, dtype):
    B = Butterfly(randn(5, 16, 2, 2, dtype=dtype, device=device), bit_reversal=bit_reversal)
    A = B.to_dense()
    P = butterfly_project(A, bit_reversal=bit_reversal)
    assert P.device == A.device and P.dtype == dtype
    assert lrkit.rel_error(A, P) < 100 * RTOL[dtype]
    F = Butterfly.fft(32, dtype=COMPLEX[dtype], device=device).to_dense()
    err = torch.linalg.norm(butterfly_project(F, bit_reversal=True).to_dense() - F) / F.norm()
    assert float(err) < 100 * RTOL[dtype]


def test_hadamard_is_not_a_butterfly_with_the_bit_reversal():
    # The projection is exact on every butterfly, so a nonzero error proves it is not one.
    H = scipy.linalg.hadamard(16).astype(np.float64)
    assert lrkit.rel_error(H, butterfly_project(H)) < 1e-12
    assert lrkit.rel_error(H, butterfly_project(H, bit_reversal=True)) > 0.1


@pytest.mark.parametrize("eps", [1e-6, 1e-4, 1e-2])
def test_butterfly_project_is_stable_near_a_butterfly(eps):
    # Not the best butterfly in general (Zheng et al. bound it by a constant times the best
    # error): on a butterfly plus noise of relative size eps the error stays of order eps.
    B = Butterfly(randn(4, 8, 2, 2)).to_dense()
    N = randn(16, 16, seed=1)
    A = B + eps * N * B.norm() / N.norm()
    err = lrkit.rel_error(A, butterfly_project(A))
    assert err < 2 * eps  # measured 0.81 eps
    assert lrkit.rel_error(A, butterfly_project(A, bit_reversal=True)) > 0.1  # wrong model: 0.30


def test_butterfly_fit_recovers_hadamard_16():
    H = scipy.linalg.hadamard(16).astype(np.float64)
    B = butterfly_fit(H, n_steps=500, lr=0.02, seed=0)
    assert B.history.shape == (501,) and B.history[0] > 0.5
    assert lrkit.rel_error(H, B) == pytest.approx(float(B.history.min()))
    # Adam has no stopping guarantee to a tolerance: 1e-6 asks for recovery (six orders below
    # the start), not for a rounding level; measured 2e-11 to 2.3e-10 at seeds 0-3.
    assert lrkit.rel_error(H, B) < 1e-6
    again = butterfly_fit(H, n_steps=500, lr=0.02, seed=0)
    assert torch.equal(again.twiddle, B.twiddle)  # same seed, same result


def test_butterfly_fit_needs_the_permutation_for_the_dft():
    F = torch.fft.fft(torch.eye(16, dtype=torch.complex128), dim=0)
    with_p = butterfly_fit(F, n_steps=400, lr=0.02, seed=0, bit_reversal=True)
    without = butterfly_fit(F, n_steps=400, lr=0.02, seed=0, bit_reversal=False)
    assert with_p.twiddle.is_complex()
    # Measured at seeds 0-3: 2e-9 to 4e-9 with P; 0.866 without, a floor of the structure.
    assert with_p.history.min() < 1e-4 and without.history.min() > 0.3


def test_real_butterfly_applied_to_complex_vector():
    H = Butterfly.hadamard(16, dtype=torch.float64)
    z = torch.complex(randn(16), randn(16, seed=1))
    torch.testing.assert_close(H @ z, H.to_dense().to(z.dtype) @ z)
    torch.testing.assert_close(z @ H, z @ H.to_dense().to(z.dtype))


def test_butterfly_storage_counts_complex_honestly():
    F = Butterfly.fft(64)  # complex64: 6 levels of 32 pairs of 2 x 2
    assert F.num_params == 2 * 6 * 32 * 4
    assert F.nbits == 64 * 6 * 32 * 4 and F.nbits_at(16) == 16 * F.num_params
    assert F.compression_ratio() == pytest.approx(64 * 64 / (6 * 32 * 4))
    assert F.to(torch.float64).dtype == torch.complex128
    H = Butterfly.hadamard(64)
    assert H.num_params == 6 * 32 * 4 and H.nbits == 32 * H.num_params
    assert H.to(torch.float64).dtype == torch.float64
    assert "levels=6" in repr(F) and "bit_reversal=True" in repr(F)


@pytest.mark.parametrize("n", [12, 1, 0, 100])
def test_butterfly_bad_size(n):
    exc = ValueError
    with pytest.raises(exc, match=rf"n \(={n}\) must be (a power of two|>= 2)"):
        Butterfly.fft(n)
    if n > 1:
        with pytest.raises(exc, match=rf"n \(={n}\) must be a power of two"):
            butterfly_fit(np.eye(n), n_steps=1)


def test_butterfly_bad_input():
    with pytest.raises(ValueError, match=r"must be square"):
        butterfly_project(randn(8, 4))
    A = randn(8, 8).to(torch.complex128)
    A[1, 1] = complex(math.nan, 0)
    with pytest.raises(ValueError, match="NaN"):
        butterfly_fit(A, n_steps=1)
    with pytest.raises(ValueError, match=r"twiddle must have shape \(L, n/2, 2, 2\)"):
        Butterfly(randn(3, 4, 2))
    with pytest.raises(ValueError, match=r"twiddle holds 3 levels, so n = 2\^3 = 8"):
        Butterfly(randn(3, 5, 2, 2))
    with pytest.raises(ValueError, match=r"lr \(=0\) must be > 0"):
        butterfly_fit(np.eye(4), lr=0)
    with pytest.raises(ValueError, match="all zeros"):
        butterfly_fit(np.zeros((4, 4)), n_steps=1)


def test_operator_product_keeps_gradients_to_x():
    from lrkit.structured import Monarch

    g = torch.Generator().manual_seed(0)
    M = Monarch(torch.randn(4, 4, 4, generator=g), torch.randn(4, 4, 4, generator=g))
    X = torch.randn(16, 3, generator=g, requires_grad=True)
    (M @ X).sum().backward()
    torch.testing.assert_close(X.grad, M.to_dense().T @ torch.ones(16, 3))


@pytest.mark.parametrize(("dtype", "k"), EXTREME_SCALES, ids=SCALE_IDS)
def test_structured_fits_at_extreme_scales(dtype, k):
    # butterfly_fit fits A / 2**e (largest entry in [1/2, 1)) and scales back, so its loss
    # neither overflows nor underflows and c * A gives c times the fit of A (c = 2**k).
    X = torch.from_numpy(np.random.default_rng(0).standard_normal((8, 8)))
    A, A1 = at_scale(X, dtype, k)
    for f in (
        lambda a: lrkit.butterfly_fit(a, n_steps=5, seed=0),
        lambda a: lrkit.butterfly_project(a),
        lambda a: lrkit.kron_approx(a, (2, 4), rank=2),
        lambda a: lrkit.monarch_project(a, 2),
    ):
        assert_scaled(f(A).to_dense(), f(A1).to_dense(), k, dtype)
