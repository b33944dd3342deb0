"""Tensor decompositions: CP by alternating least squares, Tucker by HOSVD and HOOI,
tensor train by TT-SVD.

Results are factorization objects (``to_dense``, ``nbits``, ``bits_per_entry``, ...) that
unpack and convert like TensorLy's: ``weights, factors = cp``, ``cp.to_tensorly()``,
``CPTensor.from_tensorly(tl_cp)``. TensorLy is imported only by the conversions.
"""

from ._ops import fold, khatri_rao, mode_dot, multi_mode_dot, unfold
from .cp import CPTensor, cp_als
from .tt import TTTensor, tt_svd
from .tucker import TuckerTensor, hooi, hosvd

__all__ = [
    "CPTensor",
    "TTTensor",
    "TuckerTensor",
    "cp_als",
    "fold",
    "hooi",
    "hosvd",
    "khatri_rao",
    "mode_dot",
    "multi_mode_dot",
    "tt_svd",
    "unfold",
]
