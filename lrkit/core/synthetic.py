"""Test matrices with a spectrum you choose: the known answers of lrkit's tests and lessons."""

from __future__ import annotations

import torch

from ._checks import as_tensor
from ._params import checked
from ._random import make_generator

__all__ = ["matrix_with_spectrum"]


@checked
def matrix_with_spectrum(
    m: int, n: int, S, *, seed=None, dtype: torch.dtype = torch.float64, device="cpu"
) -> torch.Tensor:
    """A seeded m x n matrix ``U diag(S) V^T`` whose singular values are exactly ``S``.

    U (m x r) and V (n x r), r = len(S), are Haar-random orthonormal bases (QR of Gaussian
    matrices drawn in float64 on the CPU from ``seed``: an int, a CPU ``torch.Generator`` or
    None; so the matrix is the same on every device), and the matrix has rank r. So the best
    rank-k error is known in advance: ``sqrt(sum(S[k:]**2))`` in the Frobenius norm and
    ``S[k]`` in the spectral norm. Pass ``seed`` to get the same matrix every time.

    >>> A = matrix_with_spectrum(50, 40, 1 / torch.arange(1, 41.0), seed=0)
    >>> torch.allclose(torch.linalg.svdvals(A), 1 / torch.arange(1, 41.0, dtype=torch.float64))
    True
    """
    S = as_tensor(S, "S").to(device="cpu", dtype=torch.float64).flatten()
    if S.numel() > min(m, n):
        raise ValueError(f"len(S) (={S.numel()}) must be <= min(m, n) = {min(m, n)}")
    if bool((S < 0).any()):
        raise ValueError("singular values S must be >= 0")
    g = make_generator(seed, "cpu")
    U, _ = torch.linalg.qr(torch.randn(m, S.numel(), generator=g, dtype=torch.float64))  # (m, r)
    V, _ = torch.linalg.qr(torch.randn(n, S.numel(), generator=g, dtype=torch.float64))  # (n, r)
    return ((U * S) @ V.T).to(device=device, dtype=dtype)  # (m, n)
