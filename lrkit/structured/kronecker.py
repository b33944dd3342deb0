"""Sums of Kronecker products: the nearest Kronecker product (NKP) problem.

Van Loan & Pitsianis, "Approximation with Kronecker products", in Linear Algebra for Large
Scale and Real-Time Applications, Kluwer, 1993, pp. 293-314 (also Van Loan, "The ubiquitous
Kronecker product", J. Comput. Appl. Math. 123, 2000).

We follow ``torch.kron``: for B (m1, n1) and C (m2, n2), ``(B ⊗ C)[i1*m2 + i2, j1*n2 + j2]
= B[i1, j1] * C[i2, j2]``. So the m x n matrix A (m = m1 m2, n = n1 n2) is an m1 x n1 grid of
m2 x n2 tiles, and B ⊗ C is the grid whose tile (i1, j1) is ``B[i1, j1] * C``.

The rearrangement R(A) puts tile (i1, j1), flattened row-major, into row ``i1*n1 + j1`` of an
(m1 n1) x (m2 n2) matrix. It maps B ⊗ C to the rank-one matrix ``vec(B) vec(C)^T`` and keeps
the Frobenius norm (it only moves entries), so

    || A - sum_k B_k ⊗ C_k ||_F = || R(A) - sum_k vec(B_k) vec(C_k)^T ||_F.

The best sum of ``rank`` Kronecker products is therefore read off the truncated SVD of R(A)
(Eckart-Young), and its error is the tail of R(A)'s spectrum:
``sqrt(s_{rank+1}^2 + ...)``. The product ``(B ⊗ C) X`` never needs the m x n matrix: with a
column of X viewed as an n1 x n2 matrix it is ``B X C^T``, two matmuls, all terms at once.
"""

from __future__ import annotations

import torch

from ..core._checks import as_matrix, as_tensor, check_rank
from ..core._linalg import svd_flip
from ..core._params import checked
from ._complex import ComplexAware

__all__ = ["KroneckerSum", "kron_approx", "kron_rearrange", "kron_matmul", "kron_dense"]


# -- the rearrangement (Van Loan & Pitsianis 1993) --------------------------------------------
def _check_left_shape(left_shape, shape) -> tuple[int, int, int, int]:
    """(m1, n1, m2, n2) with m = m1 m2 and n = n1 n2, or a clear error. ``left_shape`` is
    already a pair of positive ints (the table's ``Shape(2)``)."""
    m1, n1 = left_shape
    m, n = shape[-2], shape[-1]
    if m % m1:
        raise ValueError(f"left_shape[0] (={m1}) must divide the number of rows of A, m = {m}")
    if n % n1:
        raise ValueError(f"left_shape[1] (={n1}) must divide the number of columns of A, n = {n}")
    return m1, n1, m // m1, n // n1


def _rearrange(A: torch.Tensor, m1: int, n1: int, m2: int, n2: int) -> torch.Tensor:
    # row i1*m2 + i2, column j1*n2 + j2  ->  row i1*n1 + j1, column i2*n2 + j2
    T = A.reshape(m1, m2, n1, n2)  # (m1, m2, n1, n2): A[i1, i2, j1, j2]
    return T.permute(0, 2, 1, 3).reshape(m1 * n1, m2 * n2)  # (m1 n1, m2 n2)


@checked
def kron_rearrange(A, left_shape: tuple[int, int]) -> torch.Tensor:
    """The Van Loan-Pitsianis rearrangement R(A), of shape (m1 n1, m2 n2).

    Row ``i1*n1 + j1`` of R(A) is the tile ``A[i1*m2:(i1+1)*m2, j1*n2:(j1+1)*n2]`` flattened
    row-major, so ``R(torch.kron(B, C)) = outer(B.flatten(), C.flatten())``. Its singular
    values tell how well sums of Kronecker products of these shapes can fit A.
    """
    A = as_matrix(A, "A", allow_complex=True)
    return _rearrange(A, *_check_left_shape(left_shape, A.shape))


# -- the product: reference and fast ----------------------------------------------------------
@checked
def kron_dense(B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """The dense matrix ``sum_k torch.kron(B[k], C[k])``: the slow, obviously correct one."""
    return sum(torch.kron(b, c) for b, c in zip(B, C, strict=True))


@checked
def kron_matmul(B: torch.Tensor, C: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``(sum_k B[k] ⊗ C[k]) @ X`` without forming the Kronecker products.

    B (r, m1, n1), C (r, m2, n2), X (n1 n2,) or (..., n1 n2, p). No checks (fast path for
    layers); autograd flows to B, C and X. Costs ``2 r p (n1 m2 n2 + m1 n1 m2)`` flops
    instead of ``2 p m n``: r terms cost r times one.
    """
    r, m1, n1 = B.shape
    _, m2, n2 = C.shape
    vector = X.ndim == 1
    if vector:
        X = X.unsqueeze(-1)  # (n, 1)
    *batch, _, p = X.shape
    X = X.reshape(*batch, n1, n2, p)  # (..., n1, n2, p): X[j1, j2, col]
    # Step 1, every term at once: Z[j1, k, i2] = sum_j2 C[k, i2, j2] X[j1, j2]  (one matmul,
    # batched over j1).
    Z = C.reshape(r * m2, n2) @ X  # (..., n1, r m2, p)
    Z = Z.reshape(*batch, n1 * r, m2 * p)  # (..., n1 r, m2 p): a free view, no copy
    # Step 2: Y[i1, i2] = sum_{j1, k} B[k, i1, j1] Z[j1, k, i2]  (one matmul; the sum over the
    # terms k joins the sum over j1).
    Bk = B.permute(1, 2, 0).reshape(m1, n1 * r)  # (m1, n1 r): Bk[i1, (j1, k)]
    Y = (Bk @ Z).reshape(*batch, m1 * m2, p)  # (..., m1, m2 p) -> (..., m, p)
    return Y.squeeze(-1) if vector else Y


class KroneckerSum(ComplexAware):
    """``sum_k B[k] ⊗ C[k]`` (``torch.kron`` convention), a sum of ``rank`` Kronecker products.

    Shapes: ``B`` (rank, m1, n1), ``C`` (rank, m2, n2); the matrix is (m1 m2, n1 n2). 2-D B and
    C are one term. Stores ``rank (m1 n1 + m2 n2)`` numbers instead of ``m1 m2 n1 n2``. Unpacks
    as ``B, C = kron``. The factors are kept as given (no copy, no detach), so autograd flows
    through them.
    """

    _fields = ("B", "C")

    def __init__(self, B, C):
        B, C = _factor(B, "B"), _factor(C, "C")
        if B.shape[0] != C.shape[0]:
            raise ValueError(
                f"B and C must hold the same number of terms; got B {tuple(B.shape)}, "
                f"C {tuple(C.shape)} (shapes (rank, m1, n1) and (rank, m2, n2))"
            )
        if B.device != C.device:
            raise ValueError(f"B and C live on different devices: {B.device}, {C.device}")
        dtype = torch.promote_types(B.dtype, C.dtype)
        self.B, self.C = B.to(dtype), C.to(dtype)

    @property
    def rank(self) -> int:
        return self.B.shape[0]

    @property
    def shape(self) -> torch.Size:
        (_, m1, n1), (_, m2, n2) = self.B.shape, self.C.shape
        return torch.Size((m1 * m2, n1 * n2))

    @property
    def T(self) -> KroneckerSum:
        """The transpose: ``(B ⊗ C)^T = B^T ⊗ C^T``."""
        return self._replace(B=self.B.mT, C=self.C.mT)

    def __iter__(self):
        return iter((self.B, self.C))

    def to_dense(self) -> torch.Tensor:
        return kron_dense(self.B, self.C)

    def _matmul(self, X: torch.Tensor) -> torch.Tensor:
        return kron_matmul(self.B, self.C, X)

    def _rmatmul(self, X: torch.Tensor) -> torch.Tensor:
        # X K = (K^T X^T)^T
        if X.ndim == 1:
            return kron_matmul(self.B.mT, self.C.mT, X)
        return kron_matmul(self.B.mT, self.C.mT, X.mT).mT

    def _describe(self) -> str:
        return f"rank={self.rank}, left={tuple(self.B.shape[1:])}, right={tuple(self.C.shape[1:])}"


def _factor(x, name: str) -> torch.Tensor:
    """A stack (rank, rows, cols) of factors; a torch tensor is kept as is (autograd)."""
    t = as_tensor(x, name, min_ndim=2, keep_grad=True, allow_complex=True)
    if t.ndim == 2:
        t = t.unsqueeze(0)  # (1, rows, cols): one term
    if t.ndim != 3:
        raise ValueError(f"{name} must be 2-D or a stack (rank, rows, cols); got {t.ndim}-D")
    return t


# -- the approximation: a truncated SVD of the rearrangement (Van Loan & Pitsianis 1993) -----
@checked
def kron_approx(A, left_shape: tuple[int, int], rank: int = 1) -> KroneckerSum:
    """The best sum of ``rank`` Kronecker products ``B_k ⊗ C_k`` in the Frobenius norm.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n)
        float32, float64, complex64 and complex128 keep their dtype; integer and half
        precision are computed in float32. The result lives on A's device; A is never
        modified.
    left_shape : (m1, n1)
        Shape of every B_k. It must divide A's shape; the right shape (m2, n2) of every C_k
        is ``(m // m1, n // n1)``.
    rank : int, default 1
        Number of terms, ``1 <= rank <= min(m1 n1, m2 n2)`` (the size of the rearranged
        matrix ``kron_rearrange(A, left_shape)``). Positional, as everywhere in lrkit; it
        defaults to 1, the nearest Kronecker product, the problem's classic form.

    Returns
    -------
    KroneckerSum
        B (rank, m1, n1), C (rank, m2, n2) with ``B_k = sqrt(s_k) U_k`` and
        ``C_k = sqrt(s_k) V_k`` from the SVD of the rearranged matrix (signs fixed by
        :func:`lrkit.svd_flip`). Its relative error is
        ``sqrt(sum_{i > rank} s_i^2 / sum_i s_i^2)`` with s the singular values of R(A).

    Examples
    --------
    >>> import torch
    >>> from lrkit.structured import kron_approx
    >>> B, C = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    >>> K = kron_approx(torch.kron(B, C), (3, 4))
    >>> torch.allclose(K.to_dense(), torch.kron(B, C))
    True
    """
    A = as_matrix(A, "A", allow_complex=True)
    m1, n1, m2, n2 = _check_left_shape(left_shape, A.shape)
    R = _rearrange(A, m1, n1, m2, n2)  # (m1 n1, m2 n2)
    try:
        rank = check_rank(rank, R.shape)
    except ValueError as err:
        raise ValueError(
            f"{err}: the rearranged matrix of A for left shape ({m1}, {n1}) and right shape "
            f"({m2}, {n2})"
        ) from None
    U, S, Vh = torch.linalg.svd(R, full_matrices=False)  # (m1 n1, s), (s,), (s, m2 n2)
    U, Vh = U[:, :rank], Vh[:rank]
    if not R.is_complex():  # a fixed sign convention; LAPACK's phases are deterministic too
        U, Vh = svd_flip(U, Vh)
    root = S[:rank].sqrt()  # split each singular value evenly between B_k and C_k
    B = (U * root).mT.reshape(rank, m1, n1)  # column k of U -> B_k, row-major
    C = (Vh * root.unsqueeze(-1)).reshape(rank, m2, n2)  # row k of Vh -> C_k
    return KroneckerSum(B.contiguous(), C.contiguous())
