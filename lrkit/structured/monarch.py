"""Monarch matrices: two block-diagonal factors and a fixed permutation.

Dao, Chen, Sohoni, Desai, Poli, Grogan, Liu, Rao, Rudra & Ré, "Monarch: Expressive
Structured Matrices for Efficient and Accurate Training", ICML 2022.

A Monarch matrix is ``M = P L P^T R`` (paper, section 3, with its generalization to other
block counts), where, for an m x n matrix and ``b = nblocks``:

- ``R`` is block-diagonal with b blocks of size (m/b) x (n/b): ``R`` is stored (b, m/b, n/b);
- ``P^T`` views a length-m vector as a (b, m/b) grid and transposes it to (m/b, b);
- ``L`` is block-diagonal with m/b blocks of size b x b: stored (m/b, b, b);
- ``P`` transposes the (m/b, b) grid back to (b, m/b).

(This is the layout of the paper's code, ``blockdiag_butterfly_multiply(x, w1=R, w2=L)``.)
With b = sqrt(n) it stores 2 n^1.5 numbers instead of n^2, and ``M @ X`` is two batched
matmuls: 2 p (m n / b + m b) flops instead of 2 p m n, 32x fewer at n = 4096.

Writing out the product, ``M[s*(m/b) + l, k*(n/b) + j] = L[l, s, k] * R[k, l, j]``: for each
pair (l, k), the b x (n/b) slice ``A4[l, k] = M.reshape(b, m/b, b, n/b)[:, l, k, :]`` is the
rank-one matrix ``outer(L[l, :, k], R[k, l, :])``. Each entry of M lives in exactly one slice,
so projecting a dense A onto Monarch matrices splits into (m/b) b independent best rank-one
approximations: the leading singular triplet of each slice (the paper's projection algorithm).
It is optimal in the Frobenius norm and exact when A is a Monarch matrix.
"""

from __future__ import annotations

import torch

from ..core._checks import as_matrix, as_tensor
from ..core._params import checked
from ._complex import ComplexAware

__all__ = ["Monarch", "monarch_project", "monarch_matmul", "monarch_rmatmul", "monarch_dense"]


# -- the product: reference and fast ----------------------------------------------------------
def _grid_transpose(m: int, b: int, device) -> torch.Tensor:
    """Indices of P^T: ``(P^T z)[l*b + k] = z[k*(m/b) + l]``, the (b, m/b) grid transposed."""
    return torch.arange(m, device=device).reshape(b, m // b).T.flatten()  # (m,)


@checked
def monarch_dense(L: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """The dense matrix ``P L P^T R``, built factor by factor: the slow, obviously correct one."""
    q, b, _ = L.shape  # q = m / b blocks of size b x b
    m = q * b
    Pt = torch.eye(m, dtype=L.dtype, device=L.device)[_grid_transpose(m, b, L.device)]  # P^T
    return Pt.T @ torch.block_diag(*L) @ Pt @ torch.block_diag(*R)  # (m, m)(m, m)(m, m)(m, n)


@checked
def monarch_matmul(L: torch.Tensor, R: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``(P L P^T R) @ X`` by two batched matmuls and two permutations.

    L (m/b, b, b), R (b, m/b, n/b), X (n,) or (..., n, p). No checks (fast path for layers);
    autograd flows to L, R and X.
    """
    q, b, _ = L.shape
    _, _, n_b = R.shape
    vector = X.ndim == 1
    if vector:
        X = X.unsqueeze(-1)  # (n, 1)
    *batch, _, p = X.shape
    Z = R @ X.reshape(*batch, b, n_b, p)  # R: (b, m/b, n/b) @ (..., b, n/b, p) -> (..., b, m/b, p)
    Z = Z.transpose(-3, -2)  # P^T: (..., m/b, b, p)
    Y = L @ Z  # L: (m/b, b, b) @ (..., m/b, b, p) -> (..., m/b, b, p)
    Y = Y.transpose(-3, -2).reshape(*batch, b * q, p)  # P: (..., b, m/b, p) -> (..., m, p)
    return Y.squeeze(-1) if vector else Y


@checked
def monarch_rmatmul(L: torch.Tensor, R: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``X @ (P L P^T R)`` for X (m,) or (..., p, m): the same steps, transposed and reversed."""
    q, b, _ = L.shape
    k, _, n_b = R.shape
    vector = X.ndim == 1
    if vector:
        X = X.unsqueeze(-2)  # (1, m)
    *batch, p, _ = X.shape
    Z = X.reshape(*batch, p, b, q).permute(*range(len(batch)), -1, -3, -2)  # X P: (..., m/b, p, b)
    Z = Z @ L  # (..., m/b, p, b) @ (m/b, b, b) -> (..., m/b, p, b)
    Z = Z.permute(*range(len(batch)), -1, -2, -3)  # P^T: (..., b, p, m/b)
    Y = Z @ R  # (..., b, p, m/b) @ (b, m/b, n/b) -> (..., b, p, n/b)
    Y = Y.transpose(-3, -2).reshape(*batch, p, k * n_b)  # (..., p, b, n/b) -> (..., p, n)
    return Y.squeeze(-2) if vector else Y


class Monarch(ComplexAware):
    """A Monarch matrix ``M = P L P^T R`` (Dao et al. 2022): see the module docstring.

    Shapes: ``L`` (m/b, b, b), ``R`` (b, m/b, n/b) for an m x n matrix with b blocks in R.
    Stores ``m n / b + m b`` numbers. Unpacks as ``L, R = monarch``. The factors are kept as
    given (no copy, no detach), so autograd flows through them.
    """

    _fields = ("L", "R")

    def __init__(self, L, R):
        L, R = _factor(L, "L"), _factor(R, "R")
        b, q, _ = R.shape
        if L.shape != (q, b, b):
            raise ValueError(
                f"L must have shape (m/b, b, b) = ({q}, {b}, {b}) to match R {tuple(R.shape)} "
                f"= (b, m/b, n/b); got L {tuple(L.shape)}"
            )
        if L.device != R.device:
            raise ValueError(f"L and R live on different devices: {L.device}, {R.device}")
        dtype = torch.promote_types(L.dtype, R.dtype)
        self.L, self.R = L.to(dtype), R.to(dtype)

    @property
    def nblocks(self) -> int:
        return self.R.shape[0]

    @property
    def shape(self) -> torch.Size:
        b, q, n_b = self.R.shape
        return torch.Size((b * q, b * n_b))

    def __iter__(self):
        return iter((self.L, self.R))

    def to_dense(self) -> torch.Tensor:
        return monarch_dense(self.L, self.R)

    def _matmul(self, X: torch.Tensor) -> torch.Tensor:
        return monarch_matmul(self.L, self.R, X)

    def _rmatmul(self, X: torch.Tensor) -> torch.Tensor:
        return monarch_rmatmul(self.L, self.R, X)

    def _describe(self) -> str:
        b, q, n_b = self.R.shape
        return f"nblocks={b}, R blocks {q}x{n_b}, L blocks {b}x{b}"


def _factor(x, name: str) -> torch.Tensor:
    """A stack of blocks (count, rows, cols); a torch tensor is kept as is (autograd)."""
    t = as_tensor(x, name, min_ndim=3, keep_grad=True, allow_complex=True)
    if t.ndim != 3:
        raise ValueError(f"{name} must be a stack of blocks (count, rows, cols); got {t.ndim}-D")
    return t


# -- the projection (Dao et al. 2022, section 3: closed form, optimal) ------------------------
@checked
def monarch_project(A, nblocks: int) -> Monarch:
    """The Monarch matrix closest to ``A`` in the Frobenius norm, in closed form.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n)
        float32, float64, complex64 and complex128 keep their dtype; integer and half
        precision are computed in float32. The result lives on A's device; A is never
        modified.
    nblocks : int
        b, the number of blocks of R; it must divide both m and n. ``b = sqrt(n)`` for a
        square matrix stores the fewest numbers (2 n^1.5).

    Returns
    -------
    Monarch
        L (m/b, b, b) and R (b, m/b, n/b): the leading singular triplet of each of the
        (m/b) b slices of the permuted reshape of A, its singular value split evenly
        between the two factors. Exact (to rounding) when A is a Monarch matrix with these
        block sizes, e.g. ``torch.kron(B, C)`` with B (b, b) and C (m/b, n/b), or a
        block-diagonal matrix with b blocks.

    Examples
    --------
    >>> import torch
    >>> from lrkit.structured import Monarch, monarch_project
    >>> L, R = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    >>> M = Monarch(L, R)  # a random 16 x 16 Monarch matrix, 4 blocks
    >>> torch.allclose(monarch_project(M.to_dense(), 4).to_dense(), M.to_dense())
    True
    """
    A = as_matrix(A, "A", allow_complex=True)
    m, n = A.shape
    b = nblocks
    for size, what in ((m, "rows"), (n, "columns")):
        if size % b:
            raise ValueError(f"nblocks (={b}) must divide the number of {what} of A, {size}")
    q, n_b = m // b, n // b
    # Step 1: the permuted reshape. A4[l, k, s, j] = A[s*q + l, k*n_b + j] = L[l, s, k] R[k, l, j].
    A4 = A.reshape(b, q, b, n_b).permute(1, 2, 0, 3)  # (m/b, b, b, n/b): (l, k) slices, s x j
    # Step 2: the best rank-one approximation of every slice, all at once.
    U, S, Vh = torch.linalg.svd(A4, full_matrices=False)  # (q, b, b, r), (q, b, r), (q, b, r, n_b)
    root = S[..., 0].sqrt()  # (m/b, b): split s_1 evenly between the two factors
    u = U[..., 0] * root.unsqueeze(-1)  # (m/b, b, b): u[l, k, s]
    v = Vh[..., 0, :] * root.unsqueeze(-1)  # (m/b, b, n/b): v[l, k, j]
    # Step 3: read the factors off: L[l, s, k] = u[l, k, s], R[k, l, j] = v[l, k, j].
    L = u.transpose(-1, -2).contiguous()  # (m/b, b, b)
    R = v.transpose(0, 1).contiguous()  # (b, m/b, n/b)
    return Monarch(L, R)
