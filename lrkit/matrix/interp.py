"""Interpolative decompositions: a low-rank matrix written with its own columns (or rows).

A column interpolative decomposition (ID) of rank k keeps k actual columns of A, the
*skeleton* ``C = A[:, J]``, and writes every other column as a combination of them:

    A ~= C @ P,   P = [I_k  T] Pi^T   (k x n; the identity sits at the chosen columns J)

so the chosen columns are reproduced exactly and only ``T`` (k x (n - k)) is computed.
A row ID is the same on ``A^T``: ``A ~= P @ R`` with ``R = A[I, :]``.

How (Cheng, Gimbutas, Martinsson & Rokhlin 2005; Halko, Martinsson & Tropp 2011):
column-pivoted QR, ``A Pi = Q [R11 R12; 0 R22]``, moves the k most independent columns to
the front. Dropping ``R22`` gives ``A Pi ~= Q_1 R11 [I  R11^-1 R12] = (A Pi)[:, :k] [I  T]``,
so ``T = R11^-1 R12`` and the error is exactly ``||R22||``: the part of A the pivoted QR
left out. The *randomized* ID (Martinsson, Rokhlin & Tygert 2011; Voronin & Martinsson
2017) runs the same pivoted QR on a small sketch ``Y = Omega A`` ((k + p) x n) instead
of A: Y has the same column dependencies as A, up to the tail of the spectrum.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from ..core._checks import as_matrix, check_rank
from ..core._params import checked
from ..core._random import make_generator
from ..core.factorization import Factorization

__all__ = ["interp_decomp", "Interpolative"]


def pivoted_qr(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column-pivoted QR ``M[:, perm] = Q R`` (LAPACK geqp3, via scipy, on the CPU).

    Returns ``R`` (min(m, n) x n) and ``perm`` (n,), both on M's device; torch has no
    pivoted QR, so M makes one trip to the CPU. ``perm[:k]`` are the k columns that greedy
    pivoting finds most linearly independent (each step takes the column with the largest
    norm left after projecting out the ones already taken).
    """
    R, perm = scipy.linalg.qr(M.detach().cpu().numpy(), mode="r", pivoting=True, check_finite=False)
    R = R[: min(M.shape)]  # (min(m, n), n); Q is never formed
    return torch.from_numpy(R).to(M.device), torch.from_numpy(perm.astype(np.int64)).to(M.device)


def _solve_upper(R11: torch.Tensor, R12: torch.Tensor) -> torch.Tensor:
    """T = R11^-1 R12; least squares if R11 is exactly singular (A has rank < k)."""
    if R12.shape[-1] == 0:  # rank = n: every column is kept, nothing to interpolate
        return R12.clone()
    if bool((R11.diagonal() != 0).all()):
        return torch.linalg.solve_triangular(R11, R12, upper=True)
    return torch.linalg.lstsq(R11.cpu(), R12.cpu(), driver="gelsd").solution.to(R11.device)


class Interpolative(Factorization):
    """An interpolative decomposition: ``A ~= skeleton @ P`` (``axis=1``) or ``P @ skeleton``.

    ``axis=1`` (column ID): ``skeleton`` holds the columns ``A[:, idx]`` (m x k) and
    ``P = [I_k  T] Pi^T`` is k x n. ``axis=0`` (row ID): ``skeleton`` holds the rows
    ``A[idx, :]`` (k x n) and ``P`` is the transpose of that pattern, m x k. The block ``T``
    is stored as ``proj``, k x (N - k) in both cases (N = n or m; the name ``.T`` is kept for
    a transpose, as everywhere in lrkit), ``perm`` is the full pivot order (length N) and
    ``idx = perm[:k]`` the chosen columns or rows, most important first.

    Storage counts the skeleton and ``proj`` at their dtype plus ``perm`` at 64 bits per entry;
    the identity block of ``P`` is implied by ``perm`` and not stored.
    """

    _fields = ("skeleton", "proj", "perm")

    def __init__(
        self, skeleton: torch.Tensor, proj: torch.Tensor, perm: torch.Tensor, axis: int = 1
    ):
        k = skeleton.shape[1] if axis == 1 else skeleton.shape[0]
        if proj.shape[0] != k or proj.shape[1] + k != perm.shape[0]:
            raise ValueError(
                f"shapes do not agree: skeleton {tuple(skeleton.shape)}, proj {tuple(proj.shape)}, "
                f"perm {tuple(perm.shape)}; need proj (k, N - k) and perm (N,) for axis={axis}"
            )
        self.skeleton, self.proj, self.perm, self.axis = skeleton, proj, perm, axis

    @property
    def rank(self) -> int:
        return self.proj.shape[0]

    @property
    def idx(self) -> torch.Tensor:
        """The chosen column (axis=1) or row (axis=0) indices, most important first."""
        return self.perm[: self.rank]

    @property
    def shape(self) -> torch.Size:
        N = self.perm.shape[0]
        m_or_n = self.skeleton.shape[0] if self.axis == 1 else self.skeleton.shape[1]
        return torch.Size((m_or_n, N) if self.axis == 1 else (N, m_or_n))

    @property
    def P(self) -> torch.Tensor:
        """The interpolation matrix, built densely (k x n for a column ID, m x k for a row ID)."""
        eye = torch.eye(self.rank, dtype=self.dtype, device=self.device)
        P = self._times_P(eye)  # (k, N)
        return P if self.axis == 1 else P.mT

    # The column-ID pattern P = [I T] Pi^T (k x N), applied without building it.
    def _P_times(self, X: torch.Tensor) -> torch.Tensor:  # (N, p) -> (k, p)
        k = self.rank
        return X[self.perm[:k]] + self.proj @ X[self.perm[k:]]

    def _times_P(self, Y: torch.Tensor) -> torch.Tensor:  # (p, k) -> (p, N)
        k = self.rank
        out = Y.new_empty((Y.shape[0], self.perm.shape[0]))
        out[:, self.perm[:k]] = Y
        out[:, self.perm[k:]] = Y @ self.proj
        return out

    def to_dense(self) -> torch.Tensor:
        if self.axis == 1:
            return self._times_P(self.skeleton)  # C [I T] Pi^T
        return self._times_P(self.skeleton.mT).mT  # (R^T [I T] Pi^T)^T

    def _matmul(self, X: torch.Tensor) -> torch.Tensor:  # X (n, p)
        if self.axis == 1:
            return self.skeleton @ self._P_times(X)  # C (P X)
        return self._times_P((self.skeleton @ X).mT).mT  # P (R X)

    def _rmatmul(self, X: torch.Tensor) -> torch.Tensor:  # X (p, m)
        if self.axis == 1:
            return self._times_P(X @ self.skeleton)  # (X C) P
        return self._P_times(X.mT).mT @ self.skeleton  # (X P) R

    def _describe(self) -> str:
        return f"rank={self.rank}, axis={self.axis}"


@checked
def interp_decomp(
    A, rank: int, *, axis: int = 1, oversample: int | None = None, seed=None
) -> Interpolative:
    """Rank-``rank`` interpolative decomposition of ``A`` by column-pivoted QR.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n)
        Real input; float32 and float64 keep their dtype, integer input is computed in
        float32. The result lives on A's device. A is never modified.
    rank : int
        Number of columns (or rows) kept, ``1 <= rank <= min(m, n)``.
    axis : {1, 0}, default 1
        1: column ID, ``A ~= A[:, idx] @ P``. 0: row ID, ``A ~= P @ A[idx, :]``.
    oversample : int or None, default None
        None: pivoted QR of A itself (deterministic, O(m n min(m, n)) on the CPU). An integer
        p >= 0: the randomized ID, pivoted QR of a Gaussian sketch ``Omega A`` with
        ``rank + p`` rows (for a column ID), much cheaper for large A; 10 is a good choice.
    seed : int, torch.Generator or None
        Randomness of the sketch (only with ``oversample``), drawn on A's device.

    Returns
    -------
    Interpolative
        ``skeleton`` (the chosen columns or rows of A, copied), ``T``, ``perm``, and
        ``idx = perm[:rank]``. The chosen columns are reproduced exactly by ``to_dense()``.

    Examples
    --------
    >>> import torch
    >>> from lrkit import interp_decomp
    >>> A = torch.randn(60, 8, dtype=torch.float64) @ torch.randn(8, 40, dtype=torch.float64)
    >>> ID = interp_decomp(A, 8)
    >>> bool(torch.allclose(ID.to_dense(), A)), tuple(ID.skeleton.shape)
    (True, (60, 8))
    """
    A = as_matrix(A, "A")
    rank = check_rank(rank, A.shape)
    M = A if axis == 1 else A.mT  # work on columns of M
    if oversample is not None:
        l = min(rank + oversample, M.shape[0])
        gen = make_generator(seed, M.device)
        Omega = torch.randn(l, M.shape[0], generator=gen, dtype=M.dtype, device=M.device)
        M_qr = Omega @ M  # (l, N): a sketch with (nearly) the column dependencies of M
    else:
        M_qr = M
    R, perm = pivoted_qr(M_qr)  # M_qr[:, perm] = Q R
    T = _solve_upper(R[:rank, :rank], R[:rank, rank:])  # (k, N - k) = R11^-1 R12
    skeleton = M[:, perm[:rank]].clone()  # (m, k): real columns of M
    return Interpolative(skeleton if axis == 1 else skeleton.mT.contiguous(), T, perm, axis)
