"""Data-aware truncations of a layer's weight: plain functions of the weight and its
calibration statistics (:func:`lrkit.nn.calibrate`), each returning a :class:`LowRank`.

Conventions: a Linear computes ``y = x @ W.T`` with W (out, in); calibration inputs are the
rows of X (tokens, in), so the layer's output error on them is ``||X (W - W')^T||_F``.

- ``asvd`` (Yuan et al., "ASVD: Activation-aware Singular Value Decomposition for Compressing
  Large Language Models", 2023): scale input column j of W by ``s_j = mean|x_j|^alpha``,
  truncate ``W diag(s)``, unscale. Columns that see large activations are kept more exactly.
- ``whiten`` (Wang et al., "SVD-LLM: Truncation-aware Singular Value Decomposition for Large
  Language Model Compression", 2024): with ``X^T X = L L^T`` (Cholesky), the output error is
  ``||(W - W') L||_F``, so the SVD of ``W L`` truncated to rank r and mapped back by
  ``L^{-1}`` (a triangular solve, never an inverse) is the best rank-r W' on the calibration
  data: its error is exactly ``sqrt(sum_{i>r} sigma_i(W L)^2)`` (Eckart-Young on ``W L``).
- ``fwsvd`` (Hsu et al., "Language Model Compression with Weighted Low-Rank Factorization",
  ICLR 2022): Fisher-weighted truncation, ``min ||diag(d) (W - W')||_F`` with one importance
  per output row (``side="output"``: ``d_i = sqrt(sum_j F_ij)``, F the accumulated squared
  gradients of W), or per input column (``side="input"``: ``||(W - W') diag(d)||_F``, d_j
  summed over rows). Implementations differ on the side; lrkit defaults to output rows,
  the grouping of Hsu et al.'s row-wise importance (one weight per output neuron), and
  offers both: each is an exact weighted problem, solved by the SVD of the scaled weight.
"""

from __future__ import annotations

import torch

from ..core._checks import as_matrix, as_tensor, check_rank, warn_adjusted
from ..core._params import checked
from ..core.lowrank import LowRank
from ..matrix.svd import truncated_svd

__all__ = ["asvd", "whiten", "fwsvd", "cholesky_shifted"]


def _weight(W, rank):
    W = as_matrix(W, "W")
    return W, check_rank(rank, W.shape)


def _per_channel(v, n: int, name: str, W: torch.Tensor) -> torch.Tensor:
    v = as_tensor(v, name).to(device=W.device, dtype=torch.float64)
    if v.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},), one value per channel; got {tuple(v.shape)}"
        )
    if bool((v < 0).any()):
        raise ValueError(f"{name} must be >= 0 (a mean of |x| or a sum of squares)")
    return v


def _positive(d: torch.Tensor) -> torch.Tensor:
    """Weights with zeros replaced by the smallest positive one (a channel never seen active
    is kept at the lowest weight instead of dividing by zero)."""
    pos = d[d > 0]
    floor = pos.min() if pos.numel() else torch.ones((), dtype=d.dtype, device=d.device)
    return torch.where(d > 0, d, floor)


def _balanced(U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor) -> LowRank:
    """The same product ``U diag(S) Vh`` with unit-norm columns of U and rows of Vh, the scale
    moved into S. The data-aware methods unscale one factor, which leaves it far from the
    size of the other (whitening's ``V^T L^{-1}`` has entries about 1/sqrt(tokens) times
    plain SVD's); a trainer such as Adam moves every entry by about its learning rate, so
    fine-tuning needs factors of comparable size. S keeps the order of the truncation."""
    cu, rv = U.norm(dim=-2), Vh.norm(dim=-1)  # (k,), (k,)
    cu, rv = torch.where(cu > 0, cu, 1.0), torch.where(rv > 0, rv, 1.0)
    return LowRank(U / cu, S * cu * rv, Vh / rv[:, None])


@checked
def asvd(W, rank: int, *, abs_mean, alpha: float = 0.5) -> LowRank:
    """ASVD: truncate ``W diag(s)`` with ``s = abs_mean ** alpha``, then unscale the columns.

    ``abs_mean`` (in,): the mean |x| of each input channel on calibration data; ``alpha``:
    0 gives plain SVD, the authors use 0.5. Returns ``U diag(S) (Vh / s)`` as a LowRank in
    W's dtype, its factors rescaled to unit-norm columns and rows (Vh no longer has
    orthogonal rows).
    """
    W, rank = _weight(W, rank)  # alpha: a number in [0, 2] (the parameter table)
    s = _positive(_per_channel(abs_mean, W.shape[1], "abs_mean", W)) ** alpha  # (in,)
    U, S, Vh = truncated_svd(W.double() * s, rank)  # (out, r), (r,), (r, in)
    return _balanced(U, S, Vh / s).to(W.dtype)


def cholesky_shifted(xtx: torch.Tensor, name: str = "xtx") -> tuple[torch.Tensor, float]:
    """Lower-triangular L with ``xtx + shift I = L L^T``, and the shift: 0 when xtx is
    positive definite, else the smallest tried (powers of 2 times ``eps * trace / n``, in
    float64) that makes the Cholesky factorization succeed, with a warning naming ``name``.
    A singular X^T X happens when the layer's inputs span a subspace (too few calibration
    tokens for the width, or dead channels): SVD-LLM's users meet it as a failing inverse."""
    A = xtx.to(torch.float64)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) == 0:
        return L, 0.0
    n = A.shape[0]
    unit = float(torch.finfo(torch.float64).eps * max(float(A.diagonal().sum()) / n, 1e-300))
    shift = unit
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    for _ in range(200):
        L, info = torch.linalg.cholesky_ex(A + shift * eye)
        if int(info) == 0:
            warn_adjusted(
                f"{name}: X^T X is not positive definite (the calibration inputs span fewer "
                f"than {n} directions); whitening adds {shift:.3g} * I, the smallest shift "
                f"tried that makes it so"
            )
            return L, shift
        shift *= 2
    raise ValueError(f"{name}: X^T X could not be made positive definite (is it finite?)")


@checked
def whiten(W, rank: int, *, xtx, name: str = "W") -> LowRank:
    """SVD-LLM's truncation-aware whitening: the rank-``rank`` W' minimizing the output error
    ``||X (W - W')^T||_F`` on the calibration inputs X, given ``xtx = X^T X`` (in, in).

    ``W L = U S V^T`` with ``X^T X = L L^T``; ``W' = U_r S_r (V_r^T L^{-1})``, the last
    factor by a triangular solve. Returns that product as a LowRank in W's dtype (computed
    in float64), its factors rescaled to unit-norm columns and rows. ``name`` labels the
    warning if X^T X needs a shift.
    """
    W, rank = _weight(W, rank)
    n = W.shape[1]
    xtx = as_tensor(xtx, "xtx").to(device=W.device)
    if xtx.shape != (n, n):
        raise ValueError(f"xtx must have shape ({n}, {n}) for W of shape {tuple(W.shape)}")
    L, _ = cholesky_shifted(xtx, name)  # (in, in), lower
    U, S, Vh = truncated_svd(W.double() @ L, rank)  # (out, r), (r,), (r, in)
    # V_r^T L^{-1} = (L^{-T} V_r)^T: solve the upper-triangular system L^T Y = V_r
    Y = torch.linalg.solve_triangular(L.mT, Vh.mT, upper=True)  # (in, r)
    return _balanced(U, S, Y.mT).to(W.dtype)


@checked
def fwsvd(W, rank: int, *, fisher, side: str = "output") -> LowRank:
    """Fisher-weighted SVD: the rank-``rank`` W' minimizing ``||diag(d) (W - W')||_F``
    (``side="output"``, d_i = sqrt of row i's summed Fisher) or ``||(W - W') diag(d)||_F``
    (``side="input"``, d_j from column j). ``fisher`` (out, in): accumulated squared
    gradients of W on calibration data (see :func:`lrkit.nn.calibrate`). Exact for the
    weighted objective: the weighted error is the tail of the singular values of the
    scaled W. Returns a LowRank in W's dtype, factors rescaled to unit-norm columns and rows.
    """
    W, rank = _weight(W, rank)
    F = as_tensor(fisher, "fisher").to(device=W.device, dtype=torch.float64)
    if F.shape != W.shape:
        raise ValueError(f"fisher must have W's shape {tuple(W.shape)}; got {tuple(F.shape)}")
    if bool((F < 0).any()):
        raise ValueError("fisher must be >= 0 (a sum of squared gradients)")
    if side == "output":
        d = _positive(F.sum(1).sqrt())  # (out,)
        U, S, Vh = truncated_svd(d[:, None] * W.double(), rank)
        return _balanced(U / d[:, None], S, Vh).to(W.dtype)
    d = _positive(F.sum(0).sqrt())  # (in,)
    U, S, Vh = truncated_svd(W.double() * d, rank)
    return _balanced(U, S, Vh / d).to(W.dtype)


NEEDS = {"asvd": ("abs_mean",), "whiten": ("xtx",), "fwsvd": ("fisher",)}


def truncate(method: str, W: torch.Tensor, rank: int, stats, name: str = "W", **kwargs) -> LowRank:
    """The rank-``rank`` truncation of W by a data-aware ``method`` (``"asvd"``,
    ``"whiten"``, ``"fwsvd"``, or ``"svd"`` which needs no data), fed the matching field of
    ``stats`` (a :class:`lrkit.nn.LayerStats`); ``name`` labels warnings and errors;
    ``kwargs`` go to the method (``alpha=`` for asvd, ``side=`` for fwsvd)."""
    if method == "svd":
        return LowRank(*truncated_svd(W, rank))
    for need in NEEDS[method]:
        if stats is None or getattr(stats, need) is None:
            raise ValueError(f"module {name!r}: method {method!r} needs the statistic {need!r}")
    if method == "asvd":
        return asvd(W, rank, abs_mean=stats.abs_mean, **kwargs)
    if method == "whiten":
        return whiten(W, rank, xtx=stats.xtx, name=name, **kwargs)
    return fwsvd(W, rank, fisher=stats.fisher, **kwargs)
