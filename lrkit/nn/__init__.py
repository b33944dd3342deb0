"""Layers built from factorization results, and whole-model compression.

- :class:`FactorizedLinear`: any matrix result of lrkit as a trainable ``nn.Linear``
  replacement (``from_linear``, ``to_linear``, ``low_rank``, ``monarch``);
- :class:`FactorizedConv2d`: a Conv2d as Tucker-2 or CP convolutions (``from_conv``,
  ``to_conv``);
- :func:`compress_model` / :func:`decompress`: every selected layer of any torch model,
  with a per-module :class:`CompressionReport`;
- :func:`calibrate`: per-layer input statistics (X^T X, mean |x|, Fisher) with hooks
  (:func:`calibrate_blocks`: one block at a time, as SVD-LLM and GPTQ do), and the
  data-aware truncations :func:`asvd`, :func:`whiten` (SVD-LLM), :func:`fwsvd`;
- :func:`allocate_ranks`: ranks per layer under one budget (uniform, whitened spectra,
  Fisher, measured sensitivity), a :class:`RankAllocation`;
- :func:`finetune`: a few hundred steps on the factors, by cross-entropy or distillation
  from the dense model;
- :func:`save_compressed` / :func:`load_compressed`: config + safetensors + report, loaded
  without recomputing any factorization.
- :class:`LinformerSelfAttention`: attention over keys and values projected along the
  sequence to k rows (Linformer), with the fixed projections :func:`jl_projection` and
  :func:`svd_projection`.
- :class:`LatentKVAttention` and :func:`compress_kv`: a KV cache of low-rank latents
  (Palu), per head, per group of heads or joint, quantized or not, with ranks uniform or by
  Fisher information (:func:`proportional_ranks`).
- :class:`ByteEncoder`: a small bidirectional byte encoder with full or Linformer attention,
  trained to fill in masked bytes (:func:`mask_bytes`, :func:`masked_byte_loss`,
  :func:`train_encoder`, :func:`evaluate_encoder`).
"""

from .allocate import RankAllocation, allocate_ranks, proportional_ranks
from .aware import asvd, fwsvd, whiten
from .calibrate import LayerStats, calibrate, calibrate_blocks, next_token_loss
from .compress import compress_model, decompress
from .conv import FactorizedConv2d
from .encoder import ByteEncoder, evaluate_encoder, mask_bytes, masked_byte_loss, train_encoder
from .finetune import finetune
from .io import load_compressed, save_compressed
from .kv import compress_kv
from .latent_kv import LatentKVAttention
from .linear import METHODS, FactorizedLinear
from .linformer import LinformerSelfAttention, jl_projection, svd_projection
from .report import CompressionReport, ModuleReport

__all__ = [
    "METHODS",
    "LayerStats",
    "RankAllocation",
    "allocate_ranks",
    "asvd",
    "calibrate",
    "calibrate_blocks",
    "fwsvd",
    "next_token_loss",
    "whiten",
    "CompressionReport",
    "FactorizedConv2d",
    "FactorizedLinear",
    "ModuleReport",
    "compress_model",
    "decompress",
    "finetune",
    "load_compressed",
    "save_compressed",
    "LinformerSelfAttention",
    "jl_projection",
    "svd_projection",
    "ByteEncoder",
    "evaluate_encoder",
    "mask_bytes",
    "masked_byte_loss",
    "train_encoder",
    "LatentKVAttention",
    "compress_kv",
    "proportional_ranks",
]
