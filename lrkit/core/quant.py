"""Uniform scalar quantization with honest bit accounting.

A b-bit uniform quantizer maps each entry of a *granule* (a whole matrix, one row or
column, or a group of entries) to one of ``2**b`` evenly spaced levels

    lo, lo + step, ..., lo + (2**b - 1) * step,      step = (hi - lo) / (2**b - 1)

and stores the level's index (a b-bit code) plus, per granule, what is needed to rebuild it:

- ``symmetric=True`` (default; the quantizer of Saha, Srivastava & Pilanci 2023): the range
  is ``[-R, R]`` with ``R = max |x|`` over the granule; one number (R) is stored per granule.
  The levels include ``+-R`` and, for even ``2**b``, not zero; ``b = 1`` is sign x R.
- ``symmetric=False``: the range is ``[min x, max x]``; two numbers (lo and step) per granule.

Rounding is to the nearest level, or stochastic (up with probability equal to the distance
from the lower level, in steps), which is unbiased: E[Q(x)] = x for x inside the range.

Storage is counted exactly: ``b`` bits per code (as if packed; in memory lrkit keeps codes
unpacked in an integer tensor) plus every range number at its stored width
(``scale_dtype``, float32 by default). Papers often leave the ranges out; lrkit does not.
"""

from __future__ import annotations

import math

import torch

from ._checks import as_matrix, check_choice, check_positive_int
from ._params import checked
from ._random import make_generator
from .factorization import Factorization, dtype_bits

__all__ = ["QuantizedMatrix", "quantize", "quant_nbits"]

SCALES = ("tensor", "vector", "group")


def _granules(shape, scales: str, axis: int, group_size: int | None) -> int:
    """Number of granules (ranges) of an m x n matrix."""
    m, n = shape
    if scales == "tensor":
        return 1
    length, count = (m, n) if axis == 0 else (n, m)  # reduce along `axis`: one per other index
    if scales == "vector":
        return count
    return count * math.ceil(length / group_size)


def quant_nbits(
    shape,
    bits: int,
    *,
    scales: str = "tensor",
    axis: int = 1,
    group_size: int | None = None,
    symmetric: bool = True,
    scale_bits: int = 32,
) -> int:
    """Exact storage in bits of a quantized m x n matrix: codes plus every range number.

    The single formula :class:`QuantizedMatrix` and the rank helpers share, so a planned
    budget and a measured ``.nbits`` can never disagree.
    """
    m, n = shape
    per_granule = 1 if symmetric else 2
    return m * n * bits + _granules(shape, scales, axis, group_size) * per_granule * scale_bits


def _check_layout(scales, axis, group_size, shape):
    check_choice(scales, "scales", SCALES)
    check_choice(axis, "axis", (1, 0))
    if scales == "group":
        if group_size is None:
            raise ValueError('scales="group" needs group_size= (entries per group)')
        group_size = check_positive_int(group_size, "group_size")
        length = shape[axis]
        if group_size > length:
            raise ValueError(
                f"group_size (={group_size}) must be <= {length}, the length along axis {axis}"
            )
    elif group_size is not None:
        raise ValueError(f'group_size is only used with scales="group"; got scales={scales!r}')
    return group_size


def _as_groups(X: torch.Tensor, scales: str, axis: int, group_size: int | None) -> torch.Tensor:
    """View X (m, n) as (granules, entries per granule), padding a short last group."""
    if scales == "tensor":
        return X.reshape(1, -1)
    rows = X if axis == 1 else X.T  # (count, length): each row is reduced
    if scales == "vector":
        return rows
    count, length = rows.shape
    pad = (-length) % group_size
    if pad:  # repeat the last entry: it changes no group's min or max
        rows = torch.cat([rows, rows[:, -1:].expand(count, pad)], dim=1)
    return rows.reshape(count * (rows.shape[1] // group_size), group_size)  # (granules, g)


def _from_groups(G: torch.Tensor, shape, scales: str, axis: int, group_size: int | None):
    """Inverse of _as_groups."""
    m, n = shape
    if scales == "tensor":
        return G.reshape(m, n)
    count, length = (n, m) if axis == 0 else (m, n)
    rows = G.reshape(count, -1)[:, :length]
    return rows if axis == 1 else rows.T


def _stored_range(G, levels: int, symmetric: bool, scale_dtype):
    """Per granule of G (granules, g): lo and step (granules, 1) in float64, rebuilt from the
    range numbers as stored at scale_dtype (R if symmetric, else lo and step). inf or NaN
    where a number overflows scale_dtype: :func:`quantize` refuses those."""

    def stored(x):  # a range number as it will be stored, back in float64
        return x.to(scale_dtype).to(torch.float64)

    if symmetric:  # one stored number per range: R; lo and step follow from it
        R = stored(G.abs().amax(dim=1, keepdim=True).double())
        return -R, 2 * R / levels
    lo = stored(G.amin(dim=1, keepdim=True).double())
    return lo, stored((G.amax(dim=1, keepdim=True).double() - lo) / levels).clamp_(min=0)


def _codes(G, lo, step, levels: int, symmetric: bool, dtype, gen=None):
    """The codes of G's granules (granules, g) for the given lo and step, rounded to nearest
    (or stochastically with generator ``gen``), and the ranges to store, in ``dtype``:
    (granules, 1) R, or (granules, 2) lo and step. No checks: :func:`quantize` makes them."""
    lo, step = lo.to(dtype), step.to(dtype)
    ranges = -lo if symmetric else torch.cat((lo, step), dim=1)  # stored: R, or lo and step
    safe = torch.where(step > 0, step, torch.ones_like(step))  # a constant granule: code 0
    t = (G - lo) / safe  # position in steps, in [0, levels]
    if gen is None:
        codes = torch.round(t)
    else:
        codes = torch.floor(t + torch.rand(t.shape, generator=gen, dtype=t.dtype, device=t.device))
    codes = codes.clamp_(0, levels).to(torch.uint8 if levels < 256 else torch.int32)
    return codes, ranges


class QuantizedMatrix(Factorization):
    """A b-bit uniformly quantized matrix: integer codes plus one range per granule.

    Stored: ``codes`` (m, n), counted at ``bits`` bits each (as if packed; kept
    unpacked in a ``uint8``/``int32`` tensor), and ``ranges`` (granules, 1) holding R (symmetric)
    or (granules, 2) holding lo and step, counted at ``scale_bits`` each: they are kept in the
    compute dtype but hold values exactly representable at the stored width. ``to_dense()``
    rebuilds ``lo + step * code``; ``nbits`` equals :func:`quant_nbits`.
    """

    _fields = ("codes", "ranges")

    def __init__(
        self, codes, ranges, *, scale_bits, shape, bits, scales, axis, group_size, symmetric
    ):
        self.codes, self.ranges = codes, ranges
        self.scale_bits = scale_bits
        self._shape = torch.Size(shape)
        self.bits, self.scales, self.axis = bits, scales, axis
        self.group_size, self.symmetric = group_size, symmetric

    def _element_bits(self, name: str, t: torch.Tensor) -> int:
        return {"codes": self.bits, "ranges": self.scale_bits}[name]

    @property
    def shape(self) -> torch.Size:
        return self._shape

    @property
    def lo(self) -> torch.Tensor:
        """The lowest level of each granule, (granules, 1)."""
        return -self.ranges if self.symmetric else self.ranges[:, :1]

    @property
    def step(self) -> torch.Tensor:
        """The distance between levels of each granule, (granules, 1)."""
        return 2 * self.ranges / (2**self.bits - 1) if self.symmetric else self.ranges[:, 1:]

    @property
    def n_ranges(self) -> int:
        return self.ranges.shape[0]

    def to_dense(self) -> torch.Tensor:
        layout = (self.scales, self.axis, self.group_size)
        codes = _as_groups(self.codes, *layout)  # (granules, g)
        G = self.lo + self.step * codes.to(self.dtype)  # (granules, g)
        return _from_groups(G, tuple(self.shape), *layout)

    def _matmul(self, X):
        return self.to_dense() @ X

    def _rmatmul(self, X):
        return X @ self.to_dense()

    def _describe(self) -> str:
        layout = self.scales if self.scales != "group" else f"group of {self.group_size}"
        axis = f", axis={self.axis}" if self.scales != "tensor" else ""
        return f"bits={self.bits}, scales={layout!r}{axis}"


@checked
def quantize(
    A,
    bits: int,
    *,
    scales: str = "tensor",
    axis: int = 1,
    group_size: int | None = None,
    symmetric: bool = True,
    rounding: str = "nearest",
    scale_dtype: torch.dtype = torch.float32,
    seed=None,
) -> QuantizedMatrix:
    """Quantize a matrix to ``bits`` bits per entry (uniform, see the module docstring).

    Parameters
    ----------
    A : 2-D numpy array or torch tensor
    bits : int in 1..16
    scales : {"tensor", "vector", "group"}
        One range for the whole matrix; one per row (``axis=1``) or per column (``axis=0``);
        or one per ``group_size`` consecutive entries along ``axis`` (a short last group is
        allowed).
    axis : {1, 0}
        The direction along which a range is shared: 1 = along rows (one range per row).
    symmetric : bool
        ``[-max|x|, max|x|]`` (one number per range) or ``[min, max]`` (two numbers).
    rounding : {"nearest", "stochastic"}
        Stochastic rounding uses ``seed`` and is unbiased.
    scale_dtype : torch.dtype, default float32
        Width at which the range numbers are stored and counted, whatever A's dtype (the
        ranges used to rebuild are exactly the stored ones). float16 halves their storage,
        but holds only 6.1e-5..65504 (normal numbers): a range number above its largest
        value, or a matrix whose largest entry is below its smallest normal number, is
        refused with a ``ValueError`` (it would rebuild as inf/NaN, or as zeros). So is a
        range whose span ``max - min`` (``2 max|x|`` if symmetric) overflows A's dtype.

    Returns
    -------
    QuantizedMatrix, whose ``.nbits`` counts every stored bit. Naive quantization of A in
    the LPLR paper's comparison is ``quantize(A, bits)``.
    """
    X = as_matrix(A, "A")
    group_size = _check_layout(scales, axis, group_size, X.shape)

    G = _as_groups(X, scales, axis, group_size)  # (granules, g)
    levels = 2**bits - 1

    # The range numbers are computed in float64 (2 R or max - min cannot overflow there for
    # float32 data), then must fit twice: stored at scale_dtype (float16 holds at most 65504,
    # and LLM weights and activations reach that), and in A's dtype, where the rebuild
    # lo + step * code reaches hi = lo + step * levels. Either overflow would rebuild inf or
    # NaN, so it is refused here rather than returned. So is the opposite: when even the
    # largest range number is below scale_dtype's smallest normal number, the stored ranges
    # keep few bits or none (1e-170 in float32 is 0, and A would come back as all zeros).
    lo, step = _stored_range(G, levels, symmetric, scale_dtype)
    if not (bool(torch.isfinite(lo).all()) and bool(torch.isfinite(step).all())):
        raw = G.abs().amax() if symmetric else torch.stack(
            [G.amin().abs(), (G.amax(dim=1) - G.amin(dim=1)).max() / levels]
        ).max()  # fmt: skip
        raise ValueError(
            f"a range number of A (={float(raw):.4g}) does not fit scale_dtype={scale_dtype}, "
            f"whose largest value is {torch.finfo(scale_dtype).max:.6g}; use a "
            f"scale_dtype of wider range (bfloat16 and float32 reach 3.4e38, float64 "
            f"1.8e308) or scale A down"
        )
    fs, largest = torch.finfo(scale_dtype), float(G.abs().max())
    if 0.0 < largest < fs.tiny:
        raise ValueError(
            f"A's largest entry (={largest:.4g}) is below the smallest normal number of "
            f"scale_dtype={scale_dtype} ({fs.tiny:.4g}), so its ranges would be stored with "
            f"few bits or as zero; use a scale_dtype of wider range (float32 reaches 1.2e-38, "
            f"float64 2.2e-308) or scale A up"
        )
    span = step * levels  # hi - lo, what lo + step * code adds at most
    if not (
        bool(torch.isfinite(span.to(X.dtype)).all())
        and bool(torch.isfinite((lo + span).to(X.dtype)).all())
    ):
        raise ValueError(
            f"A's quantization range spans {float(span.max()):.4g}, beyond the largest "
            f"{X.dtype} value {torch.finfo(X.dtype).max:.4g}, so its levels cannot be "
            f"rebuilt in {X.dtype}; quantize A in float64 or scale it down"
        )
    gen = make_generator(seed, X.device) if rounding == "stochastic" else None
    codes, ranges = _codes(G, lo, step, levels, symmetric, X.dtype, gen)
    codes = _from_groups(codes, tuple(X.shape), scales, axis, group_size).contiguous()  # (m, n)
    return QuantizedMatrix(
        codes,
        ranges,
        scale_bits=dtype_bits(scale_dtype),
        shape=tuple(X.shape),
        bits=bits,
        scales=scales,
        axis=axis,
        group_size=group_size,
        symmetric=symmetric,
    )
