"""Complex input and complex factors for the structured families.

The rest of lrkit is real-only (``_checks.as_tensor`` refuses complex input unless asked
with ``allow_complex=True``). Structured matrices are often complex by nature (the DFT), and
the algorithms here (SVDs of rearranged blocks, butterfly products) hold unchanged over the
complex numbers, so the structured results count complex storage honestly.
"""

from __future__ import annotations

import torch

from ..core._checks import as_tensor
from ..core.factorization import Factorization


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
        # gradients flow to X through fact @ X
        X = as_tensor(X, "X", keep_grad=True, allow_complex=True)
        dtype = torch.promote_types(self.dtype, X.dtype)
        fact = self if dtype == self.dtype else self.to(dtype=dtype)
        return fact, X.to(device=self.device, dtype=dtype)
