"""The result protocol shared by every lrkit method.

Every compression method returns a *factorization object*. It stores a few tensors and
answers the same questions whatever the method (DESIGN.md, "the one idea"):

=========================  ===============================================================
``.shape .dtype .device``  what it approximates
``.to_dense()``            rebuild the full array
``fact @ X``, ``X @ fact`` apply it without rebuilding (matrix results; checked)
``fact.linear(x)``         ``x @ W.T`` over leading batch dims, unchecked: a layer's kernel
``.num_params``            stored real floating values (a complex value counts 2)
``.nbits``                 every stored bit: floats at their dtype, codes at their width
``.nbits_at(width)``       the storage with every floating value kept at ``width`` bits
``.bits_per_entry``        ``nbits`` divided by the number of entries approximated
``.compression_ratio()``   bits of the dense array over ``nbits``
``.to(device, dtype)``     move or cast
=========================  ===============================================================

How a result class plugs in: it lists the names of what it stores in the class attribute
``_fields``. A field holds a tensor, a list of tensors (the factors of a CP tensor), a
nested result (the quantized factors of a ``QuantizedLowRank``) or ``None`` (nothing
stored). Every size, ``dtype``, ``device`` and ``to`` is computed here, once, from that
flatten (:meth:`Factorization._leaves`) and its rebuild (:meth:`Factorization._map`). A
class whose codes are narrower than their container (b-bit codes kept in ``uint8``)
says so in :meth:`Factorization._element_bits`. Subclasses implement ``shape`` and
``to_dense``; matrix results also ``_matmul`` (``self @ X`` with X of shape (..., n, p),
checked and at least 2-D) and ``_rmatmul`` (``X @ self``, X (..., p, m)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from ._checks import as_tensor, check_positive_int, warn_adjusted

__all__ = ["Factorization", "as_history", "dtype_bits"]


def dtype_bits(dtype: torch.dtype) -> int:
    """Storage width of one element of ``dtype`` in bits (32 for float32, 1 byte = 8 for bool)."""
    return dtype.itemsize * 8


_RESULT_TYPES: dict[str, type] = {}  # every result class by name, for structure round trips


def as_history(values) -> torch.Tensor:
    """A fit history (one relative error per sweep or step) as a float64 tensor on the CPU:
    the one type every iterative method stores in its result's ``history``."""
    if isinstance(values, torch.Tensor):
        return values.detach().to(device="cpu", dtype=torch.float64)
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


def _parts(t: torch.Tensor) -> list[torch.Tensor]:
    """What a tensor stores: itself, or for a sparse CSR tensor its values and index arrays."""
    if t.layout == torch.sparse_csr:
        return [t.values(), t.crow_indices(), t.col_indices()]
    return [t]


def _is_float(t: torch.Tensor) -> bool:
    return t.is_floating_point() or t.is_complex()


class Factorization:
    """Base class of all lrkit results. See the module docstring for the protocol."""

    _fields: tuple[str, ...] = ()
    # numpy would otherwise turn ``ndarray @ fact`` into a dense float64 array through
    # ``__array__``; with this, numpy defers to ``__rmatmul__`` and the result is a tensor.
    __array_ufunc__ = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _RESULT_TYPES[cls.__name__] = cls
        # Results hold only tensors and plain values, so torch.load's default safe unpickler
        # (weights_only=True) may rebuild them: ``torch.save(fact, f); torch.load(f)`` works.
        torch.serialization.add_safe_globals([cls])

    # -- what is stored: one flatten and one rebuild ---------------------------------------
    def _element_bits(self, name: str, t: torch.Tensor) -> int:
        """Stored bits per element of field ``name``: its dtype's width unless overridden."""
        return dtype_bits(t.dtype)

    def _leaves(self, prefix: str = "") -> Iterator[tuple[torch.Tensor, int, str]]:
        """Every stored tensor with its stored bits per element and the name of its field
        (``"L.ranges"`` inside a nested result), nested results included."""
        for name in self._fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, Factorization):
                yield from value._leaves(f"{prefix}{name}.")
                continue
            for t in value if isinstance(value, list | tuple) else (value,):
                for part in _parts(t):
                    yield part, self._element_bits(name, part), prefix + name

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        """A copy with ``fn`` applied to every stored tensor (nested results included)."""
        return self._named_map(lambda _, t: fn(t))

    def _named_map(self, fn: Callable[[str, torch.Tensor], torch.Tensor], prefix: str = ""):
        """Like :meth:`_map`, with ``fn(name, tensor)`` told each tensor's path: ``"U"``,
        ``"factors.0"``, ``"L.codes"``. The order is that of ``_fields``, always the same."""
        new = {}
        for name in self._fields:
            value, path = getattr(self, name), prefix + name
            if value is None:
                new[name] = None
            elif isinstance(value, Factorization):
                new[name] = value._named_map(fn, f"{path}.")
            elif isinstance(value, list | tuple):
                new[name] = [fn(f"{path}.{i}", t) for i, t in enumerate(value)]
            else:
                new[name] = fn(path, value)
        return self._replace(**new)

    def _replace(self, **fields):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(fields)
        return new

    @property
    def shape(self) -> torch.Size:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the stored floating values (and of ``to_dense()``)."""
        return _first_float(self).dtype

    @property
    def device(self) -> torch.device:
        return next(self._leaves())[0].device

    def to_dense(self) -> torch.Tensor:
        raise NotImplementedError

    # -- how big it is, honestly ---------------------------------------------------------
    @property
    def num_params(self) -> int:
        """Number of stored real floating-point values (a complex value counts 2). Integer
        tensors (indices, quantization codes) are storage, not parameters: ``nbits`` and
        ``nbits_at`` count them."""
        return sum(
            t.numel() * (2 if t.is_complex() else 1) for t, _, _ in self._leaves() if _is_float(t)
        )

    @property
    def nbits(self) -> int:
        """Every stored bit: floating tensors at their dtype's width, integer codes at their
        stored width (b bits for b-bit quantization codes), indices at their dtype's width."""
        return sum(t.numel() * bits for t, bits, _ in self._leaves())

    def nbits_at(self, width: int) -> int:
        """Storage in bits if every stored floating value were kept at ``width`` bits (16 for
        fp16 factors); integer tensors (indices, codes) keep their own width."""
        width = check_positive_int(width, "width")
        ints = sum(t.numel() * bits for t, bits, _ in self._leaves() if not _is_float(t))
        return self.num_params * width + ints

    @property
    def numel(self) -> int:
        """Number of entries of the array this object approximates."""
        return math.prod(self.shape)

    @property
    def bits_per_entry(self) -> float:
        """``nbits`` divided by the number of approximated entries."""
        return self.nbits / self.numel

    def compression_ratio(self, ref_bits: int | None = None, *, width: int | None = None) -> float:
        """How many times smaller than the dense array: ``numel * ref_bits / nbits``.

        ``ref_bits`` is the width of one entry of the dense reference: by default that of
        this object's dtype (32 for float32). Pass 8 for an 8-bit image, 16 for fp16 weights.
        ``width``: count the stored floating values at this many bits instead (``nbits_at``).
        """
        if ref_bits is None:
            ref_bits = dtype_bits(self.dtype)
        ref_bits = check_positive_int(ref_bits, "ref_bits")
        stored = self.nbits if width is None else self.nbits_at(width)
        return self.numel * ref_bits / stored

    # -- moving it ----------------------------------------------------------------------
    def to(self, device=None, dtype: torch.dtype | None = None):
        """Return a copy with every stored tensor moved to ``device`` and/or cast to ``dtype``.

        Like ``torch.Tensor.to``, ``fact.to(torch.float16)`` casts. ``dtype`` must be a
        floating-point (or complex) ``torch.dtype``; only floating tensors are cast, integer
        tensors (indices, codes) keep theirs. Complex factors cast to a real dtype stay
        complex at that precision (float64 -> complex128): dropping the imaginary part would
        change the matrix. A cast that overflows the new dtype (a singular value above 65504
        in float16) warns: the result holds Inf.
        """
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        if dtype is not None:
            if not isinstance(dtype, torch.dtype):
                raise TypeError(f"dtype must be a torch.dtype such as torch.float32; got {dtype!r}")
            if not (dtype.is_floating_point or dtype.is_complex):
                raise TypeError(
                    f"dtype (={dtype}) must be a floating-point or complex dtype: a result "
                    f"cast to integers or booleans would no longer hold its values"
                )
        if device is not None:
            if (
                isinstance(device, str)
                and hasattr(torch, device)
                and isinstance(getattr(torch, device), torch.dtype)
            ):
                raise TypeError(
                    f"device (={device!r}) names a dtype; cast with .to(torch.{device})"
                )
            if not isinstance(device, str | torch.device | int):
                raise TypeError(f"device must be a str, int or torch.device; got {device!r}")
            device = torch.device(device)
        has_complex = any(t.is_complex() for t, _, _ in self._leaves())

        def move(t):
            if dtype is None or not _is_float(t):
                return t.to(device=device)
            target = dtype
            if t.is_complex() and not dtype.is_complex:  # keep the imaginary part
                target = torch.complex128 if dtype == torch.float64 else torch.complex64
            return t.to(device=device, dtype=target)

        new = self._map(move)
        if dtype is not None and not has_complex:
            bad = dict.fromkeys(f for t, _, f in new._leaves() if _is_float(t) and not _finite(t))
            if bad:
                warn_adjusted(
                    f"casting to {dtype} overflowed in {', '.join(bad)}: stored values exceed "
                    f"{torch.finfo(dtype).max:g}; the result holds Inf"
                )
        return new

    # -- applying it --------------------------------------------------------------------
    def __matmul__(self, other):
        fact, X = self._operands(other)
        vector = X.ndim == 1
        if vector:
            X = X.unsqueeze(-1)  # (n, 1)
        _check_inner(self.shape[-1], X.shape[-2], f"fact @ X with fact {_s(self)}, X {_s(other)}")
        out = fact._matmul(X)
        return out.squeeze(-1) if vector else out

    def __rmatmul__(self, other):
        fact, X = self._operands(other)
        vector = X.ndim == 1
        if vector:
            X = X.unsqueeze(-2)  # (1, m)
        _check_inner(X.shape[-1], self.shape[-2], f"X @ fact with X {_s(other)}, fact {_s(self)}")
        out = fact._rmatmul(X)
        return out.squeeze(-2) if vector else out

    def _operands(self, X) -> tuple[Factorization, torch.Tensor]:
        """(self, X) ready to multiply: X checked, on this device, in this dtype."""
        if isinstance(X, Factorization):
            X = X.to_dense()
        X = as_tensor(X, "X", keep_grad=True)  # gradients flow to X through fact @ X
        return self, X.to(device=self.device, dtype=self.dtype)

    def _matmul(self, X: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} does not support `fact @ X`")

    def _rmatmul(self, X: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} does not support `X @ fact`")

    def linear(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ W.T (+ bias)`` for the matrix W this object approximates (out x in), over any
        leading batch dimensions of ``x`` (..., in) -> (..., out): what ``nn.Linear`` computes.

        The kernel behind a layer's ``forward``, so nothing is checked, moved or synced: x
        must already be a tensor on this object's device. The factors (and bias) are used in
        x's dtype (cast if they differ; a layer keeps them equal). Gradients flow to x, the
        factors and the bias.
        """
        fact = self if self.dtype == x.dtype else self._map(lambda t: _cast(t, x.dtype))
        if bias is not None and bias.dtype != x.dtype:
            bias = bias.to(x.dtype)
        if x.ndim == 2:  # (B, in): the common case in a layer, no reshapes
            return fact._rmatmul_t(x, bias)
        out = fact._rmatmul_t(x.reshape(-1, x.shape[-1]), bias)  # (B, in) -> (B, out)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _rmatmul_t(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ W.T (+ bias)`` for 2-D x (B, in); by default ``(W @ x.T).T``. A class whose
        last step is a matmul overrides it to fold the bias in (``torch.addmm``)."""
        out = self._matmul(x.mT).mT
        return out if bias is None else out + bias

    def __array__(self, dtype=None, copy=None):
        # Lets numpy functions (np.asarray, plt.imshow) see the rebuilt array.
        arr = self.to_dense().detach().cpu().numpy()
        return arr if dtype is None else arr.astype(dtype)

    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self._describe()
        dtype = str(self.dtype).replace("torch.", "")
        return (
            f"{type(self).__name__}(shape={tuple(self.shape)}{', ' + extra if extra else ''}, "
            f"dtype={dtype}, device={self.device}, bits_per_entry={self.bits_per_entry:.3g})"
        )


def _first_float(fact: Factorization) -> torch.Tensor:
    """The first stored floating tensor, read from the fields directly (``dtype`` is on a
    layer's hot path, so this skips the bit accounting of ``_leaves``)."""
    for name in fact._fields:
        value = getattr(fact, name)
        values = value if isinstance(value, list | tuple) else (value,)
        for v in values:
            if isinstance(v, Factorization):
                found = _first_float(v)
                if found is not None:
                    return found
            elif v is not None and (v.is_floating_point() or v.is_complex()):
                return v
    return None


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) if t.is_floating_point() else t


def _finite(t: torch.Tensor) -> bool:
    """All entries finite."""
    return bool(torch.isfinite(t).all())


def _s(x) -> str:
    """A short shape description for error messages."""
    shape = getattr(x, "shape", None)
    return f"of shape {tuple(shape)}" if shape is not None else f"({type(x).__name__})"


def _check_inner(left: int, right: int, what: str) -> None:
    if left != right:
        raise ValueError(f"{what}: the inner dimensions {left} and {right} differ")
