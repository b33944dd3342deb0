"""Matrices that are only known through products: dense, sparse, or a linear operator.

The randomized methods touch ``A`` only through products with thin blocks, so they can
sketch a matrix that never exists densely. This module hides the kind of ``A`` behind two
products on *row blocks* (the sketches are kept as rows, l x m and l x n, see rsvd.py):

    op.left(Xt)    = Xt @ A      (l, m) -> (l, n)
    op.left_t(Xt)  = Xt @ A.T    (l, n) -> (l, m)

Accepted: a numpy array or dense torch tensor (batched ``(..., m, n)`` allowed), a scipy
sparse matrix or array, a ``scipy.sparse.linalg.LinearOperator`` (its ``matmat`` and
``rmatmat`` are used), or a torch sparse (COO or CSR) matrix.
"""

from __future__ import annotations

import numpy as np
import torch

from ._checks import as_matrix
from ._linalg import fro_norm

__all__ = ["as_operator", "Operator"]


class Operator:
    """A real m x n matrix (or a stack) known through products with row blocks."""

    dense: torch.Tensor | None = None  # the matrix itself, when it exists densely

    def __init__(self, shape, dtype: torch.dtype, device: torch.device):
        self.shape = torch.Size(shape)
        self.dtype = dtype
        self.device = torch.device(device)

    def left(self, Xt: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def left_t(self, Xt: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fro_norm(self) -> float | None:
        """Frobenius norm if it is cheap to know exactly, else None."""
        return None


class _Dense(Operator):
    def __init__(self, A: torch.Tensor):
        super().__init__(A.shape, A.dtype, A.device)
        self.dense = A

    def left(self, Xt):
        return Xt @ self.dense  # (..., l, m) @ (..., m, n)

    def left_t(self, Xt):
        return Xt @ self.dense.mT  # (..., l, n) @ (..., n, m)

    def fro_norm(self):
        return fro_norm(self.dense)


class _Scipy(Operator):
    """scipy sparse matrix or LinearOperator: products computed by scipy, on the CPU."""

    def __init__(self, A, dtype: torch.dtype, norm: float | None):
        super().__init__(A.shape, dtype, "cpu")
        self.A = A
        self._norm = norm

    def _np(self, Xt):
        return Xt.detach().cpu().numpy().T  # (k, l): a column block for scipy

    def _torch(self, out):
        out = np.asarray(out)
        out = out.astype(out.dtype.newbyteorder("="), copy=False)  # torch needs native order
        return torch.from_numpy(np.ascontiguousarray(out.T)).to(self.dtype)

    def left(self, Xt):  # Xt @ A = (A.T @ Xt.T).T; a LinearOperator's .T uses its rmatmat
        return self._torch(self.A.T @ self._np(Xt))

    def left_t(self, Xt):  # Xt @ A.T = (A @ Xt.T).T
        return self._torch(self.A @ self._np(Xt))

    def fro_norm(self):
        return self._norm


class _TorchSparse(Operator):
    def __init__(self, A: torch.Tensor):
        A = A.to_sparse_coo().coalesce()
        dtype = A.dtype if A.dtype in (torch.float32, torch.float64) else torch.float32
        super().__init__(A.shape, dtype, A.device)
        self.A = A.to(dtype)
        self.At = self.A.t().coalesce()

    def left(self, Xt):
        return torch.sparse.mm(self.At, Xt.mT).mT

    def left_t(self, Xt):
        return torch.sparse.mm(self.A, Xt.mT).mT

    def fro_norm(self):
        return fro_norm(self.A.values())


def _check_values(values, name):
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or Inf value(s); lrkit refuses non-finite input")


def as_operator(A, name: str = "A", *, batched: bool = True) -> Operator:
    """Wrap ``A`` as an :class:`Operator`, checking it like any other lrkit input."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import LinearOperator

    if isinstance(A, torch.Tensor) and A.layout != torch.strided:
        if A.ndim != 2:
            raise ValueError(f"{name}: torch sparse input must be 2-D; got shape {tuple(A.shape)}")
        op = _TorchSparse(A)
        if op.A.values().is_complex():
            raise TypeError(f"{name} is complex; lrkit supports real input only")
        _check_values(op.A.values().detach().cpu().numpy(), name)
        return op
    if sp.issparse(A):
        if np.iscomplexobj(A.data):
            raise TypeError(f"{name} is complex ({A.dtype}); lrkit supports real input only")
        if min(A.shape) == 0:
            raise ValueError(f"{name} is empty (shape {A.shape}); it needs at least one entry")
        _check_values(A.data, name)
        dtype = torch.float64 if A.dtype == np.float64 else torch.float32
        A = A.tocsr().astype(np.float64 if dtype == torch.float64 else np.float32)
        return _Scipy(A, dtype, fro_norm(torch.from_numpy(A.data.astype(np.float64))))
    if isinstance(A, LinearOperator):
        if np.issubdtype(A.dtype, np.complexfloating):
            raise TypeError(f"{name} is complex ({A.dtype}); lrkit supports real input only")
        if min(A.shape) == 0:
            raise ValueError(f"{name} is empty (shape {A.shape}); it needs at least one entry")
        dtype = torch.float64 if A.dtype == np.float64 else torch.float32
        return _Scipy(A, dtype, None)
    return _Dense(as_matrix(A, name, batched=batched))
