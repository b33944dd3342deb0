"""Low precision meets low rank: LPLR and its baselines.

Saha, Srivastava & Pilanci, "Matrix Compression via Randomized Low Rank and Low Precision
Factorization", NeurIPS 2023. LPLR (their Algorithm 1) for an n x d matrix A and rank k:

    1. sketch:     a Gaussian matrix S (d x k) and the sketch  A S          (n x k)
    2. left:       L = Q(A S)                  with b1 bits per entry
    3. solve:      W = argmin_W ||L W - A||_F  = L^+ A                      (k x d)
    4. right:      R = Q'(W)                   with b2 bits per entry
    return         A ~= L R

Step 3 is the point: the right factor is fitted *to the already quantized* left factor, so
it absorbs part of L's quantization error. The Gaussian sketch also spreads the energy of
A's top singular directions evenly over the k columns, so one quantization range fits
them all ("equalization"). The baseline "direct SVD" quantizes U_k and Sigma_k V_k^T
instead (no refit, and Sigma_k V_k^T has rows of very different sizes).

Every result is a :class:`QuantizedLowRank` whose ``.nbits`` counts the codes and every
quantization range (see ``quant.py``).
"""

from __future__ import annotations

import math

import torch

from ..core._checks import as_matrix, check_rank, warn_adjusted
from ..core._linalg import lstsq, pow2_scale
from ..core._params import checked
from ..core._random import make_generator
from ..core.factorization import Factorization, dtype_bits
from ..core.quant import QuantizedMatrix, _check_layout, quant_nbits, quantize

__all__ = ["QuantizedLowRank", "lplr", "dsvd_quant", "lplr_max_rank", "rank_for_bits"]


class QuantizedLowRank(Factorization):
    """``A ~= L @ R`` with both factors quantized: L (m x k) and R (k x n) are
    :class:`~lrkit.quant.QuantizedMatrix` objects. ``nbits = L.nbits + R.nbits``."""

    _fields = ("L", "R")

    def __init__(self, L: QuantizedMatrix, R: QuantizedMatrix):
        if L.shape[1] != R.shape[0]:
            raise ValueError(f"factor shapes do not agree: L {tuple(L.shape)}, R {tuple(R.shape)}")
        self.L, self.R = L, R

    @property
    def rank(self) -> int:
        return self.L.shape[1]

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.L.shape[0], self.R.shape[1]))

    def to_dense(self) -> torch.Tensor:
        return self.L.to_dense() @ self.R.to_dense()

    def _matmul(self, X):
        return self.L.to_dense() @ (self.R.to_dense() @ X)

    def _rmatmul(self, X):
        return (X @ self.L.to_dense()) @ self.R.to_dense()

    def _rmatmul_t(self, x, bias=None):
        # x (L R)^T = (x R^T) L^T: (B, n) -> (B, k) -> (B, m), the bias folded into the last
        h, Lt = x @ self.R.to_dense().mT, self.L.to_dense().mT
        return h @ Lt if bias is None else torch.addmm(bias, h, Lt)

    def _describe(self) -> str:
        return f"rank={self.rank}, bits=({self.L.bits}, {self.R.bits}), scales={self.L.scales!r}"


def _check(A, rank, scales, group_size):
    A = as_matrix(A, "A")
    rank = check_rank(rank, A.shape)
    _check_layout(scales, 0, group_size, (A.shape[0], rank))
    _check_layout(scales, 1, group_size, (rank, A.shape[1]))
    return A, rank


@checked
def lplr(
    A,
    rank: int,
    *,
    bits_left: int,
    bits_right: int,
    scales: str = "tensor",
    group_size: int | None = None,
    symmetric: bool = True,
    scale_dtype: torch.dtype = torch.float32,
    sketch: str = "gaussian",
    n_iter: int = 0,
    seed=None,
) -> QuantizedLowRank:
    """LPLR (Saha, Srivastava & Pilanci 2023, Alg. 1): sketch, quantize, refit, quantize.

    Parameters
    ----------
    A : 2-D array or tensor (n x d)
    rank : int
        k, the number of sketch columns, ``1 <= k <= min(n, d)``.
    bits_left, bits_right : int in 1..16
        Bits per entry of L = Q(A S) and of R = Q'(L^+ A).
    scales : {"tensor", "vector", "group"}
        "tensor": one range per factor, as in the paper. "vector": one range per column of L
        and one per row of R (one per rank-one component). "group": ``group_size`` entries
        per range, along the columns of L and the rows of R.
    symmetric : bool, default True
        Ranges ``[-max|x|, max|x|]`` (the paper's quantizer) or ``[min, max]``.
    scale_dtype : torch.dtype, default float32
        Width at which every range number is stored (and counted in ``.nbits``), whatever
        A's dtype; :func:`rank_for_bits` takes the same ``scale_dtype``.
    sketch : {"gaussian"}
        The paper's sketch: i.i.d. N(0, 1) entries (scaling does not matter: L is refit).
    n_iter : int, default 0
        Optional power iterations ``(A A^T)^q A S`` (an extension, not in the paper's
        Algorithm 1): the sketch then follows the top singular directions more closely.
        At most 1000 (``MAX_POWER_ITER``).
    seed : int, torch.Generator or None
        Randomness of the sketch.

    Returns
    -------
    QuantizedLowRank with ``.L`` (n x k) and ``.R`` (k x d).
    """
    A, rank = _check(A, rank, scales, group_size)
    gen = make_generator(seed, A.device)
    S = torch.randn((A.shape[1], rank), generator=gen, dtype=A.dtype, device=A.device)  # (d, k)
    Y = A @ S  # (n, k): step 1
    for _ in range(n_iter):  # orthonormalize between products to keep small directions
        Q, _ = torch.linalg.qr(pow2_scale(Y)[0])  # (n, k); scaled: no NaN from subnormals
        Z, _ = torch.linalg.qr(pow2_scale(A.mT @ Q)[0])  # (d, k)
        Y = A @ Z  # (n, k)
    kw = dict(scales=scales, group_size=group_size, symmetric=symmetric, scale_dtype=scale_dtype)
    L = quantize(Y, bits_left, axis=0, **kw)  # step 2
    W, rank_L = lstsq(L.to_dense(), A)  # (k, d): step 3, min ||L W - A||_F (min-norm)
    if rank_L < rank:
        warn_adjusted(
            f"the quantized left factor has rank {rank_L} < {rank}: at bits_left={bits_left} "
            f"some of its columns coincide, so the refit uses a {rank_L}-dimensional range"
        )
    R = quantize(W, bits_right, axis=1, **kw)  # step 4
    return QuantizedLowRank(L, R)


@checked
def dsvd_quant(
    A,
    rank: int,
    *,
    bits_left: int,
    bits_right: int,
    scales: str = "tensor",
    group_size: int | None = None,
    symmetric: bool = True,
    scale_dtype: torch.dtype = torch.float32,
) -> QuantizedLowRank:
    """The "direct SVD" baseline of Saha et al.: quantize U_k and Sigma_k V_k^T.

    Same parameters and result type as :func:`lplr`; deterministic (exact truncated SVD).
    """
    A, rank = _check(A, rank, scales, group_size)
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    kw = dict(scales=scales, group_size=group_size, symmetric=symmetric, scale_dtype=scale_dtype)
    L = quantize(U[:, :rank], bits_left, axis=0, **kw)
    R = quantize(S[:rank, None] * Vh[:rank], bits_right, axis=1, **kw)
    return QuantizedLowRank(L, R)


@checked
def lplr_max_rank(
    shape, compression_ratio: float, bits_left: int, bits_right: int, ref_bits: int
) -> int:
    """The paper's rank budget: ``floor(cr * n * d * b_ref / (n * b1 + d * b2))``.

    The largest k whose factors (codes only, as the paper counts) take ``cr`` times the
    storage of the n x d matrix at ``ref_bits`` bits per entry. For 1000 x 1000, b1 = 4,
    b2 = 8, cr = 1: 83 at b_ref = 1 and 166 at b_ref = 2. Quantization ranges are not
    counted here (they are in :func:`rank_for_bits`).
    """
    n, d = shape[-2:]
    return math.floor(
        compression_ratio * n * d * ref_bits / (n * bits_left + d * bits_right) + 1e-9
    )


@checked
def rank_for_bits(
    shape,
    bits_per_entry: float,
    *,
    bits_left: int,
    bits_right: int,
    scales: str = "tensor",
    group_size: int | None = None,
    scale_dtype: torch.dtype = torch.float32,
) -> int:
    """Largest rank whose :class:`QuantizedLowRank` (codes *and* ranges, as ``.nbits``
    counts them) fits ``bits_per_entry`` bits per entry of the n x d matrix.

    ``scales``, ``group_size`` and ``scale_dtype`` are those :func:`lplr` will be given (the
    ranges are stored at ``scale_dtype``'s width). Raises if even rank 1 does not fit. Ranks
    above ``min(n, d)`` are not considered.
    """
    n, d = shape[-2:]
    _check_layout(scales, 0, group_size, (n, 1))  # the layouts of L (n, k) and R (k, d)
    _check_layout(scales, 1, group_size, (1, d))
    budget = bits_per_entry * n * d
    best = 0
    kw = dict(scales=scales, group_size=group_size, scale_bits=dtype_bits(scale_dtype))
    for k in range(1, min(n, d) + 1):
        cost = quant_nbits((n, k), bits_left, axis=0, **kw)
        cost += quant_nbits((k, d), bits_right, axis=1, **kw)
        if cost > budget:
            break
        best = k
    if best == 0:
        raise ValueError(
            f"bits_per_entry (={bits_per_entry}) is too small for shape {(n, d)}: "
            "even rank 1 does not fit"
        )
    return best
