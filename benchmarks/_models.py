"""The models the LLM benchmarks run: the shipped Llama, or a tiny random one for --quick."""

from __future__ import annotations

import torch

from lrkit.llm import Llama, LlamaConfig
from lrkit.llm.data import DATASETS


def tiny_random_llama() -> Llama:
    """A 2-layer Llama of width 64 with grouped-query attention, seeded: a smoke run's model."""
    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return Llama(cfg).eval()


def load(quick: bool) -> tuple[Llama, str]:
    """The model to time and its name: the tiny random one with ``quick``, else the shipped."""
    if quick:
        return tiny_random_llama(), "tiny random Llama"
    return Llama.from_pretrained(DATASETS / "tiny-llama").eval(), "datasets/tiny-llama"
