"""Every input check raises a clear error naming the value and the bound."""

import math

import numpy as np
import pytest
import torch

import lrkit
from lrkit.core import _checks


def test_numpy_becomes_tensor_and_is_copied():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = _checks.as_tensor(a)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    t[0, 0] = 100.0
    assert a[0, 0] == 0.0  # the caller's array is untouched


@pytest.mark.parametrize(
    "dtype_in, dtype_out",
    [
        (np.float32, torch.float32),
        (np.float64, torch.float64),
        (np.uint8, torch.float32),
        (np.int64, torch.float32),
        (np.float16, torch.float32),
        (np.bool_, torch.float32),
    ],
)
def test_dtype_policy(dtype_in, dtype_out):
    assert _checks.as_tensor(np.ones((2, 2), dtype=dtype_in)).dtype == dtype_out


def test_half_and_bfloat16_tensors_computed_in_float32():
    assert _checks.as_tensor(torch.ones(2, 2, dtype=torch.float16)).dtype == torch.float32
    assert _checks.as_tensor(torch.ones(2, 2, dtype=torch.bfloat16)).dtype == torch.float32


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_refused(bad):
    a = np.ones((4, 3))
    a[1, 2] = bad
    with pytest.raises(ValueError, match=r"A contains 1 NaN or Inf"):
        lrkit.truncated_svd(a, 1)
    with pytest.raises(ValueError, match="NaN or Inf"):
        lrkit.truncated_svd(torch.from_numpy(a), 1)


def test_complex_refused():
    with pytest.raises(TypeError, match="complex"):
        lrkit.truncated_svd(np.ones((3, 3), dtype=np.complex128), 1)
    with pytest.raises(TypeError, match="complex"):
        lrkit.truncated_svd(torch.ones(3, 3, dtype=torch.complex64), 1)


def test_non_numeric_refused():
    with pytest.raises(TypeError, match="must hold numbers; got an array of dtype <U1"):
        lrkit.truncated_svd(np.array([["a", "b"], ["c", "d"]]), 1)
    with pytest.raises(TypeError, match="dtype object"):
        lrkit.truncated_svd(np.array([[1, None], [2, 3]], dtype=object), 1)
    with pytest.raises(TypeError, match="numpy.ndarray or a torch.Tensor; got str"):
        lrkit.truncated_svd("not a matrix", 1)


@pytest.mark.parametrize(
    "shape, msg",
    [
        ((), r"must be a 2-D matrix or a stack of shape \(..., m, n\); got 0-D"),
        ((5,), r"got 1-D input of shape \(5,\)"),
        ((0, 3), r"A is empty \(shape \(0, 3\)\)"),
        ((3, 0), r"A is empty"),
    ],
)
def test_bad_shapes_refused(shape, msg):
    with pytest.raises(ValueError, match=msg):
        lrkit.truncated_svd(np.ones(shape), 1)


def test_3d_refused_where_2d_needed():
    with pytest.raises(ValueError, match=r"A must be a 2-D matrix; got 3-D input"):
        _checks.as_matrix(np.ones((2, 3, 4)))


@pytest.mark.parametrize(
    "rank, err, msg",
    [
        (0, ValueError, r"rank \(=0\) must be >= 1"),
        (-2, ValueError, r"rank \(=-2\) must be >= 1"),
        (7, ValueError, r"rank \(=7\) must be <= min\(m, n\) = 5"),
        (2.5, TypeError, r"rank must be an int; got 2.5 \(float\)"),
        (True, TypeError, r"rank must be an int; got True \(bool\)"),
    ],
)
def test_rank_checked(rank, err, msg):
    with pytest.raises(err, match=msg):
        lrkit.truncated_svd(np.ones((8, 5)), rank)


def test_numpy_integer_rank_accepted():
    assert lrkit.truncated_svd(np.eye(4), np.int64(2)).rank == 2


@pytest.mark.parametrize("bits, err", [(0, ValueError), (17, ValueError), (4.0, TypeError)])
def test_check_bits(bits, err):
    with pytest.raises(err, match="bits"):
        _checks.check_bits(bits)
    assert _checks.check_bits(8) == 8


def test_check_choice_and_fraction():
    with pytest.raises(ValueError, match=r"ord \(='nuc'\) must be one of 'fro', 2"):
        _checks.check_choice("nuc", "ord", ("fro", 2))
    with pytest.raises(ValueError, match=r"keep \(=1.5\) must be in \(0, 1\]"):
        _checks.check_fraction(1.5, "keep")
    with pytest.raises(ValueError, match=r"keep \(=0.0\) must be in \(0, 1\]"):
        _checks.check_fraction(0.0, "keep")
    with pytest.raises(TypeError, match="keep must be a real number"):
        _checks.check_fraction("0.5", "keep")


def test_one_rule_for_ints_reals_choices_and_tuples():
    assert _checks.check_int(np.int64(3), "k", 0, 5) == 3
    with pytest.raises(ValueError, match=r"k \(=6\) must be in \[0, 5\]"):
        _checks.check_int(6, "k", 0, 5)
    with pytest.raises(TypeError, match=r"k must be an int; got np.True_ \(bool\)"):
        _checks.check_int(np.bool_(True), "k")
    with pytest.raises(ValueError, match=r"lr \(=nan\) must be a finite number > 0"):
        _checks.check_real(math.nan, "lr", 0, low_open=True)
    with pytest.raises(TypeError, match=r"axis must be one of 1, 0; got True \(bool\)"):
        _checks.check_choice(True, "axis", (1, 0))  # True == 1, but a bool is not an axis
    with pytest.raises(TypeError, match=r"scales must be one of 'tensor'; got 0 \(int\)"):
        _checks.check_choice(0, "scales", ("tensor",))
    assert _checks.check_int_tuple(np.int32(2), "rank", 3) == (2, 2, 2)
    with pytest.raises(ValueError, match=r"rank \(=\(2, 2\)\) must have 3 entries; got 2"):
        _checks.check_int_tuple([2, 2], "rank", 3)
    assert _checks.check_shape(torch.Size([3, 4])) == (3, 4)
    with pytest.raises(ValueError, match=r"n \(=12\) must be a power of two"):
        _checks.check_power_of_two(12, "n")


def test_complex_input_only_where_allowed():
    z = np.ones((3, 2), dtype=np.complex128)
    with pytest.raises(TypeError, match="complex"):
        _checks.as_matrix(z)
    assert _checks.as_matrix(z, allow_complex=True).dtype == torch.complex128
    z[1, 1] = complex(0, np.nan)
    with pytest.raises(ValueError, match="A contains 1 NaN or Inf"):
        _checks.as_matrix(z, allow_complex=True)


def test_large_finite_values_whose_sum_overflows_are_accepted():
    a = np.full((4, 4), 3e38, dtype=np.float32)  # finite, but the float32 sum is Inf
    assert torch.equal(_checks.as_tensor(a), torch.from_numpy(a))
    a[2, 3] = np.inf
    with pytest.raises(ValueError, match="A contains 1 NaN or Inf"):
        _checks.as_tensor(a)


@pytest.mark.parametrize("order", [">", "<", "="])
@pytest.mark.parametrize("kind", ["f8", "f4", "i4", "f2"])
def test_any_byte_order_is_accepted(order, kind):
    # torch refuses big-endian arrays; as_tensor copies them into native order.
    A = np.random.default_rng(0).standard_normal((5, 4))
    native = A.astype(kind)
    t = _checks.as_tensor(native.astype(order + kind))
    assert torch.equal(t, _checks.as_tensor(native))
    S = lrkit.truncated_svd(native.astype(order + kind), 2).S
    assert torch.equal(S, lrkit.truncated_svd(native, 2).S)
