"""CP (CANDECOMP/PARAFAC) decomposition by alternating least squares.

A rank-R CP tensor is a sum of R outer products of vectors (Kolda & Bader 2009, Sec. 3):

    T ~= sum_r w_r  a^(0)_r o a^(1)_r o ... o a^(N-1)_r  =  [[w; A_0, ..., A_{N-1}]]

and stores ``R (1 + I_0 + ... + I_{N-1})`` numbers instead of ``I_0 ... I_{N-1}``.

ALS (Kolda & Bader 2009, Fig. 3.3) fixes all factors but one; the best A_n is then a linear
least-squares solution with normal equations

    A_n V = M_n,   V = *_{m != n} A_m^T A_m   (Hadamard product of R x R Gram matrices),
                   M_n = unfold(T, n) khatri_rao(A_m, m != n)   (the "MTTKRP", I_n x R).

Solving the small R x R system is what makes ALS fast: it never forms the pseudo-inverse of
the tall Khatri-Rao product. Columns are normalized into the weights after every update.
"""

from __future__ import annotations

import math

import torch

from ..core._checks import as_tensor
from ..core._linalg import pow2_scale, pow2_unscale
from ..core._params import checked
from ..core._random import make_generator
from ..core.factorization import Factorization, as_history
from ._ops import (
    common_dtype,
    from_backend,
    khatri_rao,
    leading_left_vectors,
    prod,
    to_backend,
    unfold,
)
from ._stop import CP_TOL, has_converged

__all__ = ["CPTensor", "cp_als"]


class CPTensor(Factorization):
    """``[[weights; factors]]``: weights (R,) and factors ``A_n`` of shape (I_n, R).

    Unpacks like TensorLy's CPTensor: ``weights, factors = cp``. Storage counts the weights
    and every factor. ``history`` (a float64 tensor on the CPU) holds the relative error after
    each ALS sweep (empty when the object was built by hand); ``converged`` says whether
    ``tol`` stopped the loop.
    Convert with :meth:`to_tensorly` and :meth:`from_tensorly`.
    """

    _fields = ("weights", "factors")

    def __init__(self, weights, factors, *, history=(), converged: bool = False):
        if isinstance(factors, torch.Tensor) or len(factors) < 1:
            raise ValueError("factors must be a non-empty list of matrices (I_n, R)")
        factors = [as_tensor(A, f"factors[{i}]", min_ndim=2) for i, A in enumerate(factors)]
        R = factors[0].shape[1]
        for i, A in enumerate(factors):
            if A.ndim != 2 or A.shape[1] != R:
                raise ValueError(
                    f"factors[{i}] has shape {tuple(A.shape)}; every factor must be (I_n, R) "
                    f"with R = {R} columns"
                )
            if A.device != factors[0].device:
                raise ValueError(
                    f"factors[{i}] is on {A.device} but factors[0] on {factors[0].device}; "
                    "every factor must live on one device"
                )
        if weights is None:
            weights = torch.ones(R, dtype=factors[0].dtype, device=factors[0].device)
        weights = as_tensor(weights, "weights")
        if weights.shape != (R,):
            raise ValueError(f"weights has shape {tuple(weights.shape)}; need ({R},)")
        self.weights, self.factors = common_dtype(weights, factors)
        self.history = as_history(history)
        self.converged = bool(converged)

    @property
    def rank(self) -> int:
        return self.weights.shape[0]

    @property
    def shape(self) -> torch.Size:
        return torch.Size(A.shape[0] for A in self.factors)

    @property
    def n_iter(self) -> int:
        """Number of ALS sweeps run."""
        return len(self.history)

    def __iter__(self):
        return iter((self.weights, self.factors))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i):
        return (self.weights, self.factors)[i]

    def to_dense(self) -> torch.Tensor:
        A0, *rest = self.factors
        if not rest:
            return A0 @ self.weights
        M = (A0 * self.weights) @ khatri_rao(rest).T  # (I_0, R) @ (R, I_1 ... I_{N-1})
        return M.reshape(self.shape)

    def _describe(self) -> str:
        return f"rank={self.rank}"

    def to_tensorly(self):
        """This tensor as a ``tensorly.cp_tensor.CPTensor`` in TensorLy's active backend."""
        import tensorly as tl
        from tensorly.cp_tensor import CPTensor as TLCPTensor

        return TLCPTensor((to_backend(self.weights, tl), [to_backend(A, tl) for A in self.factors]))

    @classmethod
    @checked
    def from_tensorly(cls, cp) -> CPTensor:
        """From a TensorLy ``CPTensor`` or a ``(weights, factors)`` pair of any backend."""
        import tensorly as tl

        weights, factors = cp
        weights = None if weights is None else from_backend(weights, tl)
        return cls(weights, [from_backend(A, tl) for A in factors])


def _check_cp_rank(rank, shape) -> int:
    # Every tensor has CP rank <= the product of all its dimensions but the largest (write
    # it as a sum of fibres along the largest mode); a larger rank only adds redundancy.
    bound = prod(shape) // max(shape)
    if rank > bound:
        raise ValueError(
            f"rank (={rank}) must be <= {bound}, the product of all dimensions but the "
            f"largest for shape {tuple(shape)}: that rank already represents any such tensor"
        )
    return rank


def _init_factors(T: torch.Tensor, rank: int, init: str, gen) -> list[torch.Tensor]:
    kw = dict(dtype=T.dtype, device=T.device)
    factors = []
    for n, I_n in enumerate(T.shape):
        if init == "svd" and n > 0:
            # Leading left singular vectors of each unfolding (TensorLy's "svd" init); when
            # rank > I_n the missing columns are random. Factor 0 is left random: the first
            # ALS step overwrites it without reading it, so its SVD would be wasted work.
            k = min(rank, I_n)
            U = leading_left_vectors(unfold(T, n), k, seed=gen)  # (I_n, k)
            if k < rank:
                extra = torch.randn(I_n, rank - k, generator=gen, **kw)
                U = torch.cat([U, extra], dim=1)
        else:
            U = torch.randn(I_n, rank, generator=gen, **kw)
        factors.append(U)
    return factors


def _solve_normal(V: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """A with A V = M for the symmetric R x R Gram product V; pinv if V is singular."""
    A_t, info = torch.linalg.solve_ex(V, M.T)  # (R, I_n)
    if int(info) != 0 or not bool(torch.isfinite(A_t).all()):
        A_t = torch.linalg.pinv(V, hermitian=True) @ M.T
    return A_t.T


@checked
def cp_als(
    T, rank: int, *, init: str = "svd", n_iter_max: int = 100, tol: float = CP_TOL, seed=None
) -> CPTensor:
    """Rank-``rank`` CP decomposition of ``T`` by alternating least squares.

    Parameters
    ----------
    T : numpy.ndarray or torch.Tensor with at least 3 dimensions
        float32 and float64 keep their dtype; integer and half-precision input is computed in
        float32. The result lives on T's device. T is never modified.
    rank : int
        Number of rank-one terms, ``1 <= rank <= prod(shape) / max(shape)``.
    init : {"svd", "random"}, default "svd"
        "svd": leading left singular vectors of each unfolding (Gram matrix or randomized
        SVD for large unfoldings, see ``leading_left_vectors``). "random": Gaussian factors.
    n_iter_max : int, default 100
        Maximum number of ALS sweeps (one update of every factor each), at most 100000.
    tol : float, default 1e-6
        Stop after the first sweep that changes the relative error by at most ``tol`` times
        itself, or by no more than its rounding: the error is computed from norms and inner
        products, never from the dense reconstruction, so near a perfect fit it is known only
        to about ``sqrt(10 eps)`` (5e-8 in float64, 1e-3 in float32); see
        ``lrkit.tensor._stop``. ALS crawls, so the default asks for a smaller change than
        :func:`hooi`'s 1e-4 to settle the error's first four digits. ``tol=0`` runs all
        ``n_iter_max`` sweeps.
    seed : int, torch.Generator or None
        Randomness for random columns and randomized SVDs, drawn on T's device.

    Memory: besides T, it keeps the N unfoldings of T (N - 1 copies, mode 0 is a view) so
    that every sweep multiplies contiguous matrices.

    Returns
    -------
    CPTensor
        Components sorted by decreasing weight, factor columns of unit norm; ``history`` is
        the relative error after each sweep.
    """
    T = as_tensor(T, "T", min_ndim=3)
    rank = _check_cp_rank(rank, T.shape)
    gen = make_generator(seed, T.device)
    T, e = pow2_scale(T)  # exact; squares and Gram matrices stay in range (see pow2_scale)

    N = T.ndim
    factors = _init_factors(T, rank, init, gen)
    unfoldings = [unfold(T, n) for n in range(N)]  # (I_n, prod others); mode 0 is a view
    grams = [A.T @ A for A in factors]  # (R, R) each
    norm_T2 = float(torch.sum(T * T))
    weights = torch.ones(rank, dtype=T.dtype, device=T.device)
    errors, converged = [], False
    for _ in range(n_iter_max):
        for n in range(N):
            others = [factors[m] for m in range(N) if m != n]
            V = math.prod(grams[m] for m in range(N) if m != n)  # (R, R) Hadamard product
            M = unfoldings[n] @ khatri_rao(others)  # (I_n, R): MTTKRP
            A = _solve_normal(V, M)  # (I_n, R)
            weights = torch.linalg.vector_norm(A, dim=0)  # (R,)
            weights = torch.where(weights == 0, torch.ones_like(weights), weights)
            factors[n] = A / weights
            grams[n] = factors[n].T @ factors[n]
        # ||T - X||^2 = ||T||^2 - 2 <T, X> + ||X||^2 from the last update's M and V.
        inner = float(((M * factors[-1]).sum(0) * weights).sum())
        norm_X2 = float(weights @ (V * grams[-1]) @ weights)
        errors.append(math.sqrt(max(norm_T2 - 2 * inner + norm_X2, 0.0) / (norm_T2 or 1.0)))
        if len(errors) > 1 and has_converged(errors[-2], errors[-1], tol, T.dtype):
            converged = True
            break

    order = torch.argsort(weights, descending=True)
    return CPTensor(
        pow2_unscale(weights[order], e),
        [A[:, order] for A in factors],
        history=errors,
        converged=converged,
    )
