"""Small linear-algebra helpers shared by the methods."""

from __future__ import annotations

import math

import torch

from ._params import checked

__all__ = ["fro_norm", "lstsq", "orth_rows", "pow2_scale", "pow2_unscale", "svd_flip"]


def pow2_scale(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(x * 2**-e, e)`` with ``2**e`` the power of two just above ``max |x|`` (e = 0 for zero).

    Squaring entries (Gram matrices, sums of squares) overflows float32 from about 1e19 and
    underflows below about 1e-19, far inside the dtype's range; after this scaling the
    largest entry lies in [1/2, 1), so squares and their sums stay in range. Scaling by a
    power of two is exact, so a method run on the scaled input and scaled back with
    :func:`pow2_unscale` gives what it gives at unit scale. (The one exception: entries
    more than the dtype's normal range below the largest, 2**-126 in float32, become
    subnormal or zero when scaled down; they are far below eps times the largest, so no
    result changes beyond its rounding.) The factor is applied in two halves, so each half
    is representable even at the dtype's extremes (float32's 2**-149 needs 2**149, beyond
    its largest 2**127).
    """
    big = float(x.detach().abs().amax()) if x.numel() else 0.0
    if big == 0.0 or not math.isfinite(big):
        return x, 0
    e = math.frexp(big)[1]  # big = f * 2**e with f in [1/2, 1)
    return (pow2_unscale(x, -e) if e else x), e


def pow2_unscale(y, e: int):
    """``y * 2**e`` (a tensor or a float), in two exact halves; inf where it does not fit."""
    if e == 0:
        return y
    e1 = e // 2
    return y * 2.0**e1 * 2.0 ** (e - e1)


def fro_norm(x: torch.Tensor) -> float:
    """Frobenius (2-)norm over all entries, as a Python float, without overflow or underflow.

    ``torch.linalg.vector_norm`` sums plain squares, so a float32 matrix of entries 1e19 has
    norm inf and one of 1e-30 norm 0; here the entries are first scaled by a power of two
    (exactly, see :func:`pow2_scale`) and the norm scaled back in double precision.
    """
    xs, e = pow2_scale(x)
    return pow2_unscale(float(torch.linalg.vector_norm(xs)), e)


def lstsq(A: torch.Tensor, B: torch.Tensor, rcond: float | None = None):
    """Minimum-norm least-squares solution X of ``min ||A X - B||_F``, and the rank of A.

    Through the SVD of A, so it is deterministic (LAPACK's default ``gelsy`` driver behind
    ``torch.linalg.lstsq`` is not, run to run, on the CPU), handles a rank-deficient A
    (singular values below ``rcond * s_max`` are treated as zero; default
    ``max(m, n) * eps``), and works the same on every device.
    """
    # Scaled by powers of two (exact), so 1 / S neither overflows (subnormal A) nor
    # underflows; the solution scales back by 2**(eB - eA).
    A, eA = pow2_scale(A)
    B, eB = pow2_scale(B)
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)  # (..., m, r) (..., r) (..., r, n)
    if rcond is None:
        rcond = max(A.shape[-2:]) * torch.finfo(A.dtype).eps
    keep = S > rcond * S[..., :1]
    inv = torch.where(keep, 1.0 / torch.where(keep, S, torch.ones_like(S)), torch.zeros_like(S))
    X = Vh.mT @ (inv.unsqueeze(-1) * (U.mT @ B))  # (..., n, p)
    return pow2_unscale(X, eB - eA), int(keep.sum(-1).min())


@checked
def svd_flip(U: torch.Tensor, Vh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fix the sign of each singular pair so that the largest-magnitude entry of each column
    of ``U`` is positive (the same convention as scikit-learn's ``svd_flip``).

    The SVD is unique only up to a sign per pair; a fixed convention makes results comparable
    across libraries, devices and runs. ``U`` is (..., m, k), ``Vh`` is (..., k, n).
    """
    idx = U.abs().argmax(dim=-2, keepdim=True)  # (..., 1, k): row of the largest entry
    signs = torch.sgn(torch.gather(U, -2, idx))  # (..., 1, k); a unit phase if complex
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return U * signs.conj(), Vh * signs.transpose(-2, -1)


def orth_rows(Yt: torch.Tensor) -> torch.Tensor:
    """Orthonormal rows spanning the rows of Yt (..., l, m), by Householder QR."""
    # Q is unchanged by scaling Yt; scaled, Householder's column norms neither overflow
    # (entries ~1e19 in float32) nor underflow (subnormal entries give NaN otherwise).
    Yt = pow2_scale(Yt)[0]
    Q, _ = torch.linalg.qr(Yt.mT)  # (..., m, l): Yt.mT is column-major, LAPACK's own layout
    return Q.mT
