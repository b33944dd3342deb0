"""Uniform quantization: rounding error, unbiasedness, exact bit counts, layouts, checks."""

import math

import numpy as np
import pytest
import torch

from lrkit.core.quant import QuantizedMatrix, _as_groups, _from_groups, quant_nbits, quantize

from conftest import EXTREME_SCALES, SCALE_IDS, assert_scaled, at_scale

LAYOUTS = [
    ("tensor", 1, None),
    ("vector", 1, None),
    ("vector", 0, None),
    ("group", 1, 4),
    ("group", 0, 3),
]


def data(m=7, n=10, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(m, n, generator=g, dtype=torch.float64) * 3 + 1).to(
        device=device, dtype=dtype
    )


@pytest.mark.parametrize("scales, axis, group_size", LAYOUTS)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_round_to_nearest_within_half_a_step(scales, axis, group_size, symmetric, bits, device):
    X = data(device=device)
    Q = quantize(X, bits, scales=scales, axis=axis, group_size=group_size, symmetric=symmetric)
    assert Q.shape == X.shape and Q.device.type == device.type
    # the step of each entry's own range, laid out like X
    ones = torch.ones_like(_as_groups(Q.codes, scales, axis, group_size), dtype=X.dtype)
    step = ones * Q.step  # (granules, g)
    step = _from_groups(step, tuple(X.shape), scales, axis, group_size)
    err = (Q.to_dense() - X).abs()
    # Codes are rounded against the stored (float32) lo and step, so inside a range the error
    # is at most half a step; at its ends the stored lo and top level can miss the data's min
    # and max by eps32/2 |lo| and ~eps32 max|X| (clamped codes): 8 eps32 max|X| covers them.
    assert bool((err <= step / 2 + 8 * torch.finfo(torch.float32).eps * X.abs().max()).all())
    # codes use exactly the b-bit alphabet
    assert int(Q.codes.min()) >= 0 and int(Q.codes.max()) <= 2**bits - 1


def test_extremes_are_levels_and_more_bits_less_error():
    X = data()
    errs = []
    for bits in range(1, 9):
        Q = quantize(X, bits, symmetric=False)
        D = Q.to_dense()
        assert float(D.min()) == pytest.approx(float(X.min()))
        assert float(D.max()) == pytest.approx(float(X.max()))
        errs.append(float(torch.linalg.norm(D - X)))
    assert all(a > b for a, b in zip(errs, errs[1:], strict=False))


def test_symmetric_one_bit_is_sign_times_max():
    X = torch.tensor([[-2.0, 0.5], [1.0, -0.1]], dtype=torch.float64)
    D = quantize(X, 1).to_dense()
    torch.testing.assert_close(D, 2.0 * torch.sign(X))


def test_stochastic_rounding_is_unbiased():
    X = data(5, 6)
    mean = torch.stack(
        [quantize(X, 2, rounding="stochastic", seed=s).to_dense() for s in range(4000)]
    ).mean(0)
    step = float(quantize(X, 2).step.max())
    # Each entry's mean over 4000 draws is within 5 standard errors (std <= step / 2): one of
    # 30 entries misses that with probability < 2e-5, whatever the seeds (measured 2.9 SE).
    assert float((mean - X).abs().max()) < 5 * (step / 2) / math.sqrt(4000)
    # nearest rounding is off by up to step / 2 (0.485 step here), > 10 x the 5 SE above
    nearest = quantize(X, 2).to_dense()
    assert float((nearest - X).abs().max()) > 10 * float((mean - X).abs().max())


def test_stochastic_same_seed_same_codes():
    X = data()
    a = quantize(X, 3, rounding="stochastic", seed=5)
    b = quantize(X, 3, rounding="stochastic", seed=5)
    c = quantize(X, 3, rounding="stochastic", seed=6)
    assert torch.equal(a.codes, b.codes) and not torch.equal(a.codes, c.codes)


@pytest.mark.parametrize(
    "scales, axis, group_size, ranges",
    [
        ("tensor", 1, None, 1),
        ("vector", 1, None, 7),
        ("vector", 0, None, 10),
        ("group", 1, 4, 7 * 3),
        ("group", 0, 3, 10 * 3),
    ],
)
def test_nbits_counted_exactly(scales, axis, group_size, ranges):
    X = data(7, 10, dtype=torch.float32)
    for symmetric, per in ((True, 1), (False, 2)):
        Q = quantize(X, 3, scales=scales, axis=axis, group_size=group_size, symmetric=symmetric)
        assert Q.n_ranges == ranges
        assert Q.nbits == 7 * 10 * 3 + ranges * per * 32
        assert Q.bits_per_entry == pytest.approx(Q.nbits / 70)
        assert Q.nbits == quant_nbits(
            (7, 10), 3, scales=scales, axis=axis, group_size=group_size, symmetric=symmetric
        )
        h = quantize(
            X,
            3,
            scales=scales,
            axis=axis,
            group_size=group_size,
            symmetric=symmetric,
            scale_dtype=torch.float16,
        )
        assert h.nbits == 7 * 10 * 3 + ranges * per * 16


def test_fp16_ranges_are_the_ones_used():
    X = data() * 1.2345678
    Q = quantize(X, 4, symmetric=False, scale_dtype=torch.float16)
    assert torch.equal(Q.lo.half().double(), Q.lo) and torch.equal(Q.step.half().double(), Q.step)


def test_constant_granules_and_zero_matrix():
    X = torch.ones(3, 4, dtype=torch.float64)
    X[1] = 0.0
    for symmetric in (True, False):
        Q = quantize(X, 2, scales="vector", axis=1, symmetric=symmetric)
        torch.testing.assert_close(Q.to_dense(), X)
    torch.testing.assert_close(quantize(torch.zeros(2, 2), 3).to_dense(), torch.zeros(2, 2))


def test_protocol_matmul_to_and_repr():
    X = data()
    Q = quantize(X, 4, scales="group", group_size=4)
    g = torch.Generator().manual_seed(1)
    Y = torch.randn(10, 2, generator=g, dtype=torch.float64)
    torch.testing.assert_close(Q @ Y, Q.to_dense() @ Y)
    Z = torch.randn(2, 7, generator=g, dtype=torch.float64)
    torch.testing.assert_close(Z @ Q, Z @ Q.to_dense())
    assert Q.to(torch.float32).dtype == torch.float32
    assert Q.to(torch.float32).codes.dtype == torch.uint8  # codes are not cast
    assert "bits=4, scales='group of 4', axis=1" in repr(Q)
    assert isinstance(Q, QuantizedMatrix)
    # nbits_at re-prices the range numbers and keeps the 4-bit codes at their width
    assert Q.num_params == Q.n_ranges  # symmetric: one stored number per range
    assert Q.nbits_at(16) == 7 * 10 * 4 + Q.n_ranges * 16
    assert Q.compression_ratio(width=16) == pytest.approx(7 * 10 * 64 / Q.nbits_at(16))


def test_numpy_input_and_no_mutation():
    a = np.random.default_rng(0).standard_normal((5, 4))
    b = a.copy()
    Q = quantize(a, 8)
    assert Q.dtype == torch.float64
    np.testing.assert_array_equal(a, b)
    assert quantize(a, 16).codes.dtype == torch.int32


def test_bad_input():
    X = data()
    with pytest.raises(ValueError, match=r"bits \(=0\) must be in \[1, 16\]"):
        quantize(X, 0)
    with pytest.raises(ValueError, match=r"bits \(=17\) must be in \[1, 16\]"):
        quantize(X, 17)
    with pytest.raises(
        ValueError, match=r"scales \(='row'\) must be one of 'tensor', 'vector', 'group'"
    ):
        quantize(X, 4, scales="row")
    with pytest.raises(ValueError, match=r'scales="group" needs group_size='):
        quantize(X, 4, scales="group")
    with pytest.raises(
        ValueError, match=r"group_size \(=11\) must be <= 10, the length along axis 1"
    ):
        quantize(X, 4, scales="group", group_size=11)
    with pytest.raises(ValueError, match="group_size is only used with"):
        quantize(X, 4, group_size=2)
    with pytest.raises(ValueError, match=r"axis \(=2\) must be one of 1, 0"):
        quantize(X, 4, scales="vector", axis=2)
    with pytest.raises(ValueError, match=r"rounding \(='up'\) must be one of"):
        quantize(X, 4, rounding="up")
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize(np.array([[1.0, np.nan]]), 4)
    with pytest.raises(ValueError, match=r"scale_dtype \(=torch.int8\) must be a float torch"):
        quantize(X, 4, scale_dtype=torch.int8)
    with pytest.raises(TypeError, match=r"scale_dtype must be a float torch.dtype; got 'float16'"):
        quantize(X, 4, scale_dtype="float16")


def test_ranges_that_do_not_fit_are_refused():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4)) * 1e5  # LLM activations reach this; float16 stops at 65504
    with pytest.raises(
        ValueError, match=r"does not fit scale_dtype=torch.float16, whose largest value is 65504"
    ):
        quantize(A, 4, scale_dtype=torch.float16)
    with pytest.raises(ValueError, match=r"does not fit scale_dtype=torch.float16"):
        quantize(A, 4, scale_dtype=torch.float16, symmetric=False, scales="vector")
    q = quantize(A, 4, scale_dtype=torch.bfloat16)  # bfloat16 has float32's range
    assert bool(torch.isfinite(q.to_dense()).all())
    with pytest.raises(ValueError, match=r"does not fit scale_dtype=torch.float32"):
        quantize(A * 1e150, 4)  # float64 data, default float32 ranges
    assert bool(torch.isfinite(quantize(A * 1e150, 4, scale_dtype=torch.float64).to_dense()).all())
    # float32 data near its largest value: the rebuild lo + step * code spans 2 max|x|.
    big = torch.tensor([[3e38, -1e38], [1e37, 2e38]], dtype=torch.float32)
    with pytest.raises(ValueError, match=r"spans .* beyond the largest torch.float32 value"):
        quantize(big, 4)
    half = big / 2  # span 2 max|x| now fits: a finite answer within half a step
    q = quantize(half, 4)
    err = (q.to_dense().double() - half.double()).abs().max()
    assert err <= float(q.step.max()) / 2 * (1 + 1e-6)


@pytest.mark.parametrize(("dtype", "k"), EXTREME_SCALES, ids=SCALE_IDS)
def test_quantize_at_extreme_scales(dtype, k):
    # Codes are scale-free and ranges scale exactly (powers of two), unless the ranges fall
    # below scale_dtype's smallest normal number: then they would keep few bits or none
    # (1e-170 stored as float32 is 0), and quantize refuses.
    X = torch.from_numpy(np.random.default_rng(0).standard_normal((6, 5)))
    A, A1 = at_scale(X, dtype, k)
    with pytest.raises(ValueError, match="scale_dtype=torch.float16"):  # 6e-5..65504 only
        quantize(A, 4, scale_dtype=torch.float16)
    if float(A.abs().max()) < torch.finfo(dtype).tiny:  # float32 at 1e-40: subnormal
        with pytest.raises(ValueError, match="below the smallest normal number of scale_dtype"):
            quantize(A, 4, scale_dtype=dtype)
        return
    q, q1 = quantize(A, 4, scale_dtype=dtype), quantize(A1, 4, scale_dtype=dtype)
    assert torch.equal(q.codes, q1.codes)
    assert_scaled(q.to_dense(), q1.to_dense(), k, dtype)
