"""lrkit: learn, teach and prototype low-rank and structured compression.

Every method takes a matrix (or tensor, or model) and a budget and returns a factorization
object with one protocol: ``.to_dense()``, ``@``, ``.num_params``, ``.nbits``,
``.bits_per_entry``, ``.compression_ratio()``, ``.to()``. See ``lrkit.factorization``.
"""

from .adaptive import adaptive_range_finder, estimate_error
from .factorization import Factorization, LowRank
from .metrics import psnr, rel_error
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
