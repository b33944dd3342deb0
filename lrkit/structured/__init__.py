"""Structured matrices beyond low rank: Kronecker sums, Monarch and butterfly matrices.

Each family keeps its factors as plain tensors (autograd flows through them), applies itself
without forming the dense matrix, and keeps the slow dense product beside the fast one:

- ``kron_approx(A, left_shape, rank=1)`` -> ``KroneckerSum``: the best sum of Kronecker
  products (Van Loan & Pitsianis 1993);
- ``monarch_project(A, nblocks)`` -> ``Monarch``: the closest ``P L P^T R`` with block-diagonal
  L and R (Dao et al. 2022);
- ``Butterfly.fft(n)``, ``Butterfly.hadamard(n)``, ``butterfly_fit(A, ...)``,
  ``butterfly_project(A)`` -> ``Butterfly``: products of log2(n) sparse factors with two
  nonzeros per row (Dao et al. 2019).
"""

from .butterfly import (
    Butterfly,
    bit_reversal_permutation,
    butterfly_dense,
    butterfly_factors,
    butterfly_matmul,
)
from .butterfly_fit import butterfly_fit, butterfly_project
from .kronecker import KroneckerSum, kron_approx, kron_dense, kron_matmul, kron_rearrange
from .monarch import Monarch, monarch_dense, monarch_matmul, monarch_project, monarch_rmatmul

__all__ = [
    "Butterfly",
    "KroneckerSum",
    "Monarch",
    "bit_reversal_permutation",
    "butterfly_dense",
    "butterfly_factors",
    "butterfly_fit",
    "butterfly_matmul",
    "butterfly_project",
    "kron_approx",
    "kron_dense",
    "kron_matmul",
    "kron_rearrange",
    "monarch_dense",
    "monarch_matmul",
    "monarch_project",
    "monarch_rmatmul",
]
