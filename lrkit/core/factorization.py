"""The result protocol shared by every lrkit method.

Every compression method returns a *factorization object*. It stores a few tensors and
answers the same questions whatever the method (DESIGN.md, "the one idea"):

=========================  ===============================================================
``.shape .dtype .device``  what it approximates
``.to_dense()``            rebuild the full array
``fact @ X``, ``X @ fact`` apply it without rebuilding (matrix results)
``.num_params``            how many numbers are stored
``.nbits``                 every stored bit, at the stored dtypes
``.nbits_at(width)``       the storage if every parameter were kept at ``width`` bits
``.bits_per_entry``        ``nbits`` divided by the number of entries approximated
``.compression_ratio()``   bits of the dense array over ``nbits``
``.to(device, dtype)``     move or cast
=========================  ===============================================================

Subclasses list their stored tensors in ``_fields`` and implement ``to_dense``; matrix
results also implement ``_matmul`` (``self @ X``) and ``_rmatmul`` (``X @ self``).
"""

from __future__ import annotations

import math

import torch

from ._checks import as_tensor, check_positive_int, warn_adjusted

__all__ = ["Factorization", "LowRank", "dtype_bits"]


def dtype_bits(dtype: torch.dtype) -> int:
    """Storage width of one element of ``dtype`` in bits (32 for float32, 1 byte = 8 for bool)."""
    return torch.empty((), dtype=dtype).element_size() * 8


class Factorization:
    """Base class of all lrkit results. See the module docstring for the protocol."""

    _fields: tuple[str, ...] = ()

    # -- what is stored ------------------------------------------------------------------
    def _tensors(self) -> list[torch.Tensor]:
        return [getattr(self, f) for f in self._fields]

    @property
    def shape(self) -> torch.Size:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        return self._tensors()[0].dtype

    @property
    def device(self) -> torch.device:
        return self._tensors()[0].device

    def to_dense(self) -> torch.Tensor:
        raise NotImplementedError

    # -- how big it is, honestly ---------------------------------------------------------
    @property
    def num_params(self) -> int:
        """Number of stored floating-point values (all factors, including any diagonal of
        weights). Integer tensors (indices, codes) are storage, not parameters: they count in
        ``nbits`` and ``nbits_at``."""
        return sum(t.numel() for t in self._tensors() if t.is_floating_point())

    @property
    def nbits(self) -> int:
        """Every stored bit, each tensor counted at its own dtype's width."""
        return sum(t.numel() * dtype_bits(t.dtype) for t in self._tensors())

    def nbits_at(self, width: int) -> int:
        """Storage in bits if every stored parameter were kept at ``width`` bits (e.g. 16);
        integer tensors (indices) still count at their own width."""
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width (={width!r}) must be a positive integer number of bits")
        ints = [t for t in self._tensors() if not t.is_floating_point()]
        return self.num_params * width + sum(t.numel() * dtype_bits(t.dtype) for t in ints)

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
        ``width``: count the stored parameters at this many bits instead (``nbits_at``).
        """
        if ref_bits is None:
            ref_bits = dtype_bits(self.dtype)
        if ref_bits <= 0:
            raise ValueError(f"ref_bits (={ref_bits}) must be > 0")
        stored = self.nbits if width is None else self.nbits_at(width)
        return self.numel * ref_bits / stored

    # -- moving it ----------------------------------------------------------------------
    def to(self, device=None, dtype: torch.dtype | None = None):
        """Return a copy with every stored tensor moved to ``device`` and/or cast to ``dtype``.

        Like ``torch.Tensor.to``, ``fact.to(torch.float16)`` casts. Only floating-point
        tensors are cast; integer tensors (indices, codes) keep theirs. A cast that overflows
        the new dtype (a singular value above 65504 in float16) warns: the result holds Inf.
        """
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        kw = {f: _move(getattr(self, f), device, dtype) for f in self._fields}
        if dtype is not None:
            bad = [f for f, t in kw.items() if t.is_floating_point() and not _finite(t)]
            if bad:
                warn_adjusted(
                    f"casting to {dtype} overflowed in {', '.join(bad)}: the values exceed "
                    f"{torch.finfo(dtype).max:g}; the result holds Inf"
                )
        return self._replace(**kw)

    def _replace(self, **fields):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(fields)
        return new

    # -- applying it --------------------------------------------------------------------
    def __matmul__(self, other):
        return self._matmul(_operand(other, self))

    def __rmatmul__(self, other):
        return self._rmatmul(_operand(other, self))

    def _matmul(self, X: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} does not support `fact @ X`")

    def _rmatmul(self, X: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} does not support `X @ fact`")

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


def _finite(t: torch.Tensor) -> bool:
    """All entries finite; for a sparse tensor, its stored values."""
    return bool(torch.isfinite(t if t.layout == torch.strided else t.values()).all())


def _move(t: torch.Tensor, device, dtype):
    if dtype is not None and t.is_floating_point():
        return t.to(device=device, dtype=dtype)
    return t.to(device=device)


def _operand(X, fact: Factorization) -> torch.Tensor:
    """A right- or left-hand operand on the factorization's device and dtype."""
    if isinstance(X, Factorization):
        X = X.to_dense()
    X = as_tensor(X, "X", keep_grad=True)  # gradients flow to X through fact @ X
    return X.to(device=fact.device, dtype=fact.dtype)


class LowRank(Factorization):
    """A rank-k matrix stored as ``U @ diag(S) @ Vh``.

    Shapes: ``U`` (..., m, k), ``S`` (..., k), ``Vh`` (..., k, n); leading dimensions are a
    batch of matrices. ``U`` has orthonormal columns and ``Vh`` orthonormal rows when the
    object comes from an SVD; the class itself does not require it. Unpacks as
    ``U, S, Vh = lowrank``.

    Storage counts ``k * (m + n + 1)`` numbers per matrix: the singular values too.
    """

    _fields = ("U", "S", "Vh")

    def __init__(self, U, S, Vh):
        # keep_grad: factors may be trained (low-rank layers differentiate through them)
        U = as_tensor(U, "U", min_ndim=2, keep_grad=True)
        S = as_tensor(S, "S", keep_grad=True)
        Vh = as_tensor(Vh, "Vh", min_ndim=2, keep_grad=True)
        k = U.shape[-1]
        if S.shape[-1] != k or Vh.shape[-2] != k:
            raise ValueError(
                f"factor shapes do not agree: U {tuple(U.shape)}, S {tuple(S.shape)}, "
                f"Vh {tuple(Vh.shape)}; need U (..., m, k), S (..., k), Vh (..., k, n)"
            )
        if U.shape[:-2] != S.shape[:-1] or U.shape[:-2] != Vh.shape[:-2]:
            raise ValueError(
                f"batch shapes do not agree: U {tuple(U.shape)}, S {tuple(S.shape)}, "
                f"Vh {tuple(Vh.shape)}"
            )
        if not (U.device == S.device == Vh.device):
            raise ValueError(
                f"factors live on different devices: {U.device}, {S.device}, {Vh.device}"
            )
        dtype = torch.promote_types(torch.promote_types(U.dtype, S.dtype), Vh.dtype)
        self.U, self.S, self.Vh = U.to(dtype), S.to(dtype), Vh.to(dtype)

    @property
    def rank(self) -> int:
        return self.S.shape[-1]

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.U.shape[:-1], self.Vh.shape[-1]))

    def __iter__(self):
        return iter((self.U, self.S, self.Vh))

    def truncate(self, rank: int) -> LowRank:
        """The first ``rank`` terms. For an SVD (S descending) this is the truncated SVD of
        that rank, since truncated SVDs are nested: no new factorization is needed."""
        rank = check_positive_int(rank, "rank")
        if rank > self.rank:
            raise ValueError(f"rank (={rank}) must be <= the current rank = {self.rank}")
        return LowRank(self.U[..., :rank], self.S[..., :rank], self.Vh[..., :rank, :])

    def to_dense(self) -> torch.Tensor:
        return (self.U * self.S.unsqueeze(-2)) @ self.Vh  # (..., m, k) * (..., 1, k) @ (..., k, n)

    def _matmul(self, X: torch.Tensor) -> torch.Tensor:
        # U (S (Vh X)): costs k(m + n) per column instead of m n.
        if X.ndim == 1:
            return self.U @ (self.S * (self.Vh @ X))
        return self.U @ (self.S.unsqueeze(-1) * (self.Vh @ X))  # (..., k, p) scaled by rows

    def _rmatmul(self, X: torch.Tensor) -> torch.Tensor:
        # ((X U) S) Vh
        if X.ndim == 1:
            return ((X @ self.U) * self.S) @ self.Vh
        return ((X @ self.U) * self.S.unsqueeze(-2)) @ self.Vh  # (..., p, k) scaled by columns

    def _describe(self) -> str:
        return f"rank={self.rank}"
