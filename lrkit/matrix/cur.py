"""CUR decompositions: a low-rank matrix built from its own columns and rows.

``A ~= C @ U @ R`` with ``C = A[:, cols]`` (m x c) and ``R = A[rows, :]`` (r x n) real
columns and rows of A, and a small c x r core U. Unlike the SVD's singular vectors, the
columns of C are data you can point at (a pixel, a word, a customer), and they are as sparse
as A is. The price: for the same rank, a CUR is never better than the truncated SVD.

Two choices make a CUR:

1. **Which columns and rows.**
   - ``"leverage"``: sample column j with probability proportional to its leverage score
     ``||Vh_k[:, j]||^2`` (the squared norm of column j of the top-k right singular vectors,
     i.e. how much of column j lies in the dominant subspace), rows likewise from U_k.
     With ``c = O(k log k / eps^2)`` columns this gives, with high probability,
     ``||A - CUR||_F <= (2 + eps) ||A - A_k||_F`` (Mahoney & Drineas 2009, PNAS 106(3)).
   - ``"deim"``: the discrete empirical interpolation method on the singular vectors, a
     deterministic greedy choice (Sorensen & Embree 2016, SIAM J. Sci. Comput. 38(3)).
   - ``"qr"``: the pivots of a column-pivoted QR, i.e. an interpolative decomposition
     (Voronin & Martinsson 2017, Adv. Comput. Math. 43: rows from the pivoted QR of C^T).
   - ``"uniform"``: every column equally likely; the baseline leverage scores improve on.
2. **The core U.**
   - ``"pinv"``: ``U = C^+ A R^+``, the best core for the chosen C and R (it minimizes
     ``||A - C X R||_F`` over all X); it costs a pass over all of A.
   - ``"intersection"``: ``U = W^+`` with ``W = A[rows][:, cols]``, built from the c x r
     entries where the chosen rows and columns cross; cheap (A is never read again) and
     exact when ``rank(W) = rank(A)``, but on a noisy matrix W's small singular values
     blow up in W^+ and the error can be much larger.

If A is exactly of rank r and the chosen columns and rows each span it, both cores give
``CUR = A`` exactly (a classical identity; see Hamm & Huang 2020, Appl. Comput. Harmon.
Anal. 48, for a survey).

**The default, and why.** ``cur(A, k)`` takes ``2k`` columns and ``2k`` rows by DEIM (on the
top 2k singular vectors) with the ``"pinv"`` core. With exactly k of each, no rule is
reliably close to the optimum on noisy low-rank data: over 216 noisy rank-r matrices (four
shapes from 200 x 200 to 1000 x 200, r = 5, 12, 30, noise 1%, 10% and 50% of the signal's
norm, flat and decaying spectra, 3 seeds), ``||A - CUR||_F / ||A - A_k||_F`` with k = r reached
30.6x for leverage sampling (median 2.8x), 3.0x for DEIM and 2.5x for QR, the worst at k = 30
on a flat spectrum. Their proven bounds are looser still (DEIM's factor is at most
``sqrt(n k / 3) 2^k`` per side, Sorensen & Embree 2016). With 2k columns and rows the worst
ratio was 1.46x for DEIM, 1.38x for QR and 1.82x for leverage sampling, and 1.78x for DEIM
with 1.5k. DEIM is
deterministic, reads A only through an SVD (randomized for large or sparse A), and keeps
sparse input sparse; QR densifies A for a full pivoted QR. The price of the default is
storage: about twice that of a rank-k truncated SVD (``2k (m + n) + 4k^2`` numbers), and
a CUR of rank up to 2k, so compare it with the SVD at equal storage, or pass
``n_cols=k, n_rows=k`` for a CUR of rank k. ``benchmarks/bench_cur.py`` prints the table.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from ..core._checks import as_matrix, check_rank
from ..core._operator import as_operator
from ..core._params import checked
from ..core._random import make_generator
from ..core.factorization import Factorization
from ..core.lowrank import LowRank
from ._select import n_singular_vectors, select

__all__ = ["cur", "CUR"]

OVERSAMPLE = 2  # default n_cols = n_rows = 2 * rank: see "The default, and why" above


# -- CUR result --------------------------------------------------------------------------------
def _torch_csr(M) -> torch.Tensor:
    """A scipy sparse matrix as a torch CSR tensor with 32-bit indices (64 if needed)."""
    M = sp.csr_array(M)
    itype = np.int32 if M.nnz < 2**31 else np.int64
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(M.indptr.astype(itype)),
            torch.from_numpy(M.indices.astype(itype)),
            torch.from_numpy(M.data.copy()),
            size=M.shape,
            check_invariants=False,
        )


class CUR(Factorization):
    """``A ~= C @ U @ R``: C = A[:, cols] (m x c), U (c x r), R = A[rows, :] (r x n).

    ``cols`` and ``rows`` (int64) are in the order they were picked: for ``"deim"``,
    ``"qr"`` and top-k selection, most important first. C and R are torch sparse CSR
    tensors when A was a scipy sparse matrix, dense otherwise. Unpacks as ``C, U, R = cur``.

    ``rank`` is the target rank the columns and rows were chosen for (the number of singular
    vectors behind the scores), at most ``min(len(cols), len(rows))``.

    Storage (``nbits``) counts every stored number at its dtype: the entries of C, U and R
    (for sparse C and R, their nonzeros plus the CSR index arrays, 32 bits each) and the
    indices ``cols`` and ``rows`` (64 bits each). ``num_params`` counts the real numbers
    only (nonzeros of a sparse C or R). If A itself is kept anyway, C and R are views into
    it, and the extra storage is only U and the indices.
    """

    _fields = ("C", "U", "R", "cols", "rows")

    def __init__(self, C, U, R, cols, rows, *, rank=None, method: str = "", u: str = ""):
        c, r = U.shape
        if C.shape[1] != c or R.shape[0] != r or cols.shape != (c,) or rows.shape != (r,):
            raise ValueError(
                f"shapes do not agree: C {tuple(C.shape)}, U {tuple(U.shape)}, R "
                f"{tuple(R.shape)}, cols {tuple(cols.shape)}, rows {tuple(rows.shape)}; need "
                f"C (m, c), U (c, r), R (r, n), cols (c,), rows (r,)"
            )
        self.C, self.U, self.R, self.cols, self.rows = C, U, R, cols, rows
        self.method, self.u = method, u
        self.rank = min(c, r) if rank is None else int(rank)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.C.shape[0], self.R.shape[1]))

    @property
    def is_sparse(self) -> bool:
        return self.C.layout != torch.strided

    def __iter__(self):
        return iter((self.C, self.U, self.R))

    def to_dense(self) -> torch.Tensor:
        return self.C @ (self.U @ self.R)  # (m, c) @ ((c, r) @ (r, n))

    def _matmul(self, X: torch.Tensor) -> torch.Tensor:
        return self.C @ (self.U @ (self.R @ X))  # c m + c r + r n per column of X

    def _rmatmul(self, X: torch.Tensor) -> torch.Tensor:
        return ((X @ self.C) @ self.U) @ self.R

    def _describe(self) -> str:
        kind = ", sparse C and R" if self.is_sparse else ""
        return (
            f"{self.C.shape[1]} cols, {self.R.shape[0]} rows, method={self.method!r}, "
            f"u={self.u!r}{kind}"
        )


# -- the decomposition -------------------------------------------------------------------------
def _check_count(value, name: str, rank: int, limit: int, limit_name: str) -> int:
    if value is not None and not rank <= value <= limit:
        raise ValueError(f"{name} (={value}) must be in [rank, {limit_name}] = [{rank}, {limit}]")
    return rank if value is None else value


def _assemble(A, Asp, cols: torch.Tensor, rows: torch.Tensor, u: str):
    """C (m, c) and R (r, n), copies of the chosen columns and rows, and the core U (c, r)."""
    # C and R: copies of real columns and rows.
    if Asp is None:
        C, R = A[:, cols], A[rows, :]  # (m, c), (r, n): indexing copies
        Cd, Rd = C, R
    else:
        c_np, r_np = cols.cpu().numpy(), rows.cpu().numpy()
        C, R = _torch_csr(Asp[:, c_np]), _torch_csr(Asp[r_np, :])
        Cd, Rd = C.to_dense(), R.to_dense()

    # The core.
    if u == "pinv":  # C^+ (A R^+): the least-squares core, one more pass over A
        ARp = torch.linalg.pinv(Rd)  # (n, r)
        ARp = A @ ARp if Asp is None else torch.from_numpy(Asp @ ARp.numpy())  # (m, r)
        U = torch.linalg.pinv(Cd) @ ARp  # (c, r)
    else:  # W^+ from the c x r crossing entries only
        U = torch.linalg.pinv(Rd[:, cols])  # W = A[rows][:, cols] (r, c); U (c, r)
    return C, U, R


@checked
def cur(
    A,
    rank: int,
    *,
    method: str = "deim",
    n_cols: int | None = None,
    n_rows: int | None = None,
    u: str = "pinv",
    sampling: str | None = None,
    svd: str | LowRank = "auto",
    seed=None,
) -> CUR:
    """CUR decomposition ``A ~= A[:, cols] @ U @ A[rows, :]`` (see the module docstring).

    Parameters
    ----------
    A : numpy.ndarray, torch.Tensor or scipy sparse matrix, shape (m, n)
        float32 and float64 keep their dtype; integer input is computed in float32. Sparse
        input gives sparse C and R (torch CSR, on the CPU). A is never modified.
    rank : int
        Target rank k, ``1 <= rank <= min(m, n)``: the error is measured against the best
        rank-k approximation. It sets the number of singular vectors behind the leverage
        scores, and half the default number of columns and rows.
    method : {"deim", "qr", "leverage", "uniform"}, default "deim"
        How columns and rows are chosen. "deim" and "qr" are deterministic. "qr" runs a
        dense pivoted QR on the CPU (a sparse A is densified for it). See the module
        docstring for why DEIM is the default.
    n_cols, n_rows : int, default ``min(2 * rank, limit)``
        How many columns and rows to pick, at least ``rank`` and at most n and m ("deim":
        at most min(m, n), one per singular vector); the default oversamples twice, clipped
        to that limit. ``n_cols = n_rows = rank`` gives a CUR of rank at most ``rank``.
    u : {"pinv", "intersection"}, default "pinv"
        The core: ``C^+ A R^+`` (best for the chosen C and R, one more pass over A) or
        ``W^+`` (cheap, but unstable on noisy data); see the module docstring.
    sampling : {"without", "with", "topk"} or None, default None
        For "leverage" and "uniform" only; None means "without". Draw without or with
        replacement (repeats are dropped, so C may have fewer than ``n_cols`` columns), or
        take the largest leverage scores deterministically ("leverage" only).
    svd : {"auto", "exact", "randomized"} or LowRank, default "auto"
        How "leverage" and "deim" get the singular vectors: ``truncated_svd`` or lrkit's
        ``rsvd`` (oversample 10, 2 power iterations). "auto": exact for dense A with
        min(m, n) <= 1000, randomized otherwise (always for sparse A). Or pass an SVD of A
        you already have (e.g. ``truncated_svd(A, 40)``, rank >= the vectors needed), so
        a sweep over ranks or seeds computes it once.
    seed : int, torch.Generator or None
        Randomness of the sampling and of the randomized SVD, drawn on A's device.

    Returns
    -------
    CUR
        ``C``, ``U``, ``R`` and the indices ``cols``, ``rows``, on A's device. With
        ``n_cols = n_rows = rank`` its rank is at most ``rank``, so its error is never
        below the truncated SVD's (Eckart-Young); oversampling, the default included, can go
        below it.

    Examples
    --------
    >>> import torch
    >>> from lrkit import cur
    >>> A = torch.randn(50, 6, dtype=torch.float64) @ torch.randn(6, 40, dtype=torch.float64)
    >>> fact = cur(A, 6)  # DEIM, 12 columns and 12 rows
    >>> bool(torch.allclose(fact.to_dense(), A)), tuple(fact.C.shape), tuple(fact.R.shape)
    (True, (50, 12), (12, 40))
    >>> fact = cur(A, 6, n_cols=6, n_rows=6)  # exactly rank 6: 6 of each suffice
    >>> bool(torch.allclose(fact.to_dense(), A)), tuple(fact.C.shape), tuple(fact.R.shape)
    (True, (50, 6), (6, 40))
    """
    if isinstance(A, torch.Tensor) and A.layout != torch.strided:
        raise TypeError("A is a torch sparse tensor; pass a scipy sparse matrix or a dense one")
    Asp = None
    if sp.issparse(A):
        op = as_operator(A, "A")  # checks NaN, complex and empty input; float32 or float64
        Asp, dtype, device = op.A, op.dtype, torch.device("cpu")
    else:
        A = as_matrix(A, "A")
        dtype, device = A.dtype, A.device
    m, n = A.shape
    rank = check_rank(rank, (m, n))
    if isinstance(svd, LowRank) and tuple(svd.shape) != (m, n):
        raise ValueError(f"svd has shape {tuple(svd.shape)}; A has shape {(m, n)}")
    if sampling is not None and method in ("deim", "qr"):
        raise ValueError(f"sampling (={sampling!r}) applies to 'leverage' and 'uniform' only")
    sampling = "without" if sampling is None else sampling
    if sampling == "topk" and method == "uniform":
        raise ValueError("sampling (='topk') needs scores: use it with method='leverage'")
    lim, lim_name = (min(m, n), "min(m, n)") if method == "deim" else (n, "n")
    n_cols = min(OVERSAMPLE * rank, lim) if n_cols is None else n_cols
    n_cols = _check_count(n_cols, "n_cols", rank, lim, lim_name)
    lim, lim_name = (min(m, n), "min(m, n)") if method == "deim" else (m, "m")
    n_rows = min(OVERSAMPLE * rank, lim) if n_rows is None else n_rows
    n_rows = _check_count(n_rows, "n_rows", rank, lim, lim_name)
    gen = make_generator(seed, device)

    # 1. Choose the columns and the rows (_select.py).
    k = n_singular_vectors(method, rank, n_cols, n_rows)
    if isinstance(svd, LowRank) and svd.rank < k:
        raise ValueError(f"svd has rank {svd.rank}; method={method!r} needs {k} singular vectors")
    cols, rows = select(A, Asp, method, rank, n_cols, n_rows, sampling, svd, gen, dtype, device)

    # 2. C, U and R from them.
    C, U, R = _assemble(A, Asp, cols, rows, u)
    if not bool(torch.isfinite(U).all()):  # U scales as 1 / A: tiny A, huge U
        Cd = C.to_dense() if C.layout != torch.strided else C
        raise ValueError(
            f"the CUR core U has entries beyond the range of {U.dtype} (A's largest entry is "
            f"{float(Cd.abs().max()):.3g} and U scales as 1 / A); pass A in "
            f"float64 or multiply it by a constant first"
        )
    return CUR(
        C, U.contiguous(), R, cols.to(device), rows.to(device), rank=rank, method=method, u=u
    )
