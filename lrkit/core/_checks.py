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
    "as_tensor",
    "as_matrix",
    "check_rank",
    "check_positive_int",
    "check_fraction",
    "check_bits",
    "check_choice",
    "warn_adjusted",
]

# float32 and float64 are computed as they are; everything narrower is computed in float32.
_KEEP_DTYPES = (torch.float32, torch.float64)


def as_tensor(
    x, name: str = "A", *, min_ndim: int = 1, allow_empty: bool = False, keep_grad: bool = False
) -> torch.Tensor:
    """Return ``x`` as a real floating-point torch tensor, refusing what lrkit cannot handle.

    numpy arrays become torch tensors on the CPU (a copy is taken, so the caller's array is
    never touched); torch tensors stay on their device. float32 and float64 keep their dtype;
    integer, boolean and half-precision input is promoted to float32. Complex input, objects
    that are not numbers, NaN and Inf are refused with a ``TypeError`` or ``ValueError``.
    Tensors are detached from autograd unless ``keep_grad=True`` (for operands and factors
    that a caller may differentiate through).
    """
    if isinstance(x, torch.Tensor):
        t = x if keep_grad else x.detach()
    elif isinstance(x, np.ndarray | np.generic | numbers.Number | list | tuple):
        arr = np.asarray(x)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
        ):
            raise TypeError(f"{name} must hold numbers; got an array of dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise TypeError(
                f"{name} is complex ({arr.dtype}); lrkit's factorizations support real input only"
            )
        # A copy in native byte order: torch refuses big-endian ('>f8') arrays.
        t = torch.from_numpy(np.array(arr, dtype=arr.dtype.newbyteorder("="), copy=True))
    else:
        raise TypeError(f"{name} must be a numpy.ndarray or a torch.Tensor; got {type(x).__name__}")

    if t.is_complex():
        raise TypeError(
            f"{name} is complex ({t.dtype}); lrkit's factorizations support real input only"
        )
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
    if t.numel() and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(
            f"{name} contains {n_bad} NaN or Inf value(s); lrkit refuses non-finite input"
        )
    return t


def as_matrix(x, name: str = "A", *, batched: bool = False) -> torch.Tensor:
    """Like :func:`as_tensor`, for a 2-D matrix, or a stack ``(..., m, n)`` if ``batched``."""
    t = as_tensor(x, name, min_ndim=0)
    if t.ndim < 2 or (t.ndim > 2 and not batched):
        need = "a 2-D matrix or a stack of shape (..., m, n)" if batched else "a 2-D matrix"
        raise ValueError(f"{name} must be {need}; got {t.ndim}-D input of shape {tuple(t.shape)}")
    return t


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(value, name: str) -> int:
    """``value`` must be an integer >= 1."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} (={value}) must be >= 1")
    return int(value)


def check_rank(rank, shape, name: str = "rank") -> int:
    """``rank`` must be an integer with 1 <= rank <= min(m, n) of the last two dims of ``shape``."""
    rank = check_positive_int(rank, name)
    m, n = shape[-2], shape[-1]
    if rank > min(m, n):
        raise ValueError(
            f"{name} (={rank}) must be <= min(m, n) = {min(m, n)} for shape {tuple(shape)}"
        )
    return rank


def check_fraction(value, name: str, *, low_open: bool = True, high_closed: bool = True) -> float:
    """``value`` must be a real number in (0, 1] (bounds adjustable)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value <= 1 if high_closed else value < 1
    if not (low_ok and high_ok) or np.isnan(value):
        interval = ("(" if low_open else "[") + "0, 1" + ("]" if high_closed else ")")
        raise ValueError(f"{name} (={value}) must be in {interval}")
    return value


def check_bits(bits, name: str = "bits") -> int:
    """Quantization widths: an integer in 1..16."""
    if not _is_int(bits):
        raise TypeError(f"{name} must be an integer; got {bits!r} ({type(bits).__name__})")
    if not 1 <= bits <= 16:
        raise ValueError(f"{name} (={bits}) must be between 1 and 16")
    return int(bits)


def check_choice(value, name: str, choices) -> str:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} (={value!r}) must be one of {', '.join(map(repr, choices))}")
    return value


def warn_adjusted(message: str) -> None:
    """Warn that lrkit changed a value on its own (e.g. a rank clipped to the matrix size).

    The warning points at the first caller outside lrkit, so the user sees their own line.
    """
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # lrkit/
    frame, level = sys._getframe(1), 2  # level 2 is our caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package_dir):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)
