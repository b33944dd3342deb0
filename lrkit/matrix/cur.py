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
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from ..core._checks import as_matrix, check_choice, check_positive_int, check_rank
from ..core._operator import as_operator
from ..core._random import make_generator
from ..core.factorization import Factorization, LowRank, dtype_bits
from .interp import pivoted_qr
from .rsvd import rsvd
from .svd import truncated_svd

__all__ = ["cur", "CUR"]

METHODS = ("leverage", "deim", "qr", "uniform")
CORES = ("pinv", "intersection")
SAMPLINGS = ("without", "with", "topk")
SVDS = ("auto", "exact", "randomized")
EXACT_SVD_MAX = 1000  # svd="auto": an exact SVD up to min(m, n) = 1000, rsvd beyond


# -- choosing columns (rows are columns of A^T) ------------------------------------------------
def _sample(scores: torch.Tensor, count: int, sampling: str, gen) -> torch.Tensor:
    """``count`` indices drawn with probability proportional to ``scores``, in draw order."""
    if sampling == "topk":  # deterministic: the largest scores, ties broken by index
        return torch.sort(scores, descending=True, stable=True).indices[:count]
    p = scores / scores.sum()
    if sampling == "with":
        draws = torch.multinomial(p, count, replacement=True, generator=gen)
        # Keep each column once (a repeat adds nothing to the span), in order of first draw.
        uniq, inverse = torch.unique(draws, return_inverse=True)
        first = torch.full_like(uniq, count).scatter_reduce(
            0, inverse, torch.arange(count, device=draws.device), "amin"
        )
        return uniq[torch.argsort(first)]
    # Without replacement: each index gets the key E_j / p_j, E_j ~ Exp(1), and the smallest
    # keys win (Efraimidis & Spirakis 2006): the same law as drawing one at a time and
    # removing it. A zero score gets key inf and is taken only after all positive ones.
    E = torch.empty_like(p).exponential_(generator=gen)
    keys = torch.where(p > 0, E / p, torch.inf)
    return torch.sort(keys, stable=True).indices[:count]


def _deim(V: torch.Tensor) -> torch.Tensor:
    """DEIM indices of the columns of V (N x k), the selection Sorensen & Embree 2016 use.

    Step j takes the entry where the j-th vector is worst interpolated from the entries
    already chosen: ``r = v_j - V_j V_j[p]^-1 v_j[p]``, ``p_j = argmax |r|``. Signs of the
    singular vectors do not matter, so the choice is deterministic.
    """
    p = V[:, 0].abs().argmax().reshape(1)
    for j in range(1, V.shape[1]):
        coef = torch.linalg.solve(V[p, :j], V[p, j])  # (j,)
        residual = V[:, j] - V[:, :j] @ coef  # (N,)
        p = torch.cat([p, residual.abs().argmax().reshape(1)])
    return p


def _singular_vectors(A, Asp, k: int, svd, gen):
    """Top-k left (m x k) and right (k x n) singular vectors, exact or by lrkit's rsvd."""
    if isinstance(svd, LowRank):  # computed by the caller, e.g. once for a sweep
        return svd.U[:, :k], svd.Vh[:k]
    if svd == "auto":
        small = Asp is None and min(A.shape) <= EXACT_SVD_MAX
        svd = "exact" if small else "randomized"
    if svd == "exact":
        dense = A if Asp is None else torch.from_numpy(Asp.toarray())
        U, _, Vh = truncated_svd(dense, k)
    else:
        with warnings.catch_warnings():  # rank + 10 clipped to min(m, n): fine here
            warnings.filterwarnings("ignore", "rank \\+ oversample", UserWarning)
            U, _, Vh = rsvd(A if Asp is None else Asp, k, seed=gen)
    return U, Vh


# -- CUR result --------------------------------------------------------------------------------
def _values(t: torch.Tensor) -> torch.Tensor:
    return t.values() if t.layout != torch.strided else t


def _index_bits(t: torch.Tensor) -> int:
    """Bits of the index arrays of a sparse CSR tensor (0 for a dense one)."""
    if t.layout != torch.sparse_csr:
        return 0
    return sum(i.numel() * dtype_bits(i.dtype) for i in (t.crow_indices(), t.col_indices()))


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

    Storage (``nbits``) counts every stored number at its dtype: the entries of C, U and R
    (for sparse C and R, their nonzeros plus the CSR index arrays, 32 bits each) and the
    indices ``cols`` and ``rows`` (64 bits each). ``num_params`` counts the real numbers
    only (nonzeros of a sparse C or R). If A itself is kept anyway, C and R are views into
    it, and the extra storage is only U and the indices.
    """

    _fields = ("C", "U", "R", "cols", "rows")

    def __init__(self, C, U, R, cols, rows, *, method: str = "", u: str = ""):
        c, r = U.shape
        if C.shape[1] != c or R.shape[0] != r or cols.shape != (c,) or rows.shape != (r,):
            raise ValueError(
                f"shapes do not agree: C {tuple(C.shape)}, U {tuple(U.shape)}, R "
                f"{tuple(R.shape)}, cols {tuple(cols.shape)}, rows {tuple(rows.shape)}; need "
                f"C (m, c), U (c, r), R (r, n), cols (c,), rows (r,)"
            )
        self.C, self.U, self.R, self.cols, self.rows = C, U, R, cols, rows
        self.method, self.u = method, u

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

    @property
    def num_params(self) -> int:
        """Stored real numbers: entries of C, U and R (nonzeros when sparse)."""
        return sum(_values(t).numel() for t in (self.C, self.U, self.R))

    def _index_nbits(self) -> int:
        idx = (self.cols, self.rows)
        return _index_bits(self.C) + _index_bits(self.R) + sum(t.numel() * 64 for t in idx)

    @property
    def nbits(self) -> int:
        values = sum(_values(t).numel() * dtype_bits(t.dtype) for t in (self.C, self.U, self.R))
        return values + self._index_nbits()

    def nbits_at(self, width: int) -> int:
        """Storage if C, U and R were kept at ``width`` bits; indices as stored."""
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width (={width!r}) must be a positive integer number of bits")
        return self.num_params * width + self._index_nbits()

    def _describe(self) -> str:
        kind = ", sparse C and R" if self.is_sparse else ""
        return (
            f"{self.C.shape[1]} cols, {self.R.shape[0]} rows, method={self.method!r}, "
            f"u={self.u!r}{kind}"
        )


# -- the decomposition -------------------------------------------------------------------------
def _check_count(value, name: str, rank: int, limit: int, limit_name: str) -> int:
    value = rank if value is None else check_positive_int(value, name)
    if value < rank:
        raise ValueError(f"{name} (={value}) must be >= rank = {rank}")
    if value > limit:
        raise ValueError(f"{name} (={value}) must be <= {limit_name} = {limit}")
    return value


def cur(
    A,
    rank: int,
    *,
    method: str = "leverage",
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
        Target rank k: the number of singular vectors behind the leverage scores and the
        default number of columns and rows, ``1 <= rank <= min(m, n)``.
    method : {"leverage", "deim", "qr", "uniform"}, default "leverage"
        How columns and rows are chosen. "deim" and "qr" are deterministic. "qr" runs a
        dense pivoted QR on the CPU (a sparse A is densified for it).
    n_cols, n_rows : int, default ``rank``
        How many columns and rows to pick (oversampling: more than ``rank``), at least
        ``rank`` and at most n and m ("deim": at most min(m, n), one per singular vector).
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
        below the truncated SVD's (Eckart-Young); oversampling can go below it.

    Examples
    --------
    >>> import torch
    >>> from lrkit import cur
    >>> A = torch.randn(50, 6, dtype=torch.float64) @ torch.randn(6, 40, dtype=torch.float64)
    >>> fact = cur(A, 6, method="deim")
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
    check_choice(method, "method", METHODS)
    check_choice(u, "u", CORES)
    if isinstance(svd, LowRank):
        if tuple(svd.shape) != (m, n):
            raise ValueError(f"svd has shape {tuple(svd.shape)}; A has shape {(m, n)}")
    else:
        check_choice(svd, "svd", SVDS)
    if sampling is not None and method in ("deim", "qr"):
        raise ValueError(f"sampling (={sampling!r}) applies to 'leverage' and 'uniform' only")
    sampling = check_choice("without" if sampling is None else sampling, "sampling", SAMPLINGS)
    if sampling == "topk" and method == "uniform":
        raise ValueError("sampling (='topk') needs scores: use it with method='leverage'")
    lim, lim_name = (min(m, n), "min(m, n)") if method == "deim" else (n, "n")
    n_cols = _check_count(n_cols, "n_cols", rank, lim, lim_name)
    lim, lim_name = (min(m, n), "min(m, n)") if method == "deim" else (m, "m")
    n_rows = _check_count(n_rows, "n_rows", rank, lim, lim_name)
    gen = make_generator(seed, device)

    # 1. Choose the columns and the rows.
    if method in ("leverage", "deim"):
        k = rank if method == "leverage" else max(n_cols, n_rows)
        if isinstance(svd, LowRank) and svd.rank < k:
            raise ValueError(
                f"svd has rank {svd.rank}; method={method!r} needs {k} singular vectors"
            )
        Uk, Vhk = _singular_vectors(A, Asp, k, svd, gen)  # (m, k), (k, n)
        Uk, Vhk = Uk.to(device=device, dtype=dtype), Vhk.to(device=device, dtype=dtype)
    if method == "leverage":  # Mahoney & Drineas 2009: scores = squared row norms of V_k
        cols = _sample((Vhk**2).sum(0), n_cols, sampling, gen)
        rows = _sample((Uk**2).sum(1), n_rows, sampling, gen)
    elif method == "uniform":
        cols = _sample(torch.ones(n, dtype=dtype, device=device), n_cols, sampling, gen)
        rows = _sample(torch.ones(m, dtype=dtype, device=device), n_rows, sampling, gen)
    elif method == "deim":  # Sorensen & Embree 2016: DEIM on V picks C, DEIM on U picks R
        cols = _deim(Vhk[:n_cols].mT)
        rows = _deim(Uk[:, :n_rows])
    else:  # Voronin & Martinsson 2017: a column ID of A, then a row ID of C
        dense = A if Asp is None else torch.from_numpy(Asp.toarray())
        cols = pivoted_qr(dense)[1][:n_cols]
        # C has only n_cols independent rows to tell apart; for more rows, pivot on A^T.
        rows = pivoted_qr((dense[:, cols] if n_rows <= n_cols else dense).mT)[1][:n_rows]

    # 2. C and R: copies of real columns and rows.
    if Asp is None:
        C, R = A[:, cols], A[rows, :]  # (m, c), (r, n): indexing copies
        Cd, Rd = C, R
    else:
        c_np, r_np = cols.cpu().numpy(), rows.cpu().numpy()
        C, R = _torch_csr(Asp[:, c_np]), _torch_csr(Asp[r_np, :])
        Cd, Rd = C.to_dense(), R.to_dense()

    # 3. The core.
    if u == "pinv":  # C^+ (A R^+): the least-squares core, one more pass over A
        ARp = torch.linalg.pinv(Rd)  # (n, r)
        ARp = A @ ARp if Asp is None else torch.from_numpy(Asp @ ARp.numpy())  # (m, r)
        U = torch.linalg.pinv(Cd) @ ARp  # (c, r)
    else:  # W^+ from the c x r crossing entries only
        U = torch.linalg.pinv(Rd[:, cols])  # W = A[rows][:, cols] (r, c); U (c, r)
    if not bool(torch.isfinite(U).all()):  # U scales as 1 / A: tiny A, huge U
        raise ValueError(
            f"the CUR core U has entries beyond the range of {U.dtype} (A's largest entry is "
            f"{float(_values(Cd).abs().max()):.3g} and U scales as 1 / A); pass A in "
            f"float64 or multiply it by a constant first"
        )
    return CUR(C, U.contiguous(), R, cols.to(device), rows.to(device), method=method, u=u)
