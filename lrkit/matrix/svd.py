"""The truncated SVD: the best rank-k approximation (Eckart & Young 1936; Mirsky 1960).

For any unitarily invariant norm, ``A_k = U_k diag(S_k) Vh_k`` built from the k largest
singular triplets minimizes ``||A - B||`` over all B of rank <= k, and the error is the tail
of the spectrum:

    ||A - A_k||_2 = s_{k+1}          ||A - A_k||_F = sqrt(s_{k+1}^2 + ... + s_r^2)

This is the exact reference every other method in lrkit is measured against. It computes
the full (thin) SVD, so it costs O(m n min(m, n)); for large matrices and small ranks use the
randomized SVD.
"""

from __future__ import annotations

import torch

from ..core._checks import as_matrix, check_rank
from ..core._linalg import svd_flip
from ..core._params import checked
from ..core.lowrank import LowRank

__all__ = ["truncated_svd", "svd_flip"]


@checked
def truncated_svd(A, rank: int) -> LowRank:
    """Best rank-``rank`` approximation of ``A`` from its singular value decomposition.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n) or a stack (..., m, n)
        Real input. float32 and float64 keep their dtype; integer (e.g. ``uint8`` images),
        boolean and half-precision input is computed and returned in float32. The result
        lives on A's device. A is never modified.
    rank : int
        Number of singular triplets kept, ``1 <= rank <= min(m, n)``.

    Returns
    -------
    LowRank
        ``U`` (..., m, rank), ``S`` (..., rank) in decreasing order, ``Vh`` (..., rank, n),
        signs fixed by :func:`svd_flip` so the result is deterministic.

    Examples
    --------
    >>> import torch, lrkit
    >>> A = torch.randn(100, 5, dtype=torch.float64) @ torch.randn(5, 80, dtype=torch.float64)
    >>> approx = lrkit.truncated_svd(A, 5)
    >>> lrkit.rel_error(A, approx) < 1e-12
    True
    """
    A = as_matrix(A, "A", batched=True)
    rank = check_rank(rank, A.shape)
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)  # (..., m, r) (..., r) (..., r, n)
    U, S, Vh = U[..., :rank], S[..., :rank], Vh[..., :rank, :]
    U, Vh = svd_flip(U, Vh)
    return LowRank(U.contiguous(), S.contiguous(), Vh.contiguous())
