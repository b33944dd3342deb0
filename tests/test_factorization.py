"""The result protocol, on LowRank: shape, to_dense, @, storage counts, to(), repr."""

import numpy as np
import pytest
import torch

import lrkit
from lrkit.core.factorization import dtype_bits


def make(m=12, n=9, k=3, dtype=torch.float64, device="cpu", batch=()):
    g = torch.Generator().manual_seed(0)
    U = torch.randn(*batch, m, k, generator=g, dtype=torch.float64)
    S = torch.rand(*batch, k, generator=g, dtype=torch.float64) + 0.5
    Vh = torch.randn(*batch, k, n, generator=g, dtype=torch.float64)
    return lrkit.LowRank(U, S, Vh).to(device=device, dtype=dtype)


def test_shape_dtype_device_and_unpacking(device, dtype):
    f = make(dtype=dtype, device=device)
    assert f.shape == (12, 9) and f.rank == 3 and f.dtype == dtype and f.device.type == device.type
    U, S, Vh = f
    torch.testing.assert_close(f.to_dense(), U @ torch.diag(S) @ Vh)


def test_matmul_both_sides_without_rebuilding(device, dtype):
    f = make(dtype=dtype, device=device)
    D = f.to_dense()
    g = torch.Generator().manual_seed(1)  # seeded: torch's default tolerances, a fixed draw
    X = torch.randn(9, 4, generator=g, dtype=torch.float64).to(device, dtype)
    Y = torch.randn(5, 12, generator=g, dtype=torch.float64).to(device, dtype)
    torch.testing.assert_close(f @ X, D @ X)
    torch.testing.assert_close(Y @ f, Y @ D)
    x = torch.randn(9, generator=g, dtype=torch.float64).to(device, dtype)
    y = torch.randn(12, generator=g, dtype=torch.float64).to(device, dtype)
    torch.testing.assert_close(f @ x, D @ x)
    torch.testing.assert_close(y @ f, y @ D)


def test_matmul_accepts_numpy_and_returns_torch():
    f = make()
    X = np.ones((9, 2))
    out = f @ X
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, f.to_dense() @ torch.ones(9, 2, dtype=torch.float64))


def test_batched_matmul():
    f = make(batch=(4,))
    assert f.shape == (4, 12, 9)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(4, 9, 2, generator=g, dtype=torch.float64)
    Y = torch.randn(4, 5, 12, generator=g, dtype=torch.float64)
    torch.testing.assert_close(f @ X, f.to_dense() @ X)
    torch.testing.assert_close(Y @ f, Y @ f.to_dense())


def test_matmul_shape_mismatch_raises():
    with pytest.raises(ValueError, match="inner dimensions 9 and 8 differ"):
        make() @ torch.randn(8, 2, dtype=torch.float64)


def test_storage_counts():
    f = make(m=100, n=60, k=5, dtype=torch.float32)
    assert f.num_params == 5 * (100 + 60 + 1)
    assert f.nbits == f.num_params * 32
    assert f.nbits_at(16) == f.num_params * 16
    assert f.bits_per_entry == pytest.approx(f.nbits / (100 * 60))
    assert f.compression_ratio() == pytest.approx(100 * 60 * 32 / f.nbits)
    assert f.compression_ratio(ref_bits=8) == pytest.approx(100 * 60 * 8 / f.nbits)
    f64 = f.to(dtype=torch.float64)
    assert f64.nbits == 2 * f.nbits and f64.compression_ratio() == pytest.approx(
        f.compression_ratio()
    )
    with pytest.raises(ValueError, match=r"ref_bits \(=0\) must be >= 1"):
        f.compression_ratio(ref_bits=0)
    with pytest.raises(ValueError, match=r"width \(=0\) must be >= 1"):
        f.nbits_at(0)


def test_batched_storage_counts_every_matrix():
    f = make(m=10, n=8, k=2, batch=(3,), dtype=torch.float32)
    assert f.num_params == 3 * 2 * (10 + 8 + 1)
    assert f.bits_per_entry == pytest.approx(f.nbits / (3 * 10 * 8))


def test_dtype_bits():
    assert [dtype_bits(d) for d in (torch.float16, torch.float32, torch.float64, torch.int8)] == [
        16,
        32,
        64,
        8,
    ]


def test_to_returns_a_copy_and_casts(device):
    f = make()
    g = f.to(device=device, dtype=torch.float32)
    assert g.dtype == torch.float32 and g.device.type == device.type
    assert f.dtype == torch.float64  # original unchanged
    torch.testing.assert_close(g.to_dense().cpu(), f.to_dense().float())


def test_repr_is_readable():
    r = repr(make(dtype=torch.float32))
    assert r.startswith("LowRank(shape=(12, 9), rank=3, dtype=float32, device=cpu, bits_per_entry=")


def test_numpy_sees_the_dense_matrix():
    f = make()
    np.testing.assert_allclose(np.asarray(f), f.to_dense().numpy())


def test_constructor_checks_shapes():
    with pytest.raises(ValueError, match="factor shapes do not agree"):
        lrkit.LowRank(torch.ones(4, 2), torch.ones(3), torch.ones(2, 5))
    with pytest.raises(ValueError, match="batch shapes do not agree"):
        lrkit.LowRank(torch.ones(2, 4, 2), torch.ones(3, 2), torch.ones(2, 2, 5))
    with pytest.raises(ValueError, match="NaN or Inf"):
        lrkit.LowRank(torch.ones(4, 2), torch.tensor([1.0, float("nan")]), torch.ones(2, 5))


def test_constructor_promotes_to_common_dtype():
    f = lrkit.LowRank(torch.ones(4, 2), torch.ones(2, dtype=torch.float64), torch.ones(2, 5))
    assert f.U.dtype == f.S.dtype == f.Vh.dtype == torch.float64


def test_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        lrkit.Factorization().shape  # noqa: B018


def test_to_accepts_a_dtype_positionally():
    f = make()
    assert f.to(torch.float32).dtype == torch.float32
    assert f.to("cpu", torch.float32).dtype == torch.float32


def test_cast_that_overflows_warns():
    f = lrkit.LowRank(torch.ones(3, 1), torch.tensor([70000.0]), torch.ones(1, 2))
    with pytest.warns(UserWarning, match="casting to torch.float16 overflowed in S"):
        g = f.to(dtype=torch.float16)
    assert torch.isinf(g.S).all()


def test_truncate_is_the_smaller_truncated_svd():
    A = torch.randn(20, 15, dtype=torch.float64)
    full = lrkit.truncated_svd(A, 15)
    for k in (1, 4, 15):
        torch.testing.assert_close(
            full.truncate(k).to_dense(), lrkit.truncated_svd(A, k).to_dense()
        )
    with pytest.raises(ValueError, match=r"rank \(=16\) must be <= the current rank = 15"):
        full.truncate(16)


def test_compression_ratio_at_a_storage_width():
    f = make(m=100, n=60, k=5, dtype=torch.float32)
    assert f.compression_ratio(ref_bits=8, width=16) == pytest.approx(100 * 60 * 8 / f.nbits_at(16))


def test_gradients_flow_through_the_product_to_x_and_factors():
    U = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    S = torch.rand(2, dtype=torch.float64, requires_grad=True)
    Vh = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    X = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    (lrkit.LowRank(U, S, Vh) @ X).sum().backward()
    ref = [t.detach().clone().requires_grad_() for t in (U, S, Vh, X)]
    ((ref[0] * ref[1]) @ ref[2] @ ref[3]).sum().backward()
    for t, r in zip((U, S, Vh, X), ref, strict=True):
        torch.testing.assert_close(t.grad, r.grad)


def test_svd_flip_on_complex_factors():
    A = torch.randn(6, 4, dtype=torch.complex128)
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    Uf, Vf = lrkit.svd_flip(U, Vh)
    torch.testing.assert_close((Uf * S) @ Vf, A)
    top = Uf.gather(0, Uf.abs().argmax(0, keepdim=True))
    torch.testing.assert_close(top.imag, torch.zeros_like(top.imag), atol=1e-12, rtol=0)
    assert bool((top.real > 0).all())
