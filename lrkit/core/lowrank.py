"""A low-rank matrix ``U diag(S) Vh``: the result of every SVD-based method."""

from __future__ import annotations

import torch

from ._checks import as_tensor, check_positive_int
from .factorization import Factorization

__all__ = ["LowRank"]


class LowRank(Factorization):
    """A rank-k matrix stored as ``U @ diag(S) @ Vh``.

    Shapes: ``U`` (..., m, k), ``S`` (..., k), ``Vh`` (..., k, n); leading dimensions are a
    batch of matrices. ``U`` has orthonormal columns and ``Vh`` orthonormal rows when the
    object comes from an SVD; the class itself does not require it. Unpacks as
    ``U, S, Vh = lowrank``.

    Storage counts ``k * (m + n + 1)`` numbers per matrix: the singular values too.
    """

    _fields = ("U", "S", "Vh")

    def __init__(self, U, S, Vh):
        # keep_grad: factors may be trained (low-rank layers differentiate through them)
        U = as_tensor(U, "U", min_ndim=2, keep_grad=True)
        S = as_tensor(S, "S", keep_grad=True)
        Vh = as_tensor(Vh, "Vh", min_ndim=2, keep_grad=True)
        k = U.shape[-1]
        if S.shape[-1] != k or Vh.shape[-2] != k:
            raise ValueError(
                f"factor shapes do not agree: U {tuple(U.shape)}, S {tuple(S.shape)}, "
                f"Vh {tuple(Vh.shape)}; need U (..., m, k), S (..., k), Vh (..., k, n)"
            )
        if U.shape[:-2] != S.shape[:-1] or U.shape[:-2] != Vh.shape[:-2]:
            raise ValueError(
                f"batch shapes do not agree: U {tuple(U.shape)}, S {tuple(S.shape)}, "
                f"Vh {tuple(Vh.shape)}"
            )
        if not (U.device == S.device == Vh.device):
            raise ValueError(
                f"factors live on different devices: {U.device}, {S.device}, {Vh.device}"
            )
        dtype = torch.promote_types(torch.promote_types(U.dtype, S.dtype), Vh.dtype)
        self.U, self.S, self.Vh = U.to(dtype), S.to(dtype), Vh.to(dtype)

    @property
    def rank(self) -> int:
        return self.S.shape[-1]

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.U.shape[:-1], self.Vh.shape[-1]))

    def __iter__(self):
        return iter((self.U, self.S, self.Vh))

    def truncate(self, rank: int) -> LowRank:
        """The first ``rank`` terms. For an SVD (S descending) this is the truncated SVD of
        that rank, since truncated SVDs are nested: no new factorization is needed."""
        rank = check_positive_int(rank, "rank")
        if rank > self.rank:
            raise ValueError(f"rank (={rank}) must be <= the current rank = {self.rank}")
        return LowRank(self.U[..., :rank], self.S[..., :rank], self.Vh[..., :rank, :])

    def to_dense(self) -> torch.Tensor:
        return (self.U * self.S.unsqueeze(-2)) @ self.Vh  # (..., m, k) * (..., 1, k) @ (..., k, n)

    @property
    def T(self) -> LowRank:
        """The transpose, ``Vh^T diag(S) U^T``, sharing storage with this one."""
        return LowRank(self.Vh.mT, self.S, self.U.mT)

    def _matmul(self, X: torch.Tensor) -> torch.Tensor:
        # U (S (Vh X)): costs k(m + n) per column instead of m n.
        return self.U @ (self.S.unsqueeze(-1) * (self.Vh @ X))  # (..., k, p) scaled by rows

    def _rmatmul(self, X: torch.Tensor) -> torch.Tensor:
        # ((X U) S) Vh
        return ((X @ self.U) * self.S.unsqueeze(-2)) @ self.Vh  # (..., p, k) scaled by columns

    def _rmatmul_t(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        # x W^T = ((x Vh^T) S) U^T: (B, n) -> (B, k) -> (B, m), two thin GEMMs, bias folded in
        h = (x @ self.Vh.mT) * self.S  # (B, k)
        return h @ self.U.mT if bias is None else torch.addmm(bias, h, self.U.mT)

    def _describe(self) -> str:
        return f"rank={self.rank}"
