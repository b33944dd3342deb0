"""Choosing the rank on the fly, and checking an approximation after the fact.

- :func:`adaptive_range_finder` grows an orthonormal basis block by block until the
  relative Frobenius error ``||A - Q Q^T A||_F / ||A||_F`` drops below ``tol``: the blocked
  randQB of Martinsson & Voronin, "A randomized blocked algorithm for efficiently computing
  rank-revealing factorizations of matrices", SIAM J. Sci. Comput. 38(5), 2016 (Alg. 2),
  a blocked form of Halko, Martinsson & Tropp 2011, Alg. 4.2.
- :func:`estimate_error` estimates the spectral-norm error ``||A - approx||_2 / ||A||_2`` by
  randomized block power iteration that only applies A and approx to thin blocks, never
  forming A - approx (the a-posteriori idea of Halko et al. 2011, Sec. 4.3, with power steps
  instead of their Gaussian-probe bound).
"""

from __future__ import annotations

import torch

from ..core._checks import check_rank, warn_adjusted
from ..core._linalg import orth_rows
from ..core._operator import as_operator
from ..core._params import checked
from ..core._random import make_generator
from ..core.factorization import Factorization

__all__ = ["adaptive_range_finder", "estimate_error"]


@checked
def adaptive_range_finder(
    A,
    tol: float,
    *,
    block: int = 10,
    n_iter: int = 1,
    max_rank: int | None = None,
    fro_norm: float | None = None,
    seed=None,
) -> torch.Tensor:
    """Orthonormal basis ``Q`` (m x k) with the smallest k it finds such that
    ``||A - Q Q^T A||_F <= tol * ||A||_F``.

    Martinsson & Voronin 2016, Alg. 2 (randQB_b): each step sketches ``block`` new directions
    of the *residual* ``A - Q B`` (applied implicitly, never formed), re-orthogonalizes them
    against the basis so far, and updates the error exactly through
    ``||A - Q B||_F^2 = ||A||_F^2 - ||B||_F^2`` (B = Q^T A). When the target is met, the basis
    is rotated to the singular vectors of B and cut to the smallest k that still meets it.

    Parameters
    ----------
    A : 2-D array, tensor, scipy sparse matrix, LinearOperator or torch sparse
    tol : float in (0, 1)
        Relative Frobenius error target. The error is tracked by a difference of squares, so
        it is accurate only to about sqrt(machine epsilon) (3e-4 in float32, 1e-8 in float64);
        a smaller tol is met only up to that accuracy (a warning says so).
    block : int, default 10
        Directions added per step: larger blocks use faster matrix products, smaller blocks
        overshoot the rank less before the final cut.
    n_iter : int, default 1
        Power iterations per block, for slowly decaying spectra; at most 1000 (``MAX_POWER_ITER``).
    max_rank : int, optional
        Upper limit on k (default ``min(m, n)``); a warning says if tol was not reached.
    fro_norm : float, optional
        ``||A||_F`` when A is a LinearOperator (it cannot be computed from products cheaply).
    seed : int, torch.Generator or None

    Returns
    -------
    torch.Tensor (m, k) with orthonormal columns; ``k = Q.shape[1]`` is the chosen rank.
    Turn it into a factorization with :func:`lrkit.lowrank_from_basis`.
    """
    op = as_operator(A, batched=False)
    m, n = op.shape
    max_rank = min(m, n) if max_rank is None else check_rank(max_rank, (m, n), "max_rank")
    norm = op.fro_norm() if fro_norm is None else fro_norm
    if norm is None:
        raise TypeError("A is a LinearOperator: pass its Frobenius norm as fro_norm=")
    if not norm > 0:
        raise ValueError(f"||A||_F (={norm}) must be > 0; an all-zero matrix has no range")
    floor = torch.finfo(op.dtype).eps ** 0.5
    if tol < floor:
        warn_adjusted(
            f"tol (={tol:g}) is below sqrt(eps) = {floor:.1e} of {op.dtype}; "
            "the error estimate cannot resolve it reliably"
        )

    gen = make_generator(seed, op.device)
    Qt = torch.zeros((0, m), dtype=op.dtype, device=op.device)  # basis so far, as rows
    B = torch.zeros((0, n), dtype=op.dtype, device=op.device)  # B = Q^T A
    # The error is tracked relative to ||A||_F (target tol**2, start 1), so its squares stay
    # in range whatever the scale of A (||A||_F**2 underflows float64 for entries ~1e-170).
    target2, err2 = tol**2, 1.0
    while err2 > target2 and Qt.shape[0] < max_rank:
        b = min(block, max_rank - Qt.shape[0])
        Om_t = torch.randn((b, n), generator=gen, dtype=op.dtype, device=op.device)
        Yt = op.left_t(Om_t) - (Om_t @ B.mT) @ Qt  # (b, m) = ((A - Q B) Omega)^T
        for _ in range(n_iter):  # power steps on the residual
            Zt = orth_rows(Yt)
            Zt = orth_rows(op.left(Zt) - (Zt @ Qt.mT) @ B)  # (b, n) = ((A - QB)^T Y)^T
            Yt = op.left_t(Zt) - (Zt @ B.mT) @ Qt
        Qi = orth_rows(Yt)
        Qi = orth_rows(Qi - (Qi @ Qt.mT) @ Qt)  # re-orthogonalize against the basis so far
        Bi = op.left(Qi)  # (b, n)
        Qt, B = torch.cat([Qt, Qi]), torch.cat([B, Bi])
        err2 -= float(torch.sum((Bi.double() / norm) ** 2))
    if err2 > target2:
        warn_adjusted(
            f"tol (={tol:g}) not reached within max_rank (={max_rank}): relative error "
            f"~{max(err2, 0.0) ** 0.5:.3g}"
        )
        return Qt.mT.contiguous()
    # Cut to the smallest k: with B = U_B S V^T, the basis Q U_B[:, :k] leaves error^2
    # ||A||^2 - (s_1^2 + ... + s_k^2).
    U_B, S, _ = torch.linalg.svd(B, full_matrices=False)
    err2_k = 1.0 - torch.cumsum((S.double() / norm) ** 2, 0)
    meets = torch.nonzero(err2_k <= target2)
    k = int(meets[0]) + 1 if meets.numel() else B.shape[0]  # rounding may hide the cut: keep all
    return (Qt.mT @ U_B[:, :k]).contiguous()


def _apply_t(approx, Xt):
    """Xt @ approx^T, for a factorization or a dense tensor."""
    if isinstance(approx, Factorization):
        return (approx @ Xt.mT).mT
    return Xt @ approx.mT


@checked
def estimate_error(A, approx, *, n_iter: int = 20, block: int = 4, seed=None) -> float:
    """Estimate ``||A - approx||_2 / ||A||_2`` without forming ``A - approx``.

    Block power (subspace) iteration on ``E = A - approx`` (and on A for the denominator),
    using only products of A and approx with ``block`` vectors: ``2 * n_iter + 1`` passes each.
    Power iteration approaches a largest singular value from below, so the numerator is a
    lower bound on ``||A - approx||_2`` that tightens with ``n_iter``, and converges quickly
    when the spectrum has a gap. The denominator is estimated the same way, so when
    ``||A||_2`` converges more slowly (s_1 close to s_2) the ratio can come out slightly high.
    Compare with :func:`lrkit.rel_error` (``ord=2``), which forms everything densely.

    ``A`` may be dense, sparse or a LinearOperator; ``approx`` is an lrkit factorization or a
    dense array of A's shape. ``n_iter`` is at most ``lrkit.core._params.MAX_POWER_ITER``
    (1000), ``block`` at least 1.
    """
    op = as_operator(A, batched=False)
    m, n = op.shape
    if isinstance(approx, Factorization):
        if tuple(approx.shape) != (m, n):
            raise ValueError(f"approx has shape {tuple(approx.shape)}, A has {(m, n)}")
        approx = approx.to(device=op.device, dtype=op.dtype)
    else:
        approx = as_operator(approx, "approx", batched=False).dense
        if approx is None or tuple(approx.shape) != (m, n):
            raise ValueError(f"approx must be a factorization or a dense array of shape {(m, n)}")
        approx = approx.to(device=op.device, dtype=op.dtype)
    gen = make_generator(seed, op.device)
    b = min(block, m, n)

    def top_singular_value(left, left_t) -> float:
        Xt = torch.randn((b, n), generator=gen, dtype=op.dtype, device=op.device)
        for _ in range(n_iter):
            Xt = orth_rows(left(orth_rows(left_t(Xt))))  # (b, n) <- rows of E^T E X
        return float(torch.linalg.matrix_norm(left_t(Xt), ord=2))  # ||E X||_2, X orthonormal

    err = top_singular_value(
        lambda Yt: op.left(Yt) - Yt @ approx,  # rows of (E^T Y)^T
        lambda Xt: op.left_t(Xt) - _apply_t(approx, Xt),  # rows of (E X)^T
    )
    ref = top_singular_value(op.left, op.left_t)
    return err / ref if ref > 0 else float("inf")
