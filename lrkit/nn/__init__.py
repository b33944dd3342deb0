"""Layers built from factorization results, and whole-model compression.

- :class:`FactorizedLinear`: any matrix result of lrkit as a trainable ``nn.Linear``
  replacement (``from_linear``, ``to_linear``, ``low_rank``, ``monarch``).
"""

from .linear import METHODS, FactorizedLinear

__all__ = ["FactorizedLinear", "METHODS"]
