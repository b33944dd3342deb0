"""Tucker decomposition: HOSVD and HOOI.

A Tucker tensor is a small core G (r_0, ..., r_{N-1}) multiplied along every mode by a factor
U_n (I_n, r_n) (Kolda & Bader 2009, Sec. 4):

    T ~= G x_0 U_0 x_1 U_1 ... x_{N-1} U_{N-1}

and stores ``prod(r) + sum(I_n r_n)`` numbers. With orthonormal factors the best core for
given factors is ``G = T x_0 U_0^T ... x_{N-1} U_{N-1}^T`` and ``||T - X||^2 = ||T||^2 - ||G||^2``.

- HOSVD (De Lathauwer, De Moor & Vandewalle 2000a): U_n = leading left singular vectors of
  unfold(T, n). Not optimal, but within a factor sqrt(N) of the best error.
- HOOI (De Lathauwer et al. 2000b; Kolda & Bader Fig. 4.4): starting there, replace each U_n
  by the leading left singular vectors of unfold(T projected on all other factors, n). Each
  step can only increase ||G||, so the error never rises above HOSVD's.
"""

from __future__ import annotations

import math

import torch

from ..core._checks import as_tensor, check_int_tuple
from ..core._linalg import pow2_scale, pow2_unscale
from ..core._params import checked
from ..core._random import make_generator
from ..core.factorization import Factorization, as_history
from ._ops import (
    common_dtype,
    from_backend,
    leading_left_vectors,
    mode_dot,
    multi_mode_dot,
    prod,
    to_backend,
    unfold,
)
from ._stop import HOOI_TOL, has_converged

__all__ = ["TuckerTensor", "hosvd", "hooi"]


class TuckerTensor(Factorization):
    """``core x_0 factors[0] ... x_{N-1} factors[N-1]``: core (r_0, ..., r_{N-1}), factors
    (I_n, r_n).

    Unpacks like TensorLy's TuckerTensor: ``core, factors = tucker``. Storage counts the
    core and every factor. ``history`` (a float64 tensor on the CPU) holds the relative error
    of HOSVD (first entry) and of each HOOI sweep after it. Convert with :meth:`to_tensorly`
    and :meth:`from_tensorly`.
    """

    _fields = ("core", "factors")

    def __init__(self, core, factors, *, history=(), converged: bool = False):
        core = as_tensor(core, "core")
        if isinstance(factors, torch.Tensor) or len(factors) != core.ndim:
            raise ValueError(
                f"factors must be a list of {core.ndim} matrices, one per mode of the core "
                f"of shape {tuple(core.shape)}"
            )
        factors = [as_tensor(U, f"factors[{i}]", min_ndim=2) for i, U in enumerate(factors)]
        for i, U in enumerate(factors):
            if U.ndim != 2 or U.shape[1] != core.shape[i]:
                raise ValueError(
                    f"factors[{i}] has shape {tuple(U.shape)}; it must be (I_{i}, "
                    f"{core.shape[i]}) to match the core of shape {tuple(core.shape)}"
                )
            if U.device != core.device:
                raise ValueError(f"factors[{i}] is on {U.device} but the core on {core.device}")
        self.core, self.factors = common_dtype(core, factors)
        self.history = as_history(history)
        self.converged = bool(converged)

    @property
    def rank(self) -> tuple[int, ...]:
        return tuple(self.core.shape)

    @property
    def shape(self) -> torch.Size:
        return torch.Size(U.shape[0] for U in self.factors)

    @property
    def n_iter(self) -> int:
        """Number of HOOI sweeps run (0 for :func:`hosvd`)."""
        return max(len(self.history) - 1, 0)

    def __iter__(self):
        return iter((self.core, self.factors))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i):
        return (self.core, self.factors)[i]

    def to_dense(self) -> torch.Tensor:
        return multi_mode_dot(self.core, self.factors)  # (I_0, ..., I_{N-1})

    def _describe(self) -> str:
        return f"rank={self.rank}"

    def to_tensorly(self):
        """This tensor as a ``tensorly.tucker_tensor.TuckerTensor`` in TensorLy's backend."""
        import tensorly as tl
        from tensorly.tucker_tensor import TuckerTensor as TLTuckerTensor

        return TLTuckerTensor(
            (to_backend(self.core, tl), [to_backend(U, tl) for U in self.factors])
        )

    @classmethod
    @checked
    def from_tensorly(cls, tucker) -> TuckerTensor:
        """From a TensorLy ``TuckerTensor`` or a ``(core, factors)`` pair of any backend."""
        import tensorly as tl

        core, factors = tucker
        return cls(from_backend(core, tl), [from_backend(U, tl) for U in factors])


def _check_ranks(rank, shape) -> tuple[int, ...]:
    ranks = check_int_tuple(rank, "rank", len(shape))  # one per mode
    for n, (r, I_n) in enumerate(zip(ranks, shape, strict=True)):
        if r > I_n:
            raise ValueError(f"rank[{n}] (={r}) must be <= shape[{n}] = {I_n}")
        others = prod(ranks[:n] + ranks[n + 1 :])
        if r > others:
            raise ValueError(
                f"rank[{n}] (={r}) must be <= the product of the other ranks = {others}; "
                f"a larger core mode would be rank-deficient"
            )
    return ranks


def _prepare(T, rank):
    T = as_tensor(T, "T", min_ndim=3)
    return T, _check_ranks(rank, T.shape)


def _rel_error(norm_T2: float, core: torch.Tensor) -> float:
    # Orthonormal factors: ||T - X||^2 = ||T||^2 - ||G||^2.
    return math.sqrt(max(norm_T2 - float(torch.sum(core * core)), 0.0) / (norm_T2 or 1.0))


def _hosvd(T, ranks, gen) -> tuple[torch.Tensor, list[torch.Tensor]]:
    factors = [leading_left_vectors(unfold(T, n), r, seed=gen) for n, r in enumerate(ranks)]
    core = multi_mode_dot(T, [U.T for U in factors])  # (r_0, ..., r_{N-1})
    return core, factors


def _sweep(Y: torch.Tensor, modes: list[int], factors, ranks, gen) -> torch.Tensor:
    """One HOOI sweep over ``modes`` (in order), updating ``factors`` in place.

    ``Y`` is T already projected on every mode outside ``modes``. Updating U_n needs T
    projected on all the other factors: the new ones for earlier modes, the old ones for
    later modes. Splitting the modes in halves shares that work: the first half needs T
    projected on the second half's (old) factors, computed once; then the second half needs
    it projected on the first half's (new) factors. Only two products touch the full tensor
    per sweep instead of N. Returns the core from the last update.
    """
    if len(modes) == 1:
        n = modes[0]
        factors[n] = leading_left_vectors(unfold(Y, n), ranks[n], seed=gen)  # (I_n, r_n)
        return mode_dot(Y, factors[n].T, n)  # projected on every mode: the core
    first, second = modes[: len(modes) // 2], modes[len(modes) // 2 :]
    proj = [factors[m].T if m in second else None for m in range(len(factors))]
    _sweep(multi_mode_dot(Y, proj), first, factors, ranks, gen)
    proj = [factors[m].T if m in first else None for m in range(len(factors))]
    return _sweep(multi_mode_dot(Y, proj), second, factors, ranks, gen)


@checked
def hosvd(T, rank, *, seed=None) -> TuckerTensor:
    """Truncated higher-order SVD (De Lathauwer et al. 2000a).

    Parameters
    ----------
    T : numpy.ndarray or torch.Tensor with at least 3 dimensions
        float32 and float64 keep their dtype; integer and half-precision input is computed in
        float32. The result lives on T's device. T is never modified.
    rank : int or sequence of ints
        Core size per mode (an int means the same for every mode); ``1 <= rank[n] <=
        shape[n]`` and no more than the product of the other ranks.
    seed : int, torch.Generator or None
        Used only when an unfolding is large enough for the randomized SVD.

    Returns
    -------
    TuckerTensor
        Orthonormal factors, core ``T x_n U_n^T``; ``history[0]`` is its relative error.
    """
    T, ranks = _prepare(T, rank)
    T, e = pow2_scale(T)  # exact; squares and Gram matrices stay in range (see pow2_scale)
    gen = make_generator(seed, T.device)
    core, factors = _hosvd(T, ranks, gen)
    norm_T2 = float(torch.sum(T * T))
    error = _rel_error(norm_T2, core)
    return TuckerTensor(pow2_unscale(core, e), factors, history=[error])


@checked
def hooi(
    T,
    rank,
    *,
    init: str = "svd",
    n_iter_max: int = 100,
    tol: float = HOOI_TOL,
    seed=None,
) -> TuckerTensor:
    """Tucker decomposition by higher-order orthogonal iteration (De Lathauwer et al. 2000b).

    Parameters
    ----------
    T, rank : as in :func:`hosvd`.
    init : {"svd", "random"}, default "svd"
        "svd": start from the HOSVD. "random": orthonormalized Gaussian factors.
    n_iter_max : int, default 100
        Maximum number of sweeps (one update of every factor each), at most 100000.
    tol : float, default 1e-4
        Stop after the first sweep that changes the relative error by at most ``tol`` times
        itself (1e-4: its first four digits have settled), or by no more than the rounding
        of an error computed from norms (about ``sqrt(10 eps)`` near a perfect fit); see
        ``lrkit.tensor._stop``. ``tol=0`` runs all ``n_iter_max`` sweeps. On noisy data HOOI
        from the HOSVD settles in a few sweeps; a smaller tol buys digits no one sees.
    seed : int, torch.Generator or None
        Randomness for the random init and randomized SVDs, drawn on T's device.

    Returns
    -------
    TuckerTensor
        The best iterate seen (so never worse than the start; with ``init="svd"`` never worse
        than :func:`hosvd`). ``history`` lists the start's error, then each sweep's.
    """
    T, ranks = _prepare(T, rank)
    gen = make_generator(seed, T.device)
    T, e = pow2_scale(T)  # exact; squares and Gram matrices stay in range (see pow2_scale)
    N, norm_T2 = T.ndim, float(torch.sum(T * T))

    if init == "svd":
        core, factors = _hosvd(T, ranks, gen)
    else:
        factors = []
        for I_n, r in zip(T.shape, ranks, strict=True):
            G = torch.randn(I_n, r, generator=gen, dtype=T.dtype, device=T.device)
            factors.append(torch.linalg.qr(G)[0])  # (I_n, r) orthonormal columns
        core = multi_mode_dot(T, [U.T for U in factors])
    errors = [_rel_error(norm_T2, core)]
    best = (errors[0], core, list(factors))
    converged = False
    for _ in range(n_iter_max):
        core = _sweep(T, list(range(N)), factors, ranks, gen)
        errors.append(_rel_error(norm_T2, core))
        if errors[-1] < best[0]:
            best = (errors[-1], core, list(factors))
        if has_converged(errors[-2], errors[-1], tol, T.dtype):
            converged = True
            break
    _, core, factors = best
    return TuckerTensor(pow2_unscale(core, e), factors, history=errors, converged=converged)
