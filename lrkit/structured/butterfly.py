"""Butterfly matrices: the FFT's sparsity pattern, with learnable entries.

Dao, Gu, Eichhorn, Rudra & Ré, "Learning Fast Algorithms for Linear Transforms Using
Butterfly Factorizations", ICML 2019.

For n = 2^L, a butterfly matrix is a product of L sparse factors, optionally times the
bit-reversal permutation P (the paper's "BP" class):

    B = F_{L-1} ... F_1 F_0 (P)

Factor F_t (blocks of k = 2^(t+1), half h = k/2) mixes the entries ``blk*k + i`` and
``blk*k + i + h`` (i < h) of each block by its own 2 x 2 matrix ``twiddle[t, blk*h + i]``: every
row of F_t has two nonzeros. The matrix is stored as ``twiddle`` (L, n/2, 2, 2), 2 n log2(n)
numbers, and applied level by level in O(n log n) per vector: each level is four elementwise
products on a reshaped view, with no Python loop over n.

Exact instances:

- the DFT, by the radix-2 Cooley-Tukey recursion (decimation in time): after P, level t
  combines pairs with ``[[1, w^i], [1, -w^i]]``, ``w = exp(-2 pi i / k)``;
- the Walsh-Hadamard matrix ``scipy.linalg.hadamard(n)``: ``[[1, 1], [1, -1]]`` at every level
  and no permutation (Sylvester's H_n is the Kronecker product of L copies of H_2; with P it
  would not be a butterfly).

Any other matrix can be fitted: by gradient descent on the twiddles (``butterfly_fit``, the
paper's experiment on recovering fast transforms; non-convex, it usually but not always
recovers a transform that has an exact factorization), or in closed form by a hierarchical
projection (``butterfly_project``; Le Magoarou & Gribonval 2016; Zheng, Riccietti &
Gribonval 2023): with ``B = F_{L-1} diag(B_top, B_bottom)``, rows i and i + n/2 of each
column half of B form a rank-one 2 x (n/2) matrix, whose leading singular pair gives one
twiddle of F_{L-1} and one row of B_top or B_bottom; recurse on those halves. Exact on
butterfly inputs.
"""

from __future__ import annotations

import math

import torch

from ..core._checks import as_tensor, check_power_of_two
from ..core._params import checked
from ..core.factorization import as_history
from ._complex import ComplexAware

__all__ = [
    "Butterfly",
    "butterfly_matmul",
    "butterfly_dense",
    "butterfly_factors",
    "bit_reversal_permutation",
]


@checked
def bit_reversal_permutation(n: int, device=None) -> torch.Tensor:
    """The bit-reversal permutation of range(n), n = 2^L, as indices: ``P x = x[perm]``."""
    n = check_power_of_two(n, "n")
    L = n.bit_length() - 1
    idx = torch.arange(n, device=device)  # (n,)
    rev = torch.zeros_like(idx)
    for t in range(L):  # bit t of idx goes to bit L-1-t, all n indices at once
        rev |= ((idx >> t) & 1) << (L - 1 - t)
    return rev


# -- the product: reference and fast ----------------------------------------------------------
def _level_dense(tw: torch.Tensor, h: int) -> torch.Tensor:
    """Factor F_t as a dense n x n matrix, from its twiddles tw (n/2, 2, 2), half block h."""
    n = 2 * tw.shape[0]
    pair = torch.arange(n // 2, device=tw.device)  # pair p = blk*h + i
    top = (pair // h) * 2 * h + pair % h  # row blk*k + i
    bot = top + h  # row blk*k + i + h
    F = torch.zeros(n, n, dtype=tw.dtype, device=tw.device)
    F = F.index_put((top, top), tw[:, 0, 0]).index_put((top, bot), tw[:, 0, 1])
    return F.index_put((bot, top), tw[:, 1, 0]).index_put((bot, bot), tw[:, 1, 1])


@checked
def butterfly_factors(twiddle: torch.Tensor, bit_reversal: bool = False) -> list[torch.Tensor]:
    """The dense n x n factors in the order they act: ``[P (if bit_reversal), F_0, ...,
    F_{L-1}]``. twiddle (L, n/2, 2, 2)."""
    L, n = twiddle.shape[0], 2 * twiddle.shape[1]
    eye = torch.eye(n, dtype=twiddle.dtype, device=twiddle.device)
    # Row j of P picks entry rev(j): P x = x[bit_reversal_permutation(n)].
    perm = [eye[bit_reversal_permutation(n, twiddle.device)]] if bit_reversal else []
    return perm + [_level_dense(twiddle[t], 2**t) for t in range(L)]


@checked
def butterfly_dense(twiddle: torch.Tensor, bit_reversal: bool = False) -> torch.Tensor:
    """The dense ``F_{L-1} ... F_0 (P)``, one dense factor at a time: the slow, obviously
    correct one. twiddle (L, n/2, 2, 2)."""
    factors = butterfly_factors(twiddle, bit_reversal)
    M = factors[0]
    for F in factors[1:]:
        M = F @ M  # (n, n) @ (n, n)
    return M


@checked
def butterfly_matmul(
    twiddle: torch.Tensor, X: torch.Tensor, bit_reversal: bool = False, *, transpose=False
) -> torch.Tensor:
    """``B @ X`` level by level, O(n log n) per column; ``B^T @ X`` if ``transpose``
    (``B^T = P^T F_0^T ... F_{L-1}^T``: the levels in reverse order, each 2 x 2 transposed,
    P last; P^T = P, the bit reversal is its own inverse). twiddle (L, n/2, 2, 2), X (n,) or
    (..., n, p). No checks (fast path for layers); autograd flows to twiddle and X."""
    L, n = twiddle.shape[0], 2 * twiddle.shape[1]
    vector = X.ndim == 1
    if vector:
        X = X.unsqueeze(-1)  # (n, 1)
    *batch, _, p = X.shape
    perm = bit_reversal_permutation(n, X.device) if bit_reversal else None
    if perm is not None and not transpose:
        X = X[..., perm, :]  # P X
    for t in reversed(range(L)) if transpose else range(L):
        h = 2**t  # pairs at distance h inside blocks of k = 2h
        Xb = X.reshape(*batch, n // (2 * h), 2, h, p)  # (..., blocks, top/bottom, i, p)
        x0, x1 = Xb[..., 0, :, :], Xb[..., 1, :, :]  # (..., blocks, h, p) each
        tw = twiddle[t].mT if transpose else twiddle[t]  # (n/2, 2, 2)
        tw = tw.reshape(n // (2 * h), h, 2, 2, 1)  # (blocks, h, 2, 2, 1)
        y0 = torch.addcmul(tw[:, :, 0, 0] * x0, tw[:, :, 0, 1], x1)  # (..., blocks, h, p)
        y1 = torch.addcmul(tw[:, :, 1, 0] * x0, tw[:, :, 1, 1], x1)
        X = torch.stack((y0, y1), dim=-3).reshape(*batch, n, p)  # (..., n, p)
    if perm is not None and transpose:
        X = X[..., perm, :]  # P^T X
    return X.squeeze(-1) if vector else X


_TWIDDLE_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)


def _check_dtype(dtype, allowed, why: str) -> None:
    if dtype not in allowed:
        names = ", ".join(str(d).replace("torch.", "") for d in allowed)
        raise ValueError(f"dtype (={dtype}) must be one of {names}: {why}")


# -- the result object ------------------------------------------------------------------------
class Butterfly(ComplexAware):
    """``F_{L-1} ... F_0 (P)``, n = 2^L: see the module docstring.

    ``twiddle`` (L, n/2, 2, 2), real or complex; ``bit_reversal``: whether the bit-reversal
    permutation P is applied first. ``history``: for a fitted butterfly, the relative
    Frobenius error at the start and after each step. Stores 2 n log2(n) numbers; a complex
    number counts as two (``num_params``) and at its full width in ``nbits`` (64 bits for
    complex64). The twiddles are kept as given (no copy, no detach), so autograd flows
    through them.
    """

    _fields = ("twiddle",)

    def __init__(self, twiddle, *, bit_reversal: bool = False, history=None):
        tw = as_tensor(twiddle, "twiddle", keep_grad=True, allow_complex=True)
        if tw.ndim != 4 or tw.shape[2:] != (2, 2) or tw.shape[0] < 1:
            raise ValueError(f"twiddle must have shape (L, n/2, 2, 2); got {tuple(tw.shape)}")
        L, half = tw.shape[0], tw.shape[1]
        if 2 * half != 2**L:
            raise ValueError(
                f"twiddle holds {L} levels, so n = 2^{L} = {2**L} and it needs n/2 = "
                f"{2 ** (L - 1)} pairs per level; got {half}"
            )
        self.twiddle, self.bit_reversal = tw, bool(bit_reversal)
        self.history = as_history(() if history is None else history)

    @classmethod
    @checked
    def fft(cls, n: int, *, dtype=torch.complex64, device=None) -> Butterfly:
        """The unnormalized DFT, ``F[j, k] = exp(-2 pi i j k / n)``, exactly: ``@ x`` equals
        ``torch.fft.fft(x, dim=0)``. Cooley-Tukey radix-2, decimation in time. ``dtype`` is
        complex64 or complex128: the DFT has complex entries."""
        n = check_power_of_two(n, "n")
        _check_dtype(dtype, (torch.complex64, torch.complex128), "the DFT has complex entries")
        L = n.bit_length() - 1
        levels = []
        for t in range(L):
            h = 2**t
            w = torch.exp(-2j * math.pi * torch.arange(h, dtype=torch.float64) / (2 * h))  # (h,)
            w = w.repeat(n // (2 * h))  # (n/2,): the same h twiddles in every block
            one = torch.ones_like(w)
            levels.append(torch.stack((one, w, one, -w), dim=-1).reshape(n // 2, 2, 2))
        return cls(torch.stack(levels).to(device=device, dtype=dtype), bit_reversal=True)

    @classmethod
    @checked
    def hadamard(cls, n: int, *, dtype=torch.float32, device=None) -> Butterfly:
        """Sylvester's Hadamard matrix (entries +-1, equal to ``scipy.linalg.hadamard(n)``),
        in ``dtype``: float32, float64, complex64 or complex128."""
        n = check_power_of_two(n, "n")
        _check_dtype(dtype, _TWIDDLE_DTYPES, "the factors are floating-point")
        h2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=dtype, device=device)
        return cls(h2.expand(n.bit_length() - 1, n // 2, 2, 2).clone())

    @property
    def shape(self) -> torch.Size:
        n = 2 * self.twiddle.shape[1]
        return torch.Size((n, n))

    def to_dense(self) -> torch.Tensor:
        return butterfly_dense(self.twiddle, self.bit_reversal)

    @property
    def factors(self) -> list[torch.Tensor]:
        """The dense sparse factors in the order they act, ``[P (if bit_reversal), F_0, ...,
        F_{L-1}]``: to look at (each n x n), not to compute with."""
        return butterfly_factors(self.twiddle, self.bit_reversal)

    def _matmul(self, X: torch.Tensor) -> torch.Tensor:
        return butterfly_matmul(self.twiddle, X, self.bit_reversal)

    def _rmatmul(self, X: torch.Tensor) -> torch.Tensor:
        # X B = (B^T X^T)^T
        if X.ndim == 1:
            return butterfly_matmul(self.twiddle, X, self.bit_reversal, transpose=True)
        return butterfly_matmul(self.twiddle, X.mT, self.bit_reversal, transpose=True).mT

    def _describe(self) -> str:
        L = self.twiddle.shape[0]
        return f"levels={L}, bit_reversal={self.bit_reversal}"
