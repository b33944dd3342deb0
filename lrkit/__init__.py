"""lrkit: learn, teach and prototype low-rank and structured compression.

Every method takes a matrix (or tensor, or model) and a budget and returns a factorization
object with one protocol: ``.to_dense()``, ``@``, ``.num_params``, ``.nbits``,
``.bits_per_entry``, ``.compression_ratio()``, ``.to()``. See ``lrkit.factorization``.
"""

from .adaptive import adaptive_range_finder, estimate_error
from .factorization import Factorization, LowRank
from .lplr import QuantizedLowRank, dsvd_quant, lplr, lplr_max_rank, rank_for_bits
from .metrics import psnr, rel_error
from .quant import QuantizedMatrix, quantize
from .rank import rank_for_budget, rank_for_energy, rank_for_error
from .rsvd import lowrank_from_basis, range_finder, rsvd
from .sketch import StreamingSketch
from .svd import svd_flip, truncated_svd

__version__ = "0.1.0.dev0"

__all__ = [
    "StreamingSketch",
    "adaptive_range_finder",
    "estimate_error",
    "Factorization",
    "LowRank",
    "QuantizedLowRank",
    "QuantizedMatrix",
    "dsvd_quant",
    "lplr",
    "lplr_max_rank",
    "quantize",
    "rank_for_bits",
    "lowrank_from_basis",
    "range_finder",
    "rsvd",
    "psnr",
    "rank_for_budget",
    "rank_for_energy",
    "rank_for_error",
    "rel_error",
    "svd_flip",
    "truncated_svd",
]
