"""Approximating a matrix by a butterfly: gradient descent on the twiddles (Dao et al. 2019)
or the closed-form hierarchical projection (Le Magoarou & Gribonval 2016; Zheng, Riccietti &
Gribonval 2023). The butterfly itself, its products and its exact instances are in
:mod:`.butterfly`.
"""

from __future__ import annotations

import math

import torch

from ..core._checks import as_matrix, check_power_of_two
from ..core._linalg import pow2_scale, pow2_unscale
from ..core._params import checked
from ..core._random import make_generator
from .butterfly import Butterfly, bit_reversal_permutation, butterfly_matmul

__all__ = ["butterfly_fit", "butterfly_project"]


def _as_square_pow2(A) -> torch.Tensor:
    A = as_matrix(A, "A", allow_complex=True)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square for a butterfly; got shape {tuple(A.shape)}")
    check_power_of_two(A.shape[0], "n")
    return A


# -- fitting by gradient descent (Dao et al. 2019: recovering fast transforms) ----------------
@checked
def butterfly_fit(
    A,
    *,
    n_steps: int = 1000,
    lr: float = 0.01,
    seed=None,
    bit_reversal: bool = False,
) -> Butterfly:
    """Learn the twiddles of a butterfly close to the square matrix ``A`` with Adam.

    Minimizes the squared relative Frobenius error ``||B - A||_F^2 / ||A||_F^2`` over the
    twiddles, from a random start (each 2 x 2 entry N(0, 1/2), so that every level keeps the
    norm of a vector on average), evaluating B on the identity with the fast product.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (n, n), n a power of two
        Real or complex (a complex A gives complex twiddles). Never modified.
    n_steps, lr : Adam's number of steps (at most 100000: ``history`` holds one number per
        step) and learning rate (> 0).
    seed : int, torch.Generator or None
        The random start; the same seed gives the same result.
    bit_reversal : bool
        Fit ``F_{L-1} ... F_0 P`` instead of ``F_{L-1} ... F_0``. The DFT needs it; the
        Hadamard matrix needs it off. When unsure, fit both and keep the better.

    Returns
    -------
    Butterfly
        The twiddles with the lowest error seen (Adam's last steps can jump once the error
        nears the rounding floor), and ``history``, the relative Frobenius error at the start
        and after each step: (n_steps + 1,), float64, on the CPU; its minimum is the error
        of the result.
    """
    A = _as_square_pow2(A)
    n, L = A.shape[0], A.shape[0].bit_length() - 1
    # A is fitted divided by a power of two 2**e that brings its largest entry into
    # [1/2, 1) (exact), and the last level of twiddles multiplied back: the squares in the
    # loss then stay in range (float32 entries ~1e19 would overflow, ~1e-19 underflow), the
    # random start is at A's scale, and fitting c * A gives c times the fit of A for c a
    # power of two.
    A, e = pow2_scale(A)
    gen = make_generator(seed, A.device)
    real = A.real.dtype if A.is_complex() else A.dtype
    tw = torch.randn(L, n // 2, 2, 2, generator=gen, dtype=real, device=A.device) / math.sqrt(2)
    if A.is_complex():  # real and imaginary parts each N(0, 1/4): E|t|^2 = 1/2 again
        im = torch.randn(L, n // 2, 2, 2, generator=gen, dtype=real, device=A.device)
        tw = torch.complex(tw, im / math.sqrt(2)) / math.sqrt(2)
    tw.requires_grad_(True)
    opt = torch.optim.Adam([tw], lr=lr)
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    norm2 = A.abs().square().sum()
    if norm2 == 0:
        raise ValueError("A is all zeros: the relative error to minimize is undefined")
    history = torch.empty(n_steps + 1, dtype=torch.float64)  # error at the start, after each step
    best, best_loss = None, math.inf
    for step in range(n_steps + 1):
        loss = (butterfly_matmul(tw, eye, bit_reversal) - A).abs().square().sum() / norm2
        history[step] = value = float(loss.detach())
        if value < best_loss:  # near the rounding floor Adam's steps make the loss jump
            best, best_loss = tw.detach().clone(), value
        if step == n_steps:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if best is None:  # only if the very first loss is not finite
        raise ValueError("the loss of the random start is not finite; A cannot be fitted")
    best[L - 1] = pow2_unscale(best[L - 1], e)
    return Butterfly(best, bit_reversal=bit_reversal, history=history.sqrt())


# -- the hierarchical projection (Le Magoarou & Gribonval 2016; Zheng et al. 2023) ------------
@checked
def butterfly_project(A, *, bit_reversal: bool = False) -> Butterfly:
    """A butterfly close to ``A`` in closed form: L-1 rounds of batched rank-one SVDs.

    Exact (to rounding) when A is a butterfly with this ``bit_reversal`` (the DFT with True,
    the Hadamard matrix with False). For other matrices it is the hierarchical
    approximation, not the best butterfly; Zheng et al. prove its error is within a factor
    (that grows with L) of the best one. Real or complex A, n a power of two; A is never modified.
    """
    A = _as_square_pow2(A)
    n, L = A.shape[0], A.shape[0].bit_length() - 1
    if bit_reversal:  # A = B P  =>  B = A P^T, i.e. column j of B is column rev(j) of A
        A = A[:, bit_reversal_permutation(n, A.device)]
    twiddle = torch.empty(L, n // 2, 2, 2, dtype=A.dtype, device=A.device)
    blocks = A.unsqueeze(0)  # (g, s, s): g = 2^d independent butterflies of size s = n / 2^d
    for t in reversed(range(1, L)):  # peel off F_{L-1} first, then recurse on the halves
        g, s = blocks.shape[0], blocks.shape[1]
        h = s // 2
        # Rows i and i + h of column half c: a rank-one 2 x h matrix D_c[:, i] outer B_c[i, :].
        Q = blocks.reshape(g, 2, h, 2, h).permute(0, 2, 3, 1, 4)  # (g, i, c, 2 rows, h cols)
        U, S, Vh = torch.linalg.svd(Q, full_matrices=False)  # (g,h,2,2,2) (g,h,2,2) (g,h,2,2,h)
        u = U[..., 0]  # (g, h, c, 2): unit left vectors, the twiddle column c
        twiddle[t] = u.permute(0, 1, 3, 2).reshape(n // 2, 2, 2)  # pair (blk=g, i): [row, c]
        right = S[..., :1] * Vh[..., 0, :]  # (g, h, c, h): row i of B_c
        blocks = right.permute(0, 2, 1, 3).reshape(2 * g, h, h)  # (2g, h, h): B_c per g
    twiddle[0] = blocks.reshape(n // 2, 2, 2)  # the last 2 x 2 blocks are F_0's twiddles
    return Butterfly(twiddle, bit_reversal=bit_reversal)
