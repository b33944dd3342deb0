"""Choosing a rank: from the spectrum (energy, error) or from a storage budget.

All three return a plain ``int`` for the core functions, which take plain numbers.
"""

from __future__ import annotations

import math

import torch

from ._checks import as_matrix, as_tensor, warn_adjusted
from ._params import checked

__all__ = ["rank_for_energy", "rank_for_error", "rank_for_budget"]


def _singular_values(S_or_A) -> torch.Tensor:
    """Singular values from a 1-D array of them, or computed from a 2-D matrix."""
    t = as_tensor(S_or_A, "S_or_A", min_ndim=0)
    if t.ndim == 1:
        if bool((t < 0).any()):
            raise ValueError("singular values must be >= 0; got a negative entry in S_or_A")
        s = torch.sort(t.to(torch.float64), descending=True).values
    else:
        s = torch.linalg.svdvals(as_matrix(t, "S_or_A").to(torch.float64))
    # Only ratios of singular values matter here; dividing by the largest keeps their
    # squares from underflowing (s ~ 1e-170) or overflowing (s ~ 1e170) in float64.
    return s / s[0] if float(s[0]) > 0 else s


@checked
def rank_for_energy(S_or_A, keep: float = 0.99) -> int:
    """Smallest rank k whose singular values hold a fraction ``keep`` of the energy.

    Energy is ``sum(s_i**2)``, the squared Frobenius norm, so this is the smallest k with
    ``sum_{i<=k} s_i**2 >= keep * sum_i s_i**2``. ``S_or_A`` is a 1-D array of singular
    values or a 2-D matrix (its singular values are computed). ``keep`` is in (0, 1].
    Equivalent to ``rank_for_error(S_or_A, tol=sqrt(1 - keep))`` (Eckart–Young).
    """
    s2 = _singular_values(S_or_A) ** 2
    total = float(s2.sum())
    if total == 0.0:
        return 1
    cum = torch.cumsum(s2, 0) / total
    # Tolerate rounding: keep=1.0 must be reachable by the float sum.
    k = (
        int(torch.searchsorted(cum, torch.tensor(keep - 1e-12, dtype=cum.dtype, device=cum.device)))
        + 1
    )
    return min(k, s2.numel())


@checked
def rank_for_error(S_or_A, tol: float, ord: str | int = "fro") -> int:
    """Smallest rank k whose truncated SVD has relative error <= ``tol``.

    By Eckart–Young the error of the best rank-k approximation is known from the spectrum:
    ``sqrt(sum_{i>k} s_i**2 / sum_i s_i**2)`` for ``ord="fro"`` and ``s_{k+1} / s_1`` for
    ``ord=2``. ``tol`` is in [0, 1); the answer is at least 1 and at most the number of
    singular values (which always reaches error 0).
    """
    s = _singular_values(S_or_A)
    r = s.numel()
    if float(s[0]) == 0.0:
        return 1
    if ord == "fro":
        s2 = s**2
        tail = torch.flip(torch.cumsum(torch.flip(s2, [0]), 0), [0])  # tail[i] = sum_{j>=i} s_j^2
        err = torch.sqrt(torch.cat([tail[1:], tail.new_zeros(1)]) / s2.sum())  # error at k=i+1
    else:
        err = torch.cat([s[1:], s.new_zeros(1)]) / s[0]
    ok = torch.nonzero(err <= tol)
    return int(ok[0]) + 1 if ok.numel() else r


@checked
def rank_for_budget(
    shape,
    *,
    bits_per_entry: float | None = None,
    param_ratio: float | None = None,
    width: int = 32,
) -> int:
    """Largest rank whose :class:`~lrkit.LowRank` fits a storage budget.

    A rank-k factorization of an m x n matrix stores ``k * (m + n + 1)`` numbers (U, S, Vh).
    Give exactly one budget:

    - ``bits_per_entry``: at most this many bits per entry of the m x n matrix, with each
      stored number ``width`` bits wide (32 for float32, 16 for fp16);
    - ``param_ratio``: at most this fraction of the ``m * n`` dense parameter count.

    Raises if even rank 1 does not fit. A budget above full rank is clipped to
    ``min(m, n)`` with a warning (at full rank a dense matrix is already cheaper).
    """
    if (bits_per_entry is None) == (param_ratio is None):
        raise ValueError("give exactly one of bits_per_entry= or param_ratio=")
    m, n = int(shape[-2]), int(shape[-1])
    per_rank = m + n + 1
    if bits_per_entry is not None:
        k = math.floor(bits_per_entry * m * n / (width * per_rank) + 1e-9)
        need = f"bits_per_entry >= {width * per_rank / (m * n):.4g}"
    else:
        k = math.floor(param_ratio * m * n / per_rank + 1e-9)
        need = f"param_ratio >= {per_rank / (m * n):.4g}"
    if k < 1:
        raise ValueError(f"budget too small for shape {(m, n)}: even rank 1 needs {need}")
    if k > min(m, n):
        warn_adjusted(
            f"budget allows rank {k} but min(m, n) = {min(m, n)}; rank clipped to {min(m, n)}"
        )
        k = min(m, n)
    return k
