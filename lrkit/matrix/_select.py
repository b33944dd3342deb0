"""How a CUR decomposition chooses its columns and rows (the rules of ``lrkit.cur``'s ``method``).

Rows are chosen as the columns of A^T. ``"leverage"`` and ``"uniform"`` sample (Mahoney &
Drineas 2009), ``"deim"`` interpolates the singular vectors greedily (Sorensen & Embree
2016), ``"qr"`` takes the pivots of a column-pivoted QR (Voronin & Martinsson 2017). The CUR
result and the core live in ``cur.py``; the arguments are checked there.
"""

from __future__ import annotations

import warnings

import torch

from ..core.lowrank import LowRank
from .interp import pivoted_qr
from .rsvd import rsvd
from .svd import truncated_svd

__all__ = ["select", "sample", "deim", "singular_vectors", "EXACT_SVD_MAX"]

EXACT_SVD_MAX = 1000  # svd="auto": an exact SVD up to min(m, n) = 1000, rsvd beyond


def sample(scores: torch.Tensor, count: int, sampling: str, gen) -> torch.Tensor:
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


def deim(V: torch.Tensor) -> torch.Tensor:
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


def singular_vectors(A, Asp, k: int, svd, gen):
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


def n_singular_vectors(method: str, rank: int, n_cols: int, n_rows: int) -> int:
    """How many singular vectors ``method`` needs: k for the leverage scores, one per
    DEIM index, none for "qr" and "uniform"."""
    return {"leverage": rank, "deim": max(n_cols, n_rows)}.get(method, 0)


def select(A, Asp, method, rank, n_cols, n_rows, sampling, svd, gen, dtype, device):
    """Column and row indices (int64, in the order picked) for ``lrkit.cur``.

    ``A`` is the checked dense matrix, or the sparse input with ``Asp`` its scipy form;
    ``dtype`` and ``device`` are the result's. The counts, ``sampling`` and ``svd`` are already
    checked against ``method`` by ``cur``.
    """
    m, n = A.shape
    k = n_singular_vectors(method, rank, n_cols, n_rows)
    if k:
        Uk, Vhk = singular_vectors(A, Asp, k, svd, gen)  # (m, k), (k, n)
        Uk, Vhk = Uk.to(device=device, dtype=dtype), Vhk.to(device=device, dtype=dtype)
    if method == "leverage":  # Mahoney & Drineas 2009: scores = squared row norms of V_k
        cols = sample((Vhk**2).sum(0), n_cols, sampling, gen)
        rows = sample((Uk**2).sum(1), n_rows, sampling, gen)
    elif method == "uniform":
        cols = sample(torch.ones(n, dtype=dtype, device=device), n_cols, sampling, gen)
        rows = sample(torch.ones(m, dtype=dtype, device=device), n_rows, sampling, gen)
    elif method == "deim":  # Sorensen & Embree 2016: DEIM on V picks C, DEIM on U picks R
        cols = deim(Vhk[:n_cols].mT)
        rows = deim(Uk[:, :n_rows])
    else:  # Voronin & Martinsson 2017: a column ID of A, then a row ID of C
        dense = A if Asp is None else torch.from_numpy(Asp.toarray())
        cols = pivoted_qr(dense)[1][:n_cols]
        # C has only n_cols independent rows to tell apart; for more rows, pivot on A^T.
        rows = pivoted_qr((dense[:, cols] if n_rows <= n_cols else dense).mT)[1][:n_rows]
    return cols, rows
