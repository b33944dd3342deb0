"""One battery of checks for every result type (the idea of scikit-learn's check_estimator).

A new result type joins with one line in CASES: a name, and a builder that takes the input
array and returns the result. Each test then checks the whole protocol of DESIGN.md on it.
"""

import io
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import lrkit
from lrkit.core.factorization import dtype_bits
from lrkit.structured import Butterfly, KroneckerSum, Monarch

from conftest import DEVICES


def _tensor(device):
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 5, 4, generator=g, dtype=torch.float64).to(device)


def _matrix(device):
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 16, generator=g, dtype=torch.float64).to(device)


# name -> (builder from the input, kind). Kind "matrix" results support @ and linear.
CASES = {
    "LowRank": (lambda A: lrkit.truncated_svd(A, 3), "matrix"),
    "LowRank-rsvd": (lambda A: lrkit.rsvd(A, 4, seed=0), "matrix"),
    "QuantizedMatrix": (lambda A: lrkit.quantize(A, 4, scales="group", group_size=5), "matrix"),
    "QuantizedMatrix-asym": (lambda A: lrkit.quantize(A, 3, symmetric=False), "matrix"),
    "QuantizedLowRank": (
        lambda A: lrkit.lplr(A, 3, bits_left=4, bits_right=8, scales="vector", seed=0),
        "matrix",
    ),
    "CUR": (lambda A: lrkit.cur(A, 3, seed=0), "matrix"),
    "Interpolative-cols": (lambda A: lrkit.interp_decomp(A, 4), "matrix"),
    "Interpolative-rows": (lambda A: lrkit.interp_decomp(A, 4, axis=0), "matrix"),
    "KroneckerSum": (lambda A: lrkit.kron_approx(A, (4, 4), rank=2), "matrix"),
    "Monarch": (lambda A: lrkit.monarch_project(A, 4), "matrix"),
    "Butterfly": (lambda A: lrkit.butterfly_project(A), "matrix"),
    "Butterfly-fft": (lambda A: Butterfly.fft(16, device=A.device), "matrix"),
    "CPTensor": (lambda A: lrkit.cp_als(A, 2, seed=0), "tensor"),
    "TuckerTensor": (lambda A: lrkit.hosvd(A, (2, 2, 2)), "tensor"),
    "TTTensor": (lambda A: lrkit.tt_svd(A, 2), "tensor"),
}
REAL_MATRIX = [n for n, (_, kind) in CASES.items() if kind == "matrix" and n != "Butterfly-fft"]


def build(name, device):
    make, kind = CASES[name]
    A = _matrix(device) if kind == "matrix" else _tensor(device)
    return A, make(A)


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def expected_nbits(fact) -> int:
    """Every stored bit, counted from the public fields, independently of the base class."""
    bits = lambda t: t.numel() * dtype_bits(t.dtype)  # noqa: E731
    if isinstance(fact, lrkit.QuantizedMatrix):
        return lrkit.core.quant.quant_nbits(
            tuple(fact.shape),
            fact.bits,
            scales=fact.scales,
            axis=fact.axis,
            group_size=fact.group_size,
            symmetric=fact.symmetric,
            scale_bits=fact.scale_bits,
        )
    if isinstance(fact, lrkit.QuantizedLowRank):
        return expected_nbits(fact.L) + expected_nbits(fact.R)
    if isinstance(fact, lrkit.LowRank):
        return sum(bits(t) for t in (fact.U, fact.S, fact.Vh))
    if isinstance(fact, lrkit.CUR):
        return sum(bits(t) for t in (fact.C, fact.U, fact.R, fact.cols, fact.rows))
    if isinstance(fact, lrkit.Interpolative):
        return bits(fact.skeleton) + bits(fact.proj) + bits(fact.perm)
    if isinstance(fact, KroneckerSum):
        return bits(fact.B) + bits(fact.C)
    if isinstance(fact, Monarch):
        return bits(fact.L) + bits(fact.R)
    if isinstance(fact, Butterfly):
        return bits(fact.twiddle)
    if isinstance(fact, lrkit.CPTensor):
        return bits(fact.weights) + sum(bits(A) for A in fact.factors)
    if isinstance(fact, lrkit.TuckerTensor):
        return bits(fact.core) + sum(bits(U) for U in fact.factors)
    if isinstance(fact, lrkit.TTTensor):
        return sum(bits(G) for G in fact.cores)
    raise AssertionError(f"add {type(fact).__name__} to expected_nbits")


def test_every_public_result_type_is_covered():
    types = {
        type(CASES[n][0](_matrix("cpu") if k == "matrix" else _tensor("cpu")))
        for n, (_, k) in CASES.items()
    }
    public = {
        obj
        for mod in (lrkit, lrkit.tensor, lrkit.structured)
        for obj in vars(mod).values()
        if isinstance(obj, type) and issubclass(obj, lrkit.Factorization)
    }
    assert public - {lrkit.Factorization} == types


@pytest.mark.parametrize("name", CASES)
def test_shape_dtype_device_and_dense(name, device):
    A, fact = build(name, device)
    dense = fact.to_dense()
    assert fact.shape == A.shape == dense.shape
    assert fact.device == dense.device and fact.device.type == device.type
    assert fact.dtype == dense.dtype
    assert fact.numel == math.prod(A.shape)
    # the rebuilt array approximates A (or is exact for the data-free FFT)
    if name != "Butterfly-fft":
        assert lrkit.rel_error(A, fact) < 1.0  # an approximation: better than zero


@pytest.mark.parametrize("name", [n for n, (_, k) in CASES.items() if k == "matrix"])
def test_products_match_the_dense_product(name, device):
    A, fact = build(name, device)
    W = fact.to_dense()
    g = torch.Generator().manual_seed(1)
    for X in (torch.randn(16, 3, generator=g, dtype=torch.float64), torch.randn(16, generator=g)):
        X = X.to(device=device, dtype=W.real.dtype)
        ref = W @ X.to(W.dtype)
        # rounding of a few products of length 16: a small multiple of eps times the scale
        tol = 64 * torch.finfo(W.real.dtype).eps * float(W.abs().max() * X.abs().max())
        torch.testing.assert_close(fact @ X, ref, rtol=0, atol=tol)
        torch.testing.assert_close(
            X.mT @ fact if X.ndim == 2 else X @ fact,
            (X.mT.to(W.dtype) if X.ndim == 2 else X.to(W.dtype)) @ W,
            rtol=0,
            atol=tol,
        )
    with pytest.raises(ValueError, match="inner dimensions 16 and 17 differ"):
        fact @ torch.ones(17, dtype=torch.float64, device=device)
    with pytest.raises(ValueError, match="inner dimensions 17 and 16 differ"):
        torch.ones(17, dtype=torch.float64, device=device) @ fact


@pytest.mark.parametrize("name", [n for n, (_, k) in CASES.items() if k == "matrix"])
def test_numpy_defers_to_the_result(name):
    A, fact = build(name, torch.device("cpu"))
    out = np.ones(16) @ fact
    assert isinstance(out, torch.Tensor) and out.shape == (16,)


@pytest.mark.parametrize("name", CASES)
def test_storage_is_counted_from_the_stored_tensors(name, device):
    _, fact = build(name, device)
    assert fact.nbits == expected_nbits(fact)
    assert fact.bits_per_entry == pytest.approx(fact.nbits / fact.numel)
    ref = dtype_bits(fact.dtype)
    assert fact.compression_ratio() == pytest.approx(fact.numel * ref / fact.nbits)
    # width re-prices the floating values only; integer tensors keep their width
    int_bits = fact.nbits - sum(
        t.numel() * bits for t, bits, _ in fact._leaves() if t.is_floating_point() or t.is_complex()
    )
    assert fact.nbits_at(16) == fact.num_params * 16 + int_bits
    assert fact.compression_ratio(width=16) == pytest.approx(fact.numel * ref / fact.nbits_at(16))
    assert fact.nbits_at(np.int64(8)) == fact.num_params * 8 + int_bits  # numpy ints accepted
    # num_params: stored real floating values, a complex value counting twice
    floats = [t for t, _, _ in fact._leaves() if t.is_floating_point() or t.is_complex()]
    assert fact.num_params == sum(t.numel() * (2 if t.is_complex() else 1) for t in floats)


@pytest.mark.parametrize("name", CASES)
def test_to_round_trip(name, device):
    _, fact = build(name, device)
    narrow = torch.complex64 if fact.dtype.is_complex else torch.float32
    wide = torch.complex128 if fact.dtype.is_complex else torch.float64
    fact = fact.to(narrow)  # from float32, a cast to float64 and back is exact
    f64 = fact.to(torch.float64)
    assert f64.dtype == wide and f64.device == fact.device
    back = f64.to(dtype=fact.dtype)
    assert back.dtype == fact.dtype and type(back) is type(fact)
    torch.testing.assert_close(back.to_dense(), fact.to_dense(), rtol=0, atol=0)
    # integer tensors (codes, indices) are never cast
    ints = [t.dtype for t, _, _ in fact._leaves() if not (t.is_floating_point() or t.is_complex())]
    assert [
        t.dtype for t, _, _ in f64._leaves() if not (t.is_floating_point() or t.is_complex())
    ] == ints
    for bad in (torch.int64, torch.bool):
        with pytest.raises(TypeError, match="must be a floating-point or complex dtype"):
            fact.to(bad)
    with pytest.raises(TypeError, match="names a dtype"):
        fact.to("float32")
    assert fact.to("cpu").device.type == "cpu"


@pytest.mark.parametrize("name", CASES)
def test_save_load_round_trip_and_repr(name):
    _, fact = build(name, torch.device("cpu"))
    buf = io.BytesIO()
    torch.save(fact, buf)
    buf.seek(0)
    loaded = torch.load(buf)  # the default, safe weights_only=True unpickler
    assert type(loaded) is type(fact) and loaded.shape == fact.shape
    assert torch.equal(loaded.to_dense(), fact.to_dense()) and loaded.nbits == fact.nbits
    text = repr(fact)
    assert text.startswith(f"{type(fact).__name__}(shape={tuple(fact.shape)}")
    assert "bits_per_entry=" in text


@pytest.mark.parametrize("name", CASES)
def test_input_unchanged(name):
    make, kind = CASES[name]
    A = _matrix("cpu") if kind == "matrix" else _tensor("cpu")
    before = A.clone()
    make(A)
    assert torch.equal(A, before)
    arr = A.numpy().copy()
    make(arr)
    assert np.array_equal(arr, A.numpy())


@pytest.mark.parametrize("name", CASES)
def test_rank_where_the_definition_has_one(name):
    _, fact = build(name, torch.device("cpu"))
    if isinstance(fact, Monarch | Butterfly | lrkit.QuantizedMatrix):
        return  # defined by blocks, levels or codes, not by a rank
    rank = fact.rank
    assert isinstance(rank, int) or (
        isinstance(rank, tuple) and all(isinstance(r, int) for r in rank)
    )


# -- the unchecked kernel behind layers -----------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", REAL_MATRIX)
def test_linear_kernel_matches_the_dense_product(name, dtype, device):
    _, fact = build(name, device)
    fact = fact.to(dtype if dtype != torch.bfloat16 else torch.float32)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 16, generator=g).to(device=device, dtype=dtype)  # (batch, seq, in)
    out = fact.linear(x)
    assert out.shape == (2, 3, 16) and out.dtype == dtype and out.device == x.device
    W = fact.to(torch.float64).to_dense()
    ref = x.double() @ W.T
    # Probabilistic rounding bound of a factored product (Higham & Mary 2019): each of a
    # few stages adds about sqrt(inner size) * eps relative to ||x|| ||W||_2; 8 stages.
    eps = torch.finfo(dtype).eps
    scale = float(torch.linalg.vector_norm(x.double()) * torch.linalg.matrix_norm(W, ord=2))
    err = float(torch.linalg.vector_norm(out.double() - ref))
    assert err <= 8 * math.sqrt(16) * eps * scale


@pytest.mark.parametrize("name", REAL_MATRIX)
def test_linear_kernel_gradients_match_the_dense_path(name):
    _, fact = build(name, torch.device("cpu"))

    def leafy(f):  # fresh leaves that require grad, for the floating parts
        return f._map(lambda t: t.detach().clone().requires_grad_(t.is_floating_point()))

    g = torch.Generator().manual_seed(3)
    x1 = torch.randn(5, 16, generator=g, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    G = torch.randn(5, 16, generator=g, dtype=torch.float64)
    f1, f2 = leafy(fact), leafy(fact)
    (f1.linear(x1) * G).sum().backward()
    (x2 @ f2.to_dense().T * G).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)
    for (a, _, field), (b, _, _) in zip(f1._leaves(), f2._leaves(), strict=True):
        if a.requires_grad:
            assert a.grad is not None, field
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12, msg=field)


def test_linear_kernel_does_not_check_or_sync():
    # NaN goes straight through (no finiteness check): the kernel is for layers, not users
    f = lrkit.truncated_svd(_matrix("cpu"), 3)
    x = torch.full((2, 16), float("nan"), dtype=torch.float64)
    assert bool(torch.isnan(f.linear(x)).all())


def test_sparse_cur_protocol():
    M = sp.random(30, 20, density=0.3, random_state=0, format="csr")
    c = lrkit.cur(M, 3, seed=0)
    assert c.is_sparse
    assert c.nbits == sum(
        t.numel() * dtype_bits(t.dtype)
        for t in (c.C.values(), c.C.crow_indices(), c.C.col_indices(), c.U)
    ) + sum(
        t.numel() * dtype_bits(t.dtype)
        for t in (c.R.values(), c.R.crow_indices(), c.R.col_indices(), c.cols, c.rows)
    )
    assert c.num_params == c.C.values().numel() + c.U.numel() + c.R.values().numel()
    X = torch.randn(20, 2, dtype=torch.float64)
    torch.testing.assert_close(c @ X, c.to_dense() @ X)


@pytest.mark.parametrize("name", REAL_MATRIX)
def test_linear_kernel_folds_the_bias_in(name):
    _, fact = build(name, torch.device("cpu"))
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 16, generator=g, dtype=torch.float64)
    b = torch.randn(16, generator=g, dtype=torch.float64)
    # the same products, with the bias added inside the last GEMM: rounding of one addition
    torch.testing.assert_close(fact.linear(x, b), fact.linear(x) + b, rtol=1e-13, atol=1e-13)


def test_batched_results_take_one_dimensional_operands_like_the_dense_stack():
    # The hostile tester's case: a vector times a stack of low-rank matrices.
    A = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 20, 16)))
    f = lrkit.truncated_svd(A, 3)
    D = f.to_dense()  # (2, 20, 16)
    v, w = torch.ones(20, dtype=torch.float64), torch.ones(16, dtype=torch.float64)
    assert (v @ f).shape == (v @ D).shape == (2, 16)
    assert (f @ w).shape == (D @ w).shape == (2, 20)
    # float64 rounding of sums of 20 and 16 terms of size ~1
    torch.testing.assert_close(v @ f, v @ D, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(f @ np.ones(16), D @ w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
def test_hadamard_honours_its_dtype_and_refuses_half(dtype):
    assert Butterfly.hadamard(8, dtype=dtype).dtype == dtype
    with pytest.raises(ValueError, match=r"dtype \(=torch.float16\) must be one of"):
        Butterfly.hadamard(8, dtype=torch.float16)
