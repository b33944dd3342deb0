"""Input checks, in one place.

Every public function of lrkit passes its input through here, so a user sees the same
clear message everywhere: the message names the offending value and the bound it broke,
e.g. ``rank (=70) must be <= min(m, n) = 64``. Library code raises; it never asserts.
"""

from __future__ import annotations

import numbers
import os
import sys
import warnings

import numpy as np
import torch

__all__ = [
    "as_matrix",
    "as_tensor",
    "check_bits",
    "check_bool",
    "check_choice",
    "check_device",
    "check_dtype",
    "check_fraction",
    "check_int",
    "check_int_tuple",
    "check_nonneg_int",
    "check_positive_int",
    "check_power_of_two",
    "check_rank",
    "check_real",
    "check_seed",
    "check_shape",
    "is_int",
    "warn_adjusted",
]

# float32 and float64 are computed as they are; everything narrower is computed in float32.
_KEEP_DTYPES = (torch.float32, torch.float64)


def as_tensor(
    x,
    name: str = "A",
    *,
    min_ndim: int = 1,
    allow_empty: bool = False,
    keep_grad: bool = False,
    allow_complex: bool = False,
) -> torch.Tensor:
    """Return ``x`` as a real floating-point torch tensor, refusing what lrkit cannot handle.

    numpy arrays become torch tensors on the CPU (a copy is taken, so the caller's array is
    never touched); torch tensors stay on their device. float32 and float64 keep their dtype;
    integer, boolean and half-precision input is promoted to float32. Complex input, objects
    that are not numbers, NaN and Inf are refused with a ``TypeError`` or ``ValueError``.
    Tensors are detached from autograd unless ``keep_grad=True`` (for operands and factors
    that a caller may differentiate through). With ``allow_complex=True`` (the structured
    families, whose matrices are often complex, like the DFT) complex input stays complex:
    complex64 and complex128 as they are, complex32 as complex64.
    """
    if isinstance(x, torch.Tensor):
        t = x if keep_grad else x.detach()
    elif isinstance(x, np.ndarray | np.generic | numbers.Number | list | tuple):
        arr = np.asarray(x)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
        ):
            raise TypeError(f"{name} must hold numbers; got an array of dtype {arr.dtype}")
        if np.iscomplexobj(arr) and not allow_complex:
            raise TypeError(
                f"{name} is complex ({arr.dtype}); lrkit's factorizations support real input only"
            )
        # A copy in native byte order: torch refuses big-endian ('>f8') arrays.
        t = torch.from_numpy(np.array(arr, dtype=arr.dtype.newbyteorder("="), copy=True))
    else:
        raise TypeError(f"{name} must be a numpy.ndarray or a torch.Tensor; got {type(x).__name__}")

    if t.is_complex():
        if not allow_complex:
            raise TypeError(
                f"{name} is complex ({t.dtype}); lrkit's factorizations support real input only"
            )
        # the real view carries the same checks (dimension, emptiness, finiteness)
        as_tensor(
            torch.view_as_real(t.detach()), name, min_ndim=min_ndim + 1, allow_empty=allow_empty
        )
        return t if t.dtype in (torch.complex64, torch.complex128) else t.to(torch.complex64)
    if t.dtype not in _KEEP_DTYPES:
        t = t.to(torch.float32)
    if t.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s); got {t.ndim}-D input of "
            f"shape {tuple(t.shape)}"
        )
    if t.numel() == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); it needs at least one entry")
    # A NaN or Inf entry makes the sum non-finite, so a finite sum proves all entries are
    # finite at the cost of one fast reduction; only a non-finite sum (which finite entries
    # can also give, by overflow) needs the entry-by-entry check.
    if (
        t.numel()
        and not t.is_meta
        and not bool(torch.isfinite(t.sum()))
        and not bool(torch.isfinite(t).all())
    ):
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(
            f"{name} contains {n_bad} NaN or Inf value(s); lrkit refuses non-finite input"
        )
    return t


def as_matrix(
    x, name: str = "A", *, batched: bool = False, allow_complex: bool = False
) -> torch.Tensor:
    """Like :func:`as_tensor`, for a 2-D matrix, or a stack ``(..., m, n)`` if ``batched``."""
    t = as_tensor(x, name, min_ndim=0, allow_complex=allow_complex)
    if t.ndim < 2 or (t.ndim > 2 and not batched):
        need = "a 2-D matrix or a stack of shape (..., m, n)" if batched else "a 2-D matrix"
        raise ValueError(f"{name} must be {need}; got {t.ndim}-D input of shape {tuple(t.shape)}")
    return t


def is_int(value) -> bool:
    """An integer, Python's or numpy's, but not a bool (``True`` is not a rank)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _type_name(value) -> str:
    return type(value).__name__


def _interval(low, high, low_open: bool = False, high_open: bool = False) -> str:
    """The bound in words: ``>= 1``, ``> 0``, ``<= 16`` or ``in [1, 16]``."""
    if high is None:
        return f"{'>' if low_open else '>='} {low}"
    if low is None:
        return f"{'<' if high_open else '<='} {high}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def check_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` must be an integer (numpy's too, never a bool) with ``low <= value <= high``.

    Either bound may be None (no bound). Returns a plain ``int``.
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an int; got {value!r} ({_type_name(value)})")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} (={value}) must be {_interval(low, high)}")
    return value


def check_positive_int(value, name: str, high: int | None = None) -> int:
    """``value`` must be an integer >= 1 (and <= ``high`` if given)."""
    return check_int(value, name, 1, high)


def check_nonneg_int(value, name: str, high: int | None = None) -> int:
    """``value`` must be an integer >= 0 (and <= ``high`` if given)."""
    return check_int(value, name, 0, high)


def check_real(
    value,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` must be a finite real number (not a bool) in the interval from ``low`` to
    ``high``, each end closed unless ``low_open``/``high_open``. Returns a plain ``float``."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a real number; got {value!r} ({_type_name(value)})")
    given, value = value, float(value)
    bound = _interval(low, high, low_open, high_open) if (low, high) != (None, None) else ""
    if not np.isfinite(value):
        raise ValueError(f"{name} (={given}) must be a finite number {bound}".rstrip())
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ValueError(f"{name} (={given}) must be {bound}")
    return value


def check_fraction(value, name: str, *, low_open: bool = True, high_closed: bool = True) -> float:
    """``value`` must be a real number in (0, 1] (bounds adjustable)."""
    return check_real(value, name, 0, 1, low_open=low_open, high_open=not high_closed)


def check_rank(rank, shape, name: str = "rank") -> int:
    """``rank`` must be an integer with 1 <= rank <= min(m, n) of the last two dims of ``shape``."""
    rank = check_positive_int(rank, name)
    m, n = shape[-2], shape[-1]
    if rank > min(m, n):
        raise ValueError(
            f"{name} (={rank}) must be <= min(m, n) = {min(m, n)} for shape {tuple(shape)}"
        )
    return rank


def check_bits(bits, name: str = "bits") -> int:
    """Quantization widths: an integer in 1..16."""
    return check_int(bits, name, 1, 16)


def check_power_of_two(value, name: str) -> int:
    """An integer 2, 4, 8, ... (the size of a butterfly)."""
    value = check_int(value, name, 2)
    if value & (value - 1):
        raise ValueError(f"{name} (={value}) must be a power of two >= 2 (2, 4, 8, ...)")
    return value


def check_bool(value, name: str) -> bool:
    """``value`` must be a bool (numpy's too); 0 and 1 are not flags."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a bool; got {value!r} ({_type_name(value)})")
    return bool(value)


def check_choice(value, name: str, choices):
    """``value`` must be one of ``choices``: a TypeError if it has none of their types (a bool
    is never an int here), a ValueError naming every choice if it has but is none of them."""
    listed = ", ".join(map(repr, choices))
    kinds = {str if isinstance(c, str) else int if is_int(c) else type(c) for c in choices}
    ok_type = isinstance(value, str) if str in kinds else False
    ok_type = ok_type or (int in kinds and is_int(value))
    ok_type = ok_type or any(k not in (str, int) and isinstance(value, k) for k in kinds)
    if not ok_type:
        raise TypeError(f"{name} must be one of {listed}; got {value!r} ({_type_name(value)})")
    if value not in choices:
        raise ValueError(f"{name} (={value!r}) must be one of {listed}")
    return int(value) if is_int(value) else value


def check_int_tuple(value, name: str, length: int | None = None, low: int = 1) -> tuple:
    """An integer (the same for every entry; needs ``length``) or a sequence of integers
    ``>= low``, each checked as ``name[i]``; with ``length``, exactly that many."""
    if is_int(value):
        value = check_int(value, name, low)
        return (value,) * length if length is not None else (value,)
    if not isinstance(value, tuple | list):  # torch.Size is a tuple
        raise TypeError(
            f"{name} must be an int or a tuple of ints; got {value!r} ({_type_name(value)})"
        )
    if length is not None and len(value) != length:
        raise ValueError(f"{name} (={tuple(value)!r}) must have {length} entries; got {len(value)}")
    return tuple(check_int(v, f"{name}[{i}]", low) for i, v in enumerate(value))


def check_shape(value, name: str = "shape", length: int | None = None) -> tuple[int, ...]:
    """A matrix shape: a tuple of positive integers, at least two (or exactly ``length``)."""
    if not isinstance(value, tuple | list):  # torch.Size is a tuple
        raise TypeError(f"{name} must be a tuple of ints; got {value!r} ({_type_name(value)})")
    need = f"{length}" if length is not None else "at least 2"
    if (length is not None and len(value) != length) or len(value) < 2:
        raise ValueError(f"{name} (={tuple(value)!r}) must have {need} entries; got {len(value)}")
    return tuple(check_int(v, f"{name}[{i}]", 1) for i, v in enumerate(value))


def check_dtype(value, name: str, kinds=("float",)) -> torch.dtype:
    """A ``torch.dtype`` of one of ``kinds``: "float" (floating point), "complex"."""
    want = f"a {' or '.join(kinds)} torch.dtype"
    if not isinstance(value, torch.dtype):
        raise TypeError(f"{name} must be {want}; got {value!r} ({_type_name(value)})")
    kind = "float" if value.is_floating_point else "complex" if value.is_complex else "other"
    if kind not in kinds:
        raise ValueError(f"{name} (={value}) must be {want}")
    return value


def check_device(value, name: str = "device") -> torch.device | None:
    """None, a ``torch.device``, or what names one (``"cpu"``, ``"cuda:0"``, a CUDA index)."""
    if value is None or isinstance(value, torch.device):
        return value
    if not isinstance(value, str) and not is_int(value):
        raise TypeError(f"{name} must be a torch.device or a str; got {value!r}")
    try:
        return torch.device(value)
    except RuntimeError as err:
        raise ValueError(f"{name} (={value!r}) is not a device: {err}") from None


def check_seed(value, name: str = "seed"):
    """``None``, an integer >= 0 or a ``torch.Generator``; the generator is made by
    :func:`lrkit.core._random.make_generator`, on the data's device."""
    if value is None or isinstance(value, torch.Generator):
        return value
    if not is_int(value):
        raise TypeError(
            f"{name} must be an int, a torch.Generator or None; got {value!r} ({_type_name(value)})"
        )
    return check_int(value, name, 0)


def warn_adjusted(message: str) -> None:
    """Warn that lrkit changed a value on its own (e.g. a rank clipped to the matrix size).

    The warning points at the first caller outside lrkit, so the user sees their own line.
    """
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # lrkit/
    frame, level = sys._getframe(1), 2  # level 2 is our caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package_dir):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)
