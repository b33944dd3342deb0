"""lrkit: learn, teach and prototype low-rank and structured compression.

Every method takes a matrix (or tensor, or model) and a budget and returns a factorization
object with one protocol: ``.to_dense()``, ``@``, ``.num_params``, ``.nbits``,
``.bits_per_entry``, ``.compression_ratio()``, ``.to()``. See ``lrkit.factorization``.
"""

from . import tensor
from .core._linalg import svd_flip
from .core.factorization import Factorization
from .core.lowrank import LowRank
from .core.metrics import psnr, rel_error
from .core.quant import QuantizedMatrix, quantize
from .core.rank import rank_for_budget, rank_for_energy, rank_for_error
from .core.synthetic import matrix_with_spectrum
from .matrix.adaptive import adaptive_range_finder, estimate_error
from .matrix.cur import CUR, cur
from .matrix.interp import Interpolative, interp_decomp
from .matrix.lplr import QuantizedLowRank, dsvd_quant, lplr, lplr_max_rank, rank_for_bits
from .matrix.rsvd import lowrank_from_basis, range_finder, rsvd
from .matrix.sketch import StreamingSketch
from .matrix.svd import truncated_svd
from .structured import (
    Butterfly,
    KroneckerSum,
    Monarch,
    butterfly_fit,
    butterfly_project,
    kron_approx,
    monarch_project,
)
from .tensor import CPTensor, TTTensor, TuckerTensor, cp_als, hooi, hosvd, tt_svd

__version__ = "0.1.0.dev0"

__all__ = [
    "Butterfly",
    "CPTensor",
    "CUR",
    "Factorization",
    "Interpolative",
    "KroneckerSum",
    "LowRank",
    "Monarch",
    "QuantizedLowRank",
    "QuantizedMatrix",
    "StreamingSketch",
    "TTTensor",
    "TuckerTensor",
    "adaptive_range_finder",
    "butterfly_fit",
    "butterfly_project",
    "cp_als",
    "cur",
    "dsvd_quant",
    "estimate_error",
    "hooi",
    "hosvd",
    "interp_decomp",
    "kron_approx",
    "lowrank_from_basis",
    "lplr",
    "lplr_max_rank",
    "matrix_with_spectrum",
    "monarch_project",
    "psnr",
    "quantize",
    "range_finder",
    "rank_for_bits",
    "rank_for_budget",
    "rank_for_energy",
    "rank_for_error",
    "rel_error",
    "rsvd",
    "svd_flip",
    "tensor",
    "truncated_svd",
    "tt_svd",
]
