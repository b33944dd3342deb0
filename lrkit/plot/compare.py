"""One running comparison: many methods, one photo, the same budgets in bits per entry.

:func:`compare` gives every method the same budgets (bits per entry of the data, e.g. bits
per pixel), lets each pick the largest size (rank, bits, blocks...) whose honest storage,
its ``.nbits``, fits, and measures the result. JPEG at the same file size is the everyday
reference: the highest Pillow quality whose whole file fits the budget, measured on the
decoded image. The result prints as a table and draws as one error-against-bits figure.

A method is either a :class:`Method` (a family of results indexed by an increasing size:
the search picks the size), a callable ``f(data, bits_per_entry)`` that picks its own size
and returns a factorization (or None when nothing fits), or the name of a ready-made one
in :data:`METHODS`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..core._checks import as_matrix, check_bool, check_real
from ..core.factorization import Factorization
from ..core.metrics import psnr, rel_error
from ..core.quant import quantize
from ..matrix.cur import cur
from ..matrix.lplr import dsvd_quant, lplr
from ..matrix.rsvd import rsvd
from ..matrix.svd import truncated_svd
from ..structured import kron_approx, monarch_project
from ..tensor import hooi

__all__ = ["Method", "Entry", "Comparison", "compare", "jpeg_at_budget", "METHODS"]

JPEG_QUALITIES = range(1, 101)  # every quality Pillow accepts


@dataclass(frozen=True)
class Method:
    """A family of results, one per size, whose storage grows with the size.

    ``make(A, size)`` returns a factorization of ``A`` (a float tensor, m x n). ``sizes``
    lists the sizes to search, in increasing order of storage: :func:`compare` keeps the
    largest whose ``.nbits`` fits a budget, found by bisection (so ``.nbits`` must not
    decrease along ``sizes``). ``size_name`` labels the size in the table ("rank",
    "bits"...). ``decode``, for a method that factorizes a rearranged copy of ``A`` (a
    tensor of tiles), maps the result's ``to_dense()`` back to A's shape; rearranging is
    free, it stores nothing.
    """

    make: Callable[[torch.Tensor, int], Factorization]
    sizes: Sequence[int]
    size_name: str = "rank"
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass(frozen=True)
class Entry:
    """One row of the table: a method at a budget. ``size`` and ``nbits`` are None, and the
    errors NaN, when even the method's smallest size does not fit."""

    method: str
    budget: float
    size: int | None
    size_name: str
    nbits: int | None
    bits_per_entry: float
    rel_error: float
    psnr: float | None


class Comparison:
    """The entries of :func:`compare`, printable as a table and drawable as one figure."""

    def __init__(self, entries: list[Entry], budgets: tuple[float, ...], shape: tuple):
        self.entries = entries
        self.budgets = budgets
        self.shape = shape

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(e.method for e in self.entries))

    def get(self, method: str, budget: float) -> Entry:
        """The entry of ``method`` at ``budget``."""
        for e in self.entries:
            if e.method == method and e.budget == budget:
                return e
        raise KeyError(f"no entry for method {method!r} at budget {budget}")

    def errors(self, method: str, metric: str = "rel_error") -> np.ndarray:
        """``metric`` ("rel_error" or "psnr") of ``method`` at every budget (NaN: none fits)."""
        out = [getattr(self.get(method, b), metric) for b in self.budgets]
        return np.array([np.nan if v is None else v for v in out], dtype=float)

    def table(self) -> str:
        """One line per method and budget: the chosen size, the honest bits, the errors."""
        has_psnr = any(e.psnr is not None for e in self.entries)
        head = f"{'method':24s} {'budget':>6s} {'chosen size':>14s} {'bits/entry':>10s}"
        head += f" {'rel. error':>10s}"
        lines = [head + (f" {'PSNR (dB)':>9s}" if has_psnr else "")]
        for e in self.entries:
            if e.size is None:
                lines.append(f"{e.method:24s} {e.budget:6g} {'does not fit':>14s}")
                continue
            size = f"{e.size_name} {e.size}"
            line = f"{e.method:24s} {e.budget:6g} {size:>14s} {e.bits_per_entry:10.3f}"
            line += f" {e.rel_error:10.4f}"
            lines.append(line + (f" {e.psnr:9.2f}" if e.psnr is not None else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        size = f"{len(self.methods)} methods x {len(self.budgets)} budgets"
        return f"Comparison({size}, data {self.shape})"

    def plot(self, ax: plt.Axes | None = None, *, metric: str = "rel_error", title=None):
        """Error (or PSNR) against the bits per entry actually stored, one line per method.

        Points sit at their honest ``bits_per_entry`` (at or left of their budget, drawn as
        dotted vertical lines); the x axis is logarithmic. Returns the axes.
        """
        if metric not in ("rel_error", "psnr"):
            raise ValueError(f"metric (={metric!r}) must be 'rel_error' or 'psnr'")
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
        for b in self.budgets:
            ax.axvline(b, color="0.85", lw=0.8, ls=":", zorder=0)
        for i, name in enumerate(self.methods):
            ok = [e for e in self.entries if e.method == name and e.size is not None]
            x = [e.bits_per_entry for e in ok]
            y = [getattr(e, metric) for e in ok]
            # markers and dashes differ too: methods that nearly agree (SVD, rSVD) stay visible
            style = {"marker": "ov^<>Dph*X"[i % 10], "color": f"C{i % 10}", "ls": "-:"[i % 2]}
            if name == "JPEG":
                style = dict(color="k", ls="--", marker="s")
            ax.plot(x, y, ms=5, mfc="none", label=name, **style)
        ax.set_xscale("log", base=2)
        ax.set_xticks(self.budgets, [f"{b:g}" for b in self.budgets])
        ax.set_xlabel("stored bits per entry (log scale; dotted lines: the budgets)")
        if metric == "rel_error":
            ax.set_yscale("log")
            ax.set_ylabel("relative error (Frobenius, log scale)")
        else:
            ax.set_ylabel("PSNR (dB, higher is better)")
        m, n = self.shape
        ax.set_title(title or f"Every method at the same budgets ({m} x {n})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, ncols=2)
        return ax


# -- ready-made methods ----------------------------------------------------------------------


def _svd_methods(width: int):
    def build(A):
        svd = truncated_svd(A, min(A.shape))  # once; every rank is a slice (truncations nest)

        def make(_, k):
            f = svd.truncate(k)
            if width == 16:  # fold sqrt(s) into both factors: no entry exceeds sqrt(s_1)
                root = f.S.sqrt()
                f = type(f)(f.U * root, torch.ones_like(root), root[:, None] * f.Vh)
                return f.to(dtype=torch.float16)
            return f.to(dtype=torch.float32)

        return Method(make, range(1, min(A.shape) + 1))

    return build


def _rsvd(A):
    return Method(
        lambda A, k: rsvd(A, k, seed=0).to(dtype=torch.float32), range(1, min(A.shape) + 1)
    )


def _quantized(fn, **kw):
    def build(A):
        return Method(lambda A, k: fn(A, k, **kw), range(1, min(A.shape) + 1))

    return build


def _naive(A):
    return Method(lambda A, b: quantize(A, b, symmetric=False), range(1, 17), "bits")


def _cur(A):
    svd = truncated_svd(A, min(A.shape))  # DEIM's singular vectors, computed once

    def make(A, c):  # c columns and c rows: rank at most c
        return cur(A, c, n_cols=c, n_rows=c, svd=svd).to(dtype=torch.float32)

    return Method(make, range(1, min(A.shape) + 1), "columns")


def _tiles(A, t=8):
    m, n = A.shape
    if m % t or n % t:
        raise ValueError(f"tiles of {t} x {t} need m and n divisible by {t}; got {(m, n)}")
    T = A.reshape(m // t, t, n // t, t).permute(0, 2, 1, 3)  # (m/t, n/t, t, t)
    T = T.reshape(m // t, n // t, t * t)  # (tile row, tile column, pixel in the tile)

    def decode(X):
        return X.reshape(m // t, n // t, t, t).permute(0, 2, 1, 3).reshape(m, n)

    return T, decode


def _tucker(A):
    T, decode = _tiles(A)

    def make(_, r):  # ranks (r, r, r), clipped to each mode's size
        return hooi(T, [min(r, d) for d in T.shape], seed=0).to(dtype=torch.float32)

    return Method(make, range(1, max(T.shape) + 1), "core", decode)


def _kronecker(A):
    left = (A.shape[0] // 16, A.shape[1] // 16)  # B: one entry per 16 x 16 tile

    def make(A, r):
        return kron_approx(A, left, r).to(dtype=torch.float32)

    return Method(make, range(1, min(left[0] * left[1], 16 * 16) + 1), "terms")


def _monarch(A):
    m, n = A.shape
    # b blocks store m b + m n / b numbers: fewest at b = sqrt(n), more as b shrinks
    blocks = [b for b in range(math.isqrt(n), 0, -1) if m % b == 0 and n % b == 0]
    return Method(lambda A, b: monarch_project(A, b).to(dtype=torch.float32), blocks, "blocks")


#: Ready-made methods by name, each built on the data once (a full SVD is sliced, not
#: recomputed). Floating factors are stored in float32 (fp16 where the name says so); the
#: quantized ones use 4-bit left and 8-bit right factors with one range per rank-one
#: component (``scales="vector"``) and ranges stored in float32.
METHODS: dict[str, Callable[[torch.Tensor], Method]] = {
    "SVD": _svd_methods(32),
    "SVD, fp16 factors": _svd_methods(16),
    "rSVD": _rsvd,
    "DSVD 4/8-bit": _quantized(dsvd_quant, bits_left=4, bits_right=8, scales="vector"),
    "LPLR 4/8-bit": _quantized(lplr, bits_left=4, bits_right=8, scales="vector", seed=0),
    "naive quantization": _naive,
    "CUR": _cur,
    "Tucker of 8x8 tiles": _tucker,
    "Kronecker": _kronecker,
    "Monarch": _monarch,
}


# -- JPEG ------------------------------------------------------------------------------------


def _jpeg_bytes(img: np.ndarray, quality: int) -> bytes:
    from PIL import Image  # Pillow comes with matplotlib

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _jpeg_decode(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def jpeg_at_budget(img, bits_per_entry: float, *, _cache: dict | None = None):
    """The highest JPEG quality (1 to 100) whose whole file fits ``bits_per_entry`` bits per
    pixel, as ``(quality, file_bytes, decoded)``, or None if even quality 1 does not fit.

    ``img`` is an 8-bit grey photo (uint8, m x n); the file is Pillow's JPEG with its
    default settings at that quality, headers included: ``8 * len(file) <= budget * m * n``.
    """
    img = _uint8_image(img)
    budget = check_real(bits_per_entry, "bits_per_entry", 0, low_open=True)
    files = _cache if _cache is not None else {}  # quality -> file, kept by the caller
    fits = None
    for q in JPEG_QUALITIES:
        if q not in files:
            files[q] = _jpeg_bytes(img, q)
        if 8 * len(files[q]) <= budget * img.size:
            fits = q  # the highest that fits: file size need not grow with quality
    if fits is None:
        return None
    return fits, files[fits], _jpeg_decode(files[fits])


def _uint8_image(img) -> np.ndarray:
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().numpy()
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        kind = getattr(img, "dtype", type(img).__name__)
        raise TypeError(
            f"JPEG needs an 8-bit image (uint8 array or tensor); got {kind} (or pass jpeg=False)"
        )
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"JPEG needs a non-empty 2-D grey image; got shape {img.shape}")
    return img


# -- the comparison --------------------------------------------------------------------------


def _largest_fit(method: Method, A, limit: float, cache: dict):
    """Bisection over ``method.sizes`` for the largest size with ``.nbits <= limit``."""

    def build(i):
        if i not in cache:
            cache[i] = method.make(A, method.sizes[i])
        return cache[i]

    lo, hi = -1, len(method.sizes)  # sizes[lo] fits (or lo = -1), sizes[hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if build(mid).nbits <= limit:
            lo = mid
        else:
            hi = mid
    return (None, None) if lo < 0 else (method.sizes[lo], build(lo))


def compare(
    data,
    methods: Sequence[str] | Mapping[str, Method | Callable | str],
    budgets: Sequence[float],
    *,
    jpeg: bool = True,
    data_range: float | None = None,
) -> Comparison:
    """Every method at every budget in bits per entry: the table and the figure of one comparison.

    Parameters
    ----------
    data : 2-D array or tensor (m x n)
        The matrix, e.g. an 8-bit grey photo (uint8). Integer input is compressed as float32.
    methods : sequence of names, or mapping name -> Method, callable or name
        Names are keys of :data:`METHODS`. A :class:`Method` is searched for the largest
        size that fits each budget. A callable ``f(A, bits_per_entry)`` returns a
        factorization that fits (or None if none does); its size is its ``.rank`` if it has
        one.
    budgets : sequence of positive numbers
        Bits per entry of the data: a result fits if ``nbits <= budget * m * n``.
    jpeg : bool, default True
        Add JPEG at equal file size (``data`` must then be a uint8 image).
    data_range : float, optional
        Span of the pixel values for the PSNR; 255 by default for uint8 data. Without it
        (and for non-uint8 data) no PSNR is reported.

    Returns
    -------
    Comparison
        ``.entries`` (method, budget, chosen size, nbits, bits per entry, relative Frobenius
        error, PSNR), ``.table()``, ``.plot()``. Errors are measured on the result as
        stored (``to_dense()``, unclipped), against ``data``.
    """
    A = as_matrix(data, "data")
    is_uint8 = str(getattr(data, "dtype", "")) in ("uint8", "torch.uint8")
    if data_range is None and is_uint8:
        data_range = 255.0
    if isinstance(budgets, str | bytes) or not isinstance(budgets, Sequence | np.ndarray):
        raise TypeError(f"budgets must be a sequence of numbers; got {type(budgets).__name__}")
    if len(budgets) == 0:
        raise ValueError("budgets must not be empty")
    budgets = tuple(check_real(b, "budgets[i]", 0, low_open=True) for b in budgets)
    if isinstance(methods, str) or not isinstance(methods, Mapping | Sequence):
        raise TypeError(f"methods must be a sequence of names or a mapping; got {methods!r}")
    if not isinstance(methods, Mapping):
        methods = {name: name for name in methods}
    if len(methods) == 0 and not jpeg:
        raise ValueError("methods must not be empty (or ask for jpeg=True)")
    img = _uint8_image(data) if check_bool(jpeg, "jpeg") else None

    def measure(name, budget, size, size_name, nbits, dense):
        err = rel_error(A, dense)
        db = psnr(A, dense, data_range=data_range) if data_range is not None else None
        return Entry(name, budget, size, size_name, nbits, nbits / A.numel(), err, db)

    def miss(name, budget, size_name):
        return Entry(name, budget, None, size_name, None, math.nan, math.nan,
                     None if data_range is None else math.nan)  # fmt: skip

    entries = []
    for name, spec in methods.items():
        if isinstance(spec, str):
            if spec not in METHODS:
                raise ValueError(f"method {spec!r} is not one of {sorted(METHODS)}")
            spec = METHODS[spec](A)
        if not (isinstance(spec, Method) or callable(spec)):
            raise TypeError(
                f"methods[{name!r}] must be a Method, a callable or a name; got {spec!r}"
            )
        if isinstance(spec, Method) and len(spec.sizes) == 0:
            raise ValueError(f"methods[{name!r}].sizes must not be empty")
        cache = {}  # built results by size index, shared by the budgets
        for budget in budgets:
            limit = budget * A.numel()
            if isinstance(spec, Method):
                size, result = _largest_fit(spec, A, limit, cache)
                size_name = spec.size_name
            else:
                result = spec(A, budget)
                size, size_name = getattr(result, "rank", None), "rank"
            if result is None:
                entries.append(miss(name, budget, size_name))
                continue
            if not isinstance(result, Factorization):
                kind = type(result).__name__
                raise TypeError(f"method {name!r} returned {kind}, not a factorization")
            if result.nbits > limit:
                raise ValueError(
                    f"method {name!r} at budget {budget:g} stores {result.nbits} bits, more "
                    f"than budget * m * n = {limit:g}"
                )
            dense = result.to_dense()
            if isinstance(spec, Method) and spec.decode is not None:
                dense = spec.decode(dense)
            if tuple(dense.shape) != tuple(A.shape):
                raise ValueError(
                    f"method {name!r} returned shape {tuple(dense.shape)}, data has "
                    f"{tuple(A.shape)} (give a Method with decode= for rearranged data)"
                )
            entries.append(measure(name, budget, size, size_name, result.nbits, dense))
    if jpeg:
        files = {}  # quality -> file, shared by the budgets
        for budget in budgets:
            hit = jpeg_at_budget(img, budget, _cache=files)
            if hit is None:
                entries.append(miss("JPEG", budget, "quality"))
                continue
            quality, file, decoded = hit
            dense = torch.from_numpy(decoded.astype(np.float32)).to(A.device, A.dtype)
            entries.append(measure("JPEG", budget, quality, "quality", 8 * len(file), dense))
    return Comparison(entries, budgets, tuple(A.shape))
