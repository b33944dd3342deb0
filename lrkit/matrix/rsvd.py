"""Randomized range finders and the randomized SVD.

Halko, Martinsson & Tropp, "Finding structure with randomness", SIAM Review 53(2), 2011.

Stage A (range finder): draw a Gaussian test matrix Omega with l = rank + oversample
columns; ``Y = A Omega`` spans, with high probability, nearly all of the dominant range of
A. Power (subspace) iterations ``Y = (A A^T)^q A Omega`` sharpen a slowly decaying spectrum:
the error bound's tail term shrinks like ``(s_{k+1}/s_k)^(2q+1)`` (Halko Alg. 4.3 and, with a
normalization after every product, Alg. 4.4).
Stage B: with an orthonormal basis Q of Y, ``B = Q^T A`` is small (l x n); its SVD gives
``A ~= (Q U_B) S Vh`` (Halko Alg. 5.1).

Implementation note. The sketches are kept as rows, ``Q^T`` (l x m) rather than Q (m x l):
every pass over A is then a product of a short, wide block with A or A^T (``Q^T A``,
``Z^T A^T``), which CPU BLAS runs measurably faster than ``A^T Q`` for a row-major A, and
which costs the same on a GPU. ``A`` is touched only through these products, so it may be a
sparse matrix or a linear operator (see ``_operator.py``).
"""

from __future__ import annotations

import torch

from ..core._checks import as_tensor, check_rank, warn_adjusted
from ..core._linalg import orth_rows, pow2_scale, pow2_unscale, svd_flip
from ..core._operator import Operator, as_operator
from ..core._params import checked
from ..core._random import make_generator
from ..core.lowrank import LowRank

__all__ = ["range_finder", "rsvd", "lowrank_from_basis"]


# -- orthonormalizing a block of rows ---------------------------------------------------------
def _lu_rows(Yt: torch.Tensor) -> torch.Tensor:
    """Rows of ``(P L)^T`` from the LU factorization ``Yt^T = P L U``: a well-conditioned basis
    of the same span, cheaper than QR (the normalizer scikit-learn uses between power steps)."""
    LU, piv, _ = torch.linalg.lu_factor_ex(
        Yt.mT
    )  # no error on exact rank loss; (..., m, l), (..., l) 1-based row swaps
    L = LU.tril(-1)
    L.diagonal(dim1=-2, dim2=-1).fill_(1.0)
    m = L.shape[-2]
    # Turn the sequence of row swaps into a permutation; l small swaps per matrix, on the CPU.
    piv_rows = piv.reshape(-1, piv.shape[-1]).tolist()
    inverse = []
    for swaps in piv_rows:
        perm = list(range(m))
        for i, j in enumerate(swaps):
            perm[i], perm[j - 1] = perm[j - 1], perm[i]
        inv = [0] * m
        for pos, row in enumerate(perm):
            inv[row] = pos
        inverse.append(inv)
    inv = torch.tensor(inverse, device=L.device).reshape(*piv.shape[:-1], m, 1)
    PL = torch.gather(L, -2, inv.expand_as(L))  # (..., m, l) rows of L put back in place
    return PL.mT


def _normalize(Yt: torch.Tensor, normalizer: str) -> torch.Tensor:
    # The span is all that matters: scale by a power of two first (exact), so a power step
    # on entries ~1e19 (float32) does not overflow nor one on subnormal entries underflow.
    Yt = pow2_scale(Yt)[0]
    if normalizer == "qr":
        return orth_rows(Yt)
    if normalizer == "lu":
        return _lu_rows(Yt)
    return Yt


# -- stage A ----------------------------------------------------------------------------------
def _sketch_size(rank: int, oversample: int, shape) -> int:
    m, n = shape[-2], shape[-1]
    l = rank + oversample
    if l > min(m, n):
        warn_adjusted(
            f"rank + oversample (={rank} + {oversample} = {l}) exceeds min(m, n) = {min(m, n)}; "
            f"the sketch size is clipped to {min(m, n)}"
        )
        l = min(m, n)
    return l


def _range_rows(op: Operator, l: int, n_iter: int, normalizer: str, seed) -> torch.Tensor:
    """Orthonormal rows Q^T (..., l, m) whose span approximates the top row space of A^T."""
    gen = make_generator(seed, op.device)
    n = op.shape[-1]
    Omega_t = torch.randn(
        (*op.shape[:-2], l, n), generator=gen, device=op.device, dtype=op.dtype
    )  # (..., l, n): Gaussian test matrix, as rows
    Qt = op.left_t(Omega_t)  # (..., l, m) = (A Omega)^T
    for _ in range(n_iter):  # Halko Alg. 4.4: normalize after every product
        Qt = _normalize(Qt, normalizer)
        Zt = _normalize(op.left(Qt), normalizer)  # (..., l, n) = (A^T Q)^T
        Qt = op.left_t(Zt)  # (..., l, m) = (A Z)^T
    return orth_rows(Qt)  # the final basis is always orthonormal


@checked
def range_finder(
    A, rank: int, *, oversample: int = 10, n_iter: int = 2, normalizer: str = "lu", seed=None
) -> torch.Tensor:
    """Orthonormal basis ``Q`` (m x l, l = rank + oversample) with ``A ~= Q Q^T A``.

    Randomized subspace iteration (Halko, Martinsson & Tropp 2011, Alg. 4.3/4.4).

    Parameters
    ----------
    A : array, tensor, scipy sparse matrix, LinearOperator or torch sparse, shape (m, n)
        Dense input may be a stack ``(..., m, n)``. Only products with A and A^T are used.
    rank : int
        Target rank, ``1 <= rank <= min(m, n)``.
    oversample : int, default 10
        Extra columns beyond ``rank``. Halko et al. show 5-10 suffice for the expected error
        to be within a small factor of optimal; 10 is their and scikit-learn's choice.
        ``rank + oversample`` is clipped to ``min(m, n)`` with a warning.
    n_iter : int, default 2
        Power iterations q. Each costs two more passes over A and improves the tail factor to
        ``(s_{k+1}/s_k)^(2q+1)``; 2 is enough for most spectra that decay at all (torch's
        ``svd_lowrank`` uses 2 as well); raise it for a flat spectrum. At most 1000
        (``MAX_POWER_ITER``): beyond that no float can tell the difference.
    normalizer : {"lu", "qr", "none"}, default "lu"
        How the block is re-normalized between power steps so rounding does not wash out the
        small singular directions. "qr": orthonormal (most stable, slowest). "lu": ``P L``
        from a pivoted LU, well conditioned and cheaper (scikit-learn's choice). "none":
        plain Alg. 4.3; fine for n_iter <= 2 in float64, lossy on fast-decaying spectra.
        The final basis is always orthonormalized by QR.
    seed : int, torch.Generator or None
        Randomness for the Gaussian test matrix, drawn on A's device.

    Returns
    -------
    torch.Tensor of shape (..., m, l), orthonormal columns, on A's device.
    """
    op = as_operator(A)
    rank = check_rank(rank, op.shape)
    l = _sketch_size(rank, oversample, op.shape)
    return _range_rows(op, l, n_iter, normalizer, seed).mT


def _svd_of_rows(op: Operator, Qt: torch.Tensor, rank: int | None) -> LowRank:
    """Halko Alg. 5.1: B = Q^T A, B = U_B S Vh, U = Q U_B; keep the top ``rank`` triplets."""
    B = op.left(Qt)  # (..., l, n): one more pass over A
    B, e = pow2_scale(B)  # exact power-of-two scaling: the QR and SVD see entries near 1
    # SVD of the short, wide B through the QR of B^T = Q_B R: B = R^T Q_B^T, so only the
    # small l x l matrix R^T needs an SVD (cheaper than LAPACK's SVD of B itself).
    Q_B, R = torch.linalg.qr(B.mT)  # (..., n, l), (..., l, l)
    U_B, S, W_h = torch.linalg.svd(R.mT)  # (..., l, l) each
    Vh = W_h @ Q_B.mT  # (..., l, n)
    k = S.shape[-1] if rank is None else rank
    U = Qt.mT @ U_B[..., :k]  # (..., m, k)
    U, Vh = svd_flip(U, Vh[..., :k, :])
    S = pow2_unscale(S[..., :k], e)
    return LowRank(U.contiguous(), S.contiguous(), Vh.contiguous())


@checked
def lowrank_from_basis(A, Q, rank: int | None = None) -> LowRank:
    """SVD of ``Q Q^T A`` for a basis ``Q`` (m x l, orthonormal columns), truncated to ``rank``.

    Use it to turn the output of :func:`range_finder` or :func:`adaptive_range_finder` into a
    :class:`LowRank` (Halko Alg. 5.1). Costs one pass over A.

    Q must be real, of shape (m, l) (or (..., m, l) matching a stack A), with orthonormal
    columns: the result is the SVD of ``Q Q^T A`` only if ``Q^T Q = I``, so a basis that is
    not orthonormal is refused rather than silently giving a wrong approximation. The
    check allows ``max |Q^T Q - I| <= 10 * m * eps`` of the coarser of Q's and A's dtype:
    Householder QR (and a product with an orthogonal matrix) loses orthogonality only by
    a small multiple of ``m * eps`` (Higham, *Accuracy and Stability of Numerical
    Algorithms*, 2nd ed., Sec. 19.3), while any other matrix misses by far more.
    """
    op = as_operator(A)
    Q_in = as_tensor(Q, "Q", min_ndim=0)
    if Q_in.ndim < 2:
        raise ValueError(
            f"Q must be a 2-D basis of shape (m, l); got {Q_in.ndim}-D input of shape "
            f"{tuple(Q_in.shape)} (a single vector is Q[:, None])"
        )
    Q = Q_in.to(device=op.device, dtype=op.dtype)
    m, l = Q.shape[-2], Q.shape[-1]
    if m != op.shape[-2]:
        raise ValueError(f"Q has {m} rows but A has {op.shape[-2]}; need Q of shape (m, l)")
    if Q.shape[:-2] != op.shape[:-2]:
        raise ValueError(
            f"Q has shape {tuple(Q.shape)} but A has shape {tuple(op.shape)}: a stack of "
            f"bases needs the same leading dimensions {tuple(op.shape[:-2])}"
        )
    if l > m:
        raise ValueError(f"Q has l (={l}) > m (={m}) columns; at most m can be orthonormal")
    eps = max(torch.finfo(Q_in.dtype).eps, torch.finfo(op.dtype).eps)
    gap = float((Q.mT @ Q - torch.eye(l, dtype=Q.dtype, device=Q.device)).abs().amax())
    if not gap <= 10 * m * eps:
        raise ValueError(
            f"Q's columns must be orthonormal: max |Q^T Q - I| (={gap:.3g}) must be <= "
            f"10 * m * eps = {10 * m * eps:.3g}; orthonormalize Q first "
            f"(torch.linalg.qr(Q).Q)"
        )
    if rank is not None:
        if rank > Q.shape[-1]:
            raise ValueError(
                f"rank (={rank}) must be <= the number of columns of Q = {Q.shape[-1]}"
            )
    return _svd_of_rows(op, Q.mT, rank)


@checked
def rsvd(
    A, rank: int, *, oversample: int = 10, n_iter: int = 2, normalizer: str = "lu", seed=None
) -> LowRank:
    """Randomized truncated SVD (Halko, Martinsson & Tropp 2011, Alg. 4.4 + 5.1).

    Returns a :class:`~lrkit.LowRank` of rank ``rank`` close to the optimum of
    :func:`~lrkit.truncated_svd`, at a cost of ``2 + 2 * n_iter`` passes over A, each a
    product with an (l x m) or (l x n) block, l = rank + oversample. See
    :func:`range_finder` for every parameter and its default. Same seed, same factors.

    Integer input is computed in float32; float32 and float64 keep their dtype. A is never
    modified. Signs are fixed as in :func:`~lrkit.svd_flip`.

    Examples
    --------
    >>> import torch, lrkit
    >>> A = torch.randn(500, 40, dtype=torch.float64) @ torch.randn(40, 300, dtype=torch.float64)
    >>> approx = lrkit.rsvd(A, 40, seed=0)
    >>> lrkit.rel_error(A, approx) < 1e-10
    True
    """
    op = as_operator(A)
    rank = check_rank(rank, op.shape)
    l = _sketch_size(rank, oversample, op.shape)
    Qt = _range_rows(op, l, n_iter, normalizer, seed)
    return _svd_of_rows(op, Qt, rank)
