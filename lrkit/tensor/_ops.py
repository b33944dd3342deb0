"""The few tensor operations CP and Tucker are built from, written plainly.

Conventions follow Kolda & Bader, "Tensor decompositions and applications", SIAM Review
51(3), 2009, with TensorLy's (C-order) unfolding, so results can be compared entry by entry:

- ``unfold(T, n)`` puts mode n first and flattens the others in order, the last fastest:
  ``(I_n, I_0 ... I_{n-1} I_{n+1} ... I_{N-1})``;
- ``khatri_rao([A, B, ...])`` is the column-wise Kronecker product, the first matrix
  varying slowest, which makes ``unfold(T, n) = A_n diag(w) khatri_rao(others)^T`` for a CP
  tensor ``T = [[w; A_0, ..., A_{N-1}]]``.
"""

from __future__ import annotations

import math

import torch

from ..core._linalg import pow2_scale, svd_flip
from ..core._params import checked

__all__ = [
    "unfold",
    "fold",
    "mode_dot",
    "multi_mode_dot",
    "khatri_rao",
    "leading_left_vectors",
    "common_dtype",
]


@checked
def unfold(T: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` matricization: (I_0, ..., I_{N-1}) -> (I_mode, prod of the others)."""
    return T.movedim(mode, 0).reshape(T.shape[mode], -1)  # (I_n, prod_{m != n} I_m)


@checked
def fold(M: torch.Tensor, mode: int, shape) -> torch.Tensor:
    """Inverse of :func:`unfold`: (I_mode, prod of the others) -> ``shape``."""
    shape = list(shape)
    moved = [shape[mode], *shape[:mode], *shape[mode + 1 :]]  # mode n first
    return M.reshape(moved).movedim(0, mode)  # (I_0, ..., I_{N-1})


@checked
def mode_dot(T: torch.Tensor, M: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-n product ``T x_n M`` (Kolda & Bader, Sec. 2.5): M (J, I_n) replaces mode n by J.

    Equivalent to ``fold(M @ unfold(T, n), n, new_shape)``.
    """
    out = torch.tensordot(M, T, dims=([1], [mode]))  # (J, I_0 .. I_{n-1}, I_{n+1} .. I_{N-1})
    return out.movedim(0, mode)  # (I_0, .., J, .., I_{N-1})


@checked
def multi_mode_dot(T: torch.Tensor, matrices, skip: int | None = None) -> torch.Tensor:
    """``T x_0 M_0 x_1 M_1 ...``, leaving out mode ``skip``. Modes whose matrix is ``None``
    are left alone. Smallest outputs first would be cheaper; in order is clearer and, for
    the projections of HOOI (every matrix shrinks its mode), nearly as fast."""
    for mode, M in enumerate(matrices):
        if mode != skip and M is not None:
            T = mode_dot(T, M, mode)
    return T


@checked
def khatri_rao(matrices) -> torch.Tensor:
    """Column-wise Kronecker product of matrices (I_k, R): result (prod I_k, R).

    Row ``i_0 * (I_1 ... I_K) + ... + i_K`` of column r is ``A_0[i_0, r] ... A_K[i_K, r]``.
    """
    out = matrices[0]
    for A in matrices[1:]:
        R = A.shape[1]
        out = (out[:, None, :] * A[None, :, :]).reshape(-1, R)  # (I_prev * I_k, R)
    return out


def leading_left_vectors(M: torch.Tensor, k: int, *, seed=None) -> torch.Tensor:
    """The k leading left singular vectors of M (m, n) as columns (m, k), signs fixed.

    Which SVD depends on the shape, because unfoldings are often very wide (100 x 10 000):

    - wide (n >= 4 m): eigenvectors of the small Gram matrix ``M M^T`` (m, m); one pass over
      M and an m x m eigenproblem, instead of an SVD of the whole unfolding. Squaring the
      condition number costs accuracy only in directions far below the leading ones;
    - large with a small k: lrkit's randomized SVD (two power iterations), which never
      forms a full SVD of a huge unfolding (where TensorLy's full SVD runs out of memory);
    - otherwise: the full thin SVD.
    """
    from ..matrix.rsvd import rsvd  # lazy: keeps lrkit.tensor importable on its own

    m, n = M.shape
    if n >= 4 * m:
        M = pow2_scale(M)[0]  # same eigenvectors; M M^T neither overflows nor underflows
        evals, evecs = torch.linalg.eigh(M @ M.T)  # ascending; (m,), (m, m)
        U = evecs[:, -k:].flip(-1)  # (m, k), largest first
    elif min(m, n) > 512 and k <= min(m, n) // 4:
        U = rsvd(M, k, seed=seed).U
    else:
        U = torch.linalg.svd(M, full_matrices=False)[0][:, :k]
    U, _ = svd_flip(U, U.new_empty(k, 0))  # sign convention of svd_flip
    return U.contiguous()


def prod(values) -> int:
    return math.prod(int(v) for v in values)


def to_backend(t: torch.Tensor, tl):
    """A torch tensor as an array of TensorLy's active backend (numpy copies go to the CPU)."""
    if tl.get_backend() == "pytorch":
        return t
    return tl.tensor(t.detach().cpu().numpy())


def from_backend(x, tl):
    """An array of any TensorLy backend as something ``as_tensor`` accepts."""
    import numpy as np

    if isinstance(x, torch.Tensor | np.ndarray):
        return x
    return tl.to_numpy(x)


def common_dtype(head: torch.Tensor, factors) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``head`` (weights or core) and the factors in one common dtype, on the factors' device."""
    dtype = head.dtype
    for A in factors:
        dtype = torch.promote_types(dtype, A.dtype)
    return head.to(device=factors[0].device, dtype=dtype), [A.to(dtype) for A in factors]
