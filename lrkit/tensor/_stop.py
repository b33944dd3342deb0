"""The stopping rule shared by the iterative tensor decompositions (CP-ALS, HOOI).

Both report after every sweep the relative error ``e = ||T - X|| / ||T||``, computed from norms
and inner products (``||T||^2 - 2<T, X> + ||X||^2`` for CP, ``||T||^2 - ||G||^2`` for Tucker)
rather than from the dense reconstruction. Those terms are each about ``||T||^2`` and cancel,
so ``e^2`` carries an absolute rounding error of ``c eps`` for a small c, and ``e`` itself is
known only to ``sqrt(e^2 + c eps) - e``: ``sqrt(c eps)`` near a perfect fit, ``c eps / (2 e)``
otherwise. A change of ``e`` below that is rounding, not progress, and no ``tol`` can ask for
it (the old default, 1e-8 on the absolute change, sat below it near a perfect fit, so such
fits could run all ``n_iter_max`` sweeps).

The rule: stop after the first sweep that changes ``e`` by at most
``max(tol * e_prev, sqrt(e_prev^2 + c eps) - e_prev)``, with ``c = 10``: the measured rounding
of ``e^2`` on exact CP fits was up to 1.7 eps (tensors of 1e3 to 3e5 entries), and the margin
covers the slow growth of blocked summation error with the tensor's size. Near a perfect fit
that floor is ``sqrt(10 eps)``, 4.7e-8 in float64 and 1.1e-3 in float32; at an error of 0.5
it is ``10 eps``, below any tol worth asking for. A larger c would stop crawling float32 fits
early: with c = 100, CP-ALS of a float32 conv kernel stopped 1e-3 above its 100-sweep error.
A linearly converging fit of an exactly low-rank tensor has a constant relative change, so it
stops at that floor. ``tol = 0`` never stops early: every one of ``n_iter_max`` sweeps runs.

The defaults stop when further sweeps no longer change what a user reads off the error (its
first three or four significant digits). HOOI from the HOSVD converges fast: at a relative
change of 1e-4 per sweep (``HOOI_TOL``) it took 1-13 sweeps on 15 noisy Tucker problems and
ended within 8e-4 (relative) of the error of 200 sweeps; TensorLy's ``tucker`` (1e-4 on the
absolute change) took 3-4 sweeps on 10 of them and ended within 9e-4. CP-ALS crawls, in
"swamps" (nearly collinear factors) for hundreds of sweeps with a change per sweep far below
what is still to come: at 1e-4 it stopped 0.4-1.7% above the error of 1000 sweeps there, at
1e-6 (``CP_TOL``) within 3e-4, and on plain noisy problems within 2e-5 in 7-41 sweeps
(TensorLy's ``parafac``, 1e-8 on the absolute change: 8-52). ``benchmarks/bench_tensor.py``
prints such a comparison.
"""

from __future__ import annotations

import math

import torch

HOOI_TOL = 1e-4  # relative change of the error per sweep; see the module docstring
CP_TOL = 1e-6
ROUNDING = 10  # c above: the rounding of e^2, in units of eps


def has_converged(prev: float, curr: float, tol: float, dtype: torch.dtype) -> bool:
    """Whether a sweep that took the relative error from ``prev`` to ``curr`` ends the loop."""
    if tol == 0:
        return False
    resolution = math.sqrt(prev * prev + ROUNDING * torch.finfo(dtype).eps) - prev
    return abs(prev - curr) <= max(tol * prev, resolution)
