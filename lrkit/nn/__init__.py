"""Layers built from factorization results, and whole-model compression.

- :class:`FactorizedLinear`: any matrix result of lrkit as a trainable ``nn.Linear``
  replacement (``from_linear``, ``to_linear``, ``low_rank``, ``monarch``);
- :class:`FactorizedConv2d`: a Conv2d as Tucker-2 or CP convolutions (``from_conv``,
  ``to_conv``).
"""

from .conv import FactorizedConv2d
from .linear import METHODS, FactorizedLinear

__all__ = ["FactorizedConv2d", "FactorizedLinear", "METHODS"]
