"""A single-pass sketch for a matrix that is seen once, in pieces.

Tropp, Yurtsever, Udell & Cevher, "Practical sketching algorithms for low-rank matrix
approximation", SIAM J. Matrix Anal. Appl. 38(4), 2017.

Two random test matrices are drawn once: Omega (n x k) and Psi (l x m), with l > k. The
sketch keeps only

    Y = A Omega   (m x k, the range sketch)      W = Psi A   (l x n, the co-range sketch)

Both are linear in A, so any stream of additive updates (a block of rows, a block of
columns, a whole matrix ``H`` with ``A <- A + H``) updates them exactly, and A itself is never
stored. At the end (their "simple" reconstruction): ``Q = orth(Y)``,
``X = (Psi Q)^+ W`` (a small least-squares problem), ``A ~= Q X``; a truncated SVD of X gives
the rank-r result. Memory: ``k (m + n) + l (m + n)`` numbers instead of ``m n``.
"""

from __future__ import annotations

import torch

from ..core._checks import as_matrix, check_positive_int, check_rank, warn_adjusted
from ..core._linalg import lstsq, pow2_scale, svd_flip
from ..core._params import checked
from ..core._random import make_generator
from ..core.factorization import dtype_bits
from ..core.lowrank import LowRank

__all__ = ["StreamingSketch"]


class StreamingSketch:
    """Sketch an m x n matrix in one pass over blocks of its rows or columns.

    Parameters
    ----------
    shape : (m, n)
    rank : int
        Rank r of the result of :meth:`to_lowrank`.
    range_size : int, optional
        k, columns of the range sketch; default ``2 r + 1``. Larger k: closer to optimal. A
        single pass has no power iterations, so on a slowly decaying spectrum (signal plus
        flat noise) the default is about 1.8x the optimal error, 4r + 1 about 1.4x and
        8r + 1 about 1.2x (measured in lesson 02); memory grows linearly with k.
    corange_size : int, optional
        l, rows of the co-range sketch, must exceed k; default ``2 k + 1``, so that the
        least-squares step is well conditioned.
    dtype, device : where the sketch lives (float32 on the CPU by default).
    seed : int, torch.Generator or None

    Examples
    --------
    >>> sk = StreamingSketch((1000, 300), rank=10, seed=0)
    >>> for start in range(0, 1000, 100):              # doctest: +SKIP
    ...     sk.add_rows(read_rows(start, 100), start)
    >>> approx = sk.to_lowrank()                        # doctest: +SKIP
    """

    @checked
    def __init__(
        self,
        shape,
        rank: int,
        *,
        range_size: int | None = None,
        corange_size: int | None = None,
        dtype: torch.dtype = torch.float32,
        device="cpu",
        seed=None,
    ):
        m, n = shape
        self.rank = check_rank(rank, shape)
        k = 2 * self.rank + 1 if range_size is None else range_size
        l = 2 * k + 1 if corange_size is None else corange_size
        if k < self.rank:
            raise ValueError(f"range_size (={k}) must be >= rank (={self.rank})")
        if l <= k and corange_size is not None:
            raise ValueError(f"corange_size (={l}) must be > range_size (={k})")
        if k > min(m, n) or l > m:
            k, l = min(k, min(m, n)), min(l, m)
            warn_adjusted(f"sketch sizes clipped to the matrix: range_size={k}, corange_size={l}")
        self.shape = torch.Size((m, n))
        gen = make_generator(seed, device)
        kw = dict(dtype=dtype, device=device)
        self.Omega = torch.randn((n, k), generator=gen, **kw)  # (n, k)
        self.Psi = torch.randn((l, m), generator=gen, **kw)  # (l, m)
        self.Y = torch.zeros((m, k), **kw)  # A Omega
        self.W = torch.zeros((l, n), **kw)  # Psi A

    @property
    def nbits(self) -> int:
        """Storage held by the sketch and its test matrices, in bits (as ``.nbits`` of every
        lrkit result counts it)."""
        return sum(t.numel() * dtype_bits(t.dtype) for t in (self.Omega, self.Psi, self.Y, self.W))

    def _block(self, block, name):
        return as_matrix(block, name).to(device=self.Y.device, dtype=self.Y.dtype)

    def add_rows(self, rows, start: int) -> None:
        """Add a block of rows: ``A[start:start + b, :] += rows`` (b x n)."""
        rows = self._block(rows, "rows")
        b, n = rows.shape
        if n != self.shape[1] or not 0 <= start <= self.shape[0] - b:
            raise ValueError(
                f"rows of shape {(b, n)} at start={start} do not fit in a matrix of shape "
                f"{tuple(self.shape)}"
            )
        self.Y[start : start + b] += rows @ self.Omega  # (b, k)
        self.W += self.Psi[:, start : start + b] @ rows  # (l, n)

    def add_cols(self, cols, start: int) -> None:
        """Add a block of columns: ``A[:, start:start + b] += cols`` (m x b)."""
        cols = self._block(cols, "cols")
        m, b = cols.shape
        if m != self.shape[0] or not 0 <= start <= self.shape[1] - b:
            raise ValueError(
                f"cols of shape {(m, b)} at start={start} do not fit in a matrix of shape "
                f"{tuple(self.shape)}"
            )
        self.Y += cols @ self.Omega[start : start + b]  # (m, k)
        self.W[:, start : start + b] += self.Psi @ cols  # (l, b)

    def add(self, H, scale: float = 1.0) -> None:
        """Linear update of the whole matrix: ``A <- A + scale * H``."""
        H = self._block(H, "H")
        if H.shape != self.shape:
            raise ValueError(f"H has shape {tuple(H.shape)}, the sketch is {tuple(self.shape)}")
        self.Y += scale * (H @ self.Omega)
        self.W += scale * (self.Psi @ H)

    def to_lowrank(self, rank: int | None = None) -> LowRank:
        """Rank-``rank`` approximation (default: the sketch's rank) from the sketches alone."""
        r = self.rank if rank is None else check_positive_int(rank, "rank")
        if r > self.Y.shape[1]:
            raise ValueError(f"rank (={r}) must be <= range_size = {self.Y.shape[1]}")
        Q, _ = torch.linalg.qr(pow2_scale(self.Y)[0])  # (m, k); scaled: subnormal Y is fine
        X, _ = lstsq(self.Psi @ Q, self.W)  # (k, n): min ||(Psi Q) X - W||_F
        U_X, S, Vh = torch.linalg.svd(X, full_matrices=False)
        U, Vh = svd_flip(Q @ U_X[:, :r], Vh[:r])
        return LowRank(U.contiguous(), S[:r].contiguous(), Vh.contiguous())
