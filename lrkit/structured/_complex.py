"""Complex input and complex factors for the structured families.

The rest of lrkit is real-only (``_checks.as_tensor`` refuses complex input). Structured
matrices are often complex by nature (the DFT), and the algorithms here (SVDs of rearranged
blocks, butterfly products) hold unchanged over the complex numbers, so these helpers
accept complex input next to the real one and count complex storage honestly.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core._checks import as_tensor
from ..core.factorization import Factorization


def as_tensor_c(x, name: str, *, min_ndim: int = 1, keep_graph: bool = False) -> torch.Tensor:
    """``_checks.as_tensor``, but complex input stays complex (complex64 or complex128).

    Real input follows lrkit's dtype policy. NaN and Inf are refused in either part. With
    ``keep_graph``, a torch tensor that needs no cast is returned as given (not detached),
    so that autograd flows through factors built from parameters.
    """
    if isinstance(x, np.ndarray) and np.iscomplexobj(x):
        x = torch.from_numpy(np.array(x, copy=True))
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
    """``fact @ X`` for factors that may be complex.

    The base class already counts a complex number as two stored numbers (``num_params``)
    and at its full width in ``nbits`` (64 bits for complex64), and keeps complex factors
    complex in ``to``. Here ``fact @ X`` keeps a complex X complex, and a real factorization
    applied to a complex X gives a complex result.
    """

    def _operands(self, X):
        """(self, X), or both cast to complex when only one of them is."""
        if isinstance(X, Factorization):
            X = X.to_dense()
        X = as_tensor_c(X, "X", keep_graph=True)  # gradients flow to X through fact @ X
        dtype = torch.promote_types(self.dtype, X.dtype)
        fact = self if dtype == self.dtype else self.to(dtype=dtype)
        return fact, X.to(device=self.device, dtype=dtype)
