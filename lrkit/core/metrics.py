"""How good is an approximation: relative error and PSNR."""

from __future__ import annotations

import math

import torch

from ._checks import as_tensor
from ._linalg import fro_norm
from ._params import checked
from .factorization import Factorization

__all__ = ["rel_error", "psnr"]


def _pair(A, approx) -> tuple[torch.Tensor, torch.Tensor]:
    A = as_tensor(A, "A")
    B = approx.to_dense() if isinstance(approx, Factorization) else as_tensor(approx, "approx")
    if tuple(A.shape) != tuple(B.shape):
        raise ValueError(f"shapes differ: A is {tuple(A.shape)}, approx is {tuple(B.shape)}")
    dtype = torch.promote_types(A.dtype, B.dtype)
    return A.to(dtype), B.to(device=A.device, dtype=dtype)


@checked
def rel_error(A, approx, ord: str | int = "fro") -> float:
    """Relative error ``||A - approx|| / ||A||``.

    ``approx`` is a dense array of A's shape or any lrkit factorization.
    ``ord="fro"``: Frobenius norm over all entries (any shape: matrices, stacks, tensors).
    ``ord=2``: spectral norm (largest singular value); A must be a 2-D matrix.
    Returns ``inf`` if A is zero and approx is not, ``0.0`` if both are zero.
    """
    A, B = _pair(A, approx)
    if ord == "fro":
        num, den = fro_norm(A - B), fro_norm(A)  # scaled: no overflow at 1e19 in float32
    else:
        if A.ndim != 2:
            raise ValueError(
                f"ord=2 needs a 2-D matrix; got shape {tuple(A.shape)} (loop over a batch, "
                f"or use ord='fro')"
            )
        num, den = torch.linalg.matrix_norm(A - B, ord=2), torch.linalg.matrix_norm(A, ord=2)
    num, den = float(num), float(den)
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


@checked
def psnr(image, approx, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range**2 / MSE)``.

    ``image`` is the reference (any shape: gray or color), ``approx`` a dense array of the
    same shape or a factorization. ``data_range`` is the span of possible pixel values; by
    default 255 for ``uint8`` images (numpy or torch), otherwise ``max - min`` of ``image``.
    Returns ``inf`` for a perfect reconstruction.
    """
    is_uint8 = str(getattr(image, "dtype", "")) in ("uint8", "torch.uint8")
    A, B = _pair(image, approx)
    if data_range is None:
        data_range = 255.0 if is_uint8 else float(A.max() - A.min())
    if not data_range > 0:
        raise ValueError(f"data_range (={data_range}) must be > 0")
    # 10 log10(range**2 / MSE) = 20 log10(range / RMS); the RMS through the scaled norm, so
    # neither the squares nor data_range**2 overflow (float32 images of 1e19) or underflow.
    rms = fro_norm(A - B) / math.sqrt(A.numel())
    if rms == 0.0:
        return math.inf
    return 20.0 * math.log10(data_range / rms)
