"""Complex input and complex factors for the structured families.

The rest of lrkit is real-only (``_checks.as_tensor`` refuses complex input). Structured
matrices are often complex by nature (the DFT), and the algorithms here (SVDs of rearranged
blocks, butterfly products) hold unchanged over the complex numbers, so these helpers
accept complex input next to the real one and count complex storage honestly.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core._checks import as_tensor, check_positive_int
from ..core.factorization import Factorization


def as_tensor_c(x, name: str, *, min_ndim: int = 1, keep_graph: bool = False) -> torch.Tensor:
    """``_checks.as_tensor``, but complex input stays complex (complex64 or complex128).

    Real input follows lrkit's dtype policy. NaN and Inf are refused in either part. With
    ``keep_graph``, a torch tensor that needs no cast is returned as given (not detached),
    so that autograd flows through factors built from parameters.
    """
    if isinstance(x, np.ndarray) and np.iscomplexobj(x):
        x = torch.from_numpy(np.array(x, dtype=x.dtype.newbyteorder("="), copy=True))
    if not (isinstance(x, torch.Tensor) and x.is_complex()):
        return as_tensor(x, name, min_ndim=min_ndim, keep_grad=keep_graph)
    as_tensor(torch.view_as_real(x.detach()), name, min_ndim=min_ndim + 1)  # finite, not empty
    if x.dtype not in (torch.complex64, torch.complex128):
        return x.detach().to(torch.complex64)
    return x if keep_graph else x.detach()


def as_matrix_c(x, name: str = "A") -> torch.Tensor:
    """A real or complex 2-D matrix, checked (see :func:`as_tensor_c`)."""
    t = as_tensor_c(x, name, min_ndim=0)
    if t.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D matrix; got {t.ndim}-D input of shape {tuple(t.shape)}"
        )
    return t


class ComplexAware(Factorization):
    """Protocol members that count and cast complex factors honestly.

    A complex number is two stored numbers (``num_params``) and counts at its full width in
    ``nbits`` (64 bits for complex64). ``fact @ X`` keeps a complex X complex, and a real
    factorization applied to a complex X gives a complex result.
    """

    @property
    def num_params(self) -> int:
        return sum(t.numel() * (2 if t.is_complex() else 1) for t in self._tensors())

    def nbits_at(self, width: int) -> int:
        return self.num_params * check_positive_int(width, "width")

    def to(self, device=None, dtype: torch.dtype | None = None):
        """Move or cast. Complex factors cast to a real dtype keep being complex at that
        precision (float64 -> complex128): dropping the imaginary part would change the matrix."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        if dtype is None or not self.dtype.is_complex:
            return super().to(device, dtype)
        if not dtype.is_complex:
            dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return self._replace(**{f: getattr(self, f).to(device, dtype) for f in self._fields})

    def __matmul__(self, other):
        fact, X = self._promote(other)
        return fact._matmul(X)

    def __rmatmul__(self, other):
        fact, X = self._promote(other)
        return fact._rmatmul(X)

    def _promote(self, X):
        """(self, X), or both cast to complex when only one of them is."""
        if isinstance(X, Factorization):
            X = X.to_dense()
        X = as_tensor_c(X, "X", keep_graph=True)  # gradients flow to X through fact @ X
        dtype = torch.promote_types(self.dtype, X.dtype)
        fact = self if dtype == self.dtype else self.to(dtype=dtype)
        return fact, X.to(device=self.device, dtype=dtype)
