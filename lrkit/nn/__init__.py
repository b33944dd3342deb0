"""Layers built from factorization results, and whole-model compression.

- :class:`FactorizedLinear`: any matrix result of lrkit as a trainable ``nn.Linear``
  replacement (``from_linear``, ``to_linear``, ``low_rank``, ``monarch``);
- :class:`FactorizedConv2d`: a Conv2d as Tucker-2 or CP convolutions (``from_conv``,
  ``to_conv``);
- :func:`compress_model` / :func:`decompress`: every selected layer of any torch model,
  with a per-module :class:`CompressionReport`;
- :func:`save_compressed` / :func:`load_compressed`: config + safetensors + report, loaded
  without recomputing any factorization.
"""

from .compress import compress_model, decompress
from .conv import FactorizedConv2d
from .io import load_compressed, save_compressed
from .linear import METHODS, FactorizedLinear
from .report import CompressionReport, ModuleReport

__all__ = [
    "METHODS",
    "CompressionReport",
    "FactorizedConv2d",
    "FactorizedLinear",
    "ModuleReport",
    "compress_model",
    "decompress",
    "load_compressed",
    "save_compressed",
]
