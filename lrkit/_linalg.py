"""Small linear-algebra helpers shared by the methods."""

from __future__ import annotations

import torch

__all__ = ["lstsq"]


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
