"""Small linear-algebra helpers shared by the methods."""

from __future__ import annotations

import torch

from ._params import checked

__all__ = ["lstsq", "orth_rows", "svd_flip"]


def lstsq(A: torch.Tensor, B: torch.Tensor, rcond: float | None = None):
    """Minimum-norm least-squares solution X of ``min ||A X - B||_F``, and the rank of A.

    Through the SVD of A, so it is deterministic (LAPACK's default ``gelsy`` driver behind
    ``torch.linalg.lstsq`` is not, run to run, on the CPU), handles a rank-deficient A
    (singular values below ``rcond * s_max`` are treated as zero; default
    ``max(m, n) * eps``), and works the same on every device.
    """
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)  # (..., m, r) (..., r) (..., r, n)
    if rcond is None:
        rcond = max(A.shape[-2:]) * torch.finfo(A.dtype).eps
    keep = S > rcond * S[..., :1]
    inv = torch.where(keep, 1.0 / torch.where(keep, S, torch.ones_like(S)), torch.zeros_like(S))
    X = Vh.mT @ (inv.unsqueeze(-1) * (U.mT @ B))  # (..., n, p)
    return X, int(keep.sum(-1).min())


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
    Q, _ = torch.linalg.qr(Yt.mT)  # (..., m, l): Yt.mT is column-major, LAPACK's own layout
    return Q.mT
