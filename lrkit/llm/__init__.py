"""A small Llama for the course: model, byte tokenizer, corpus, training, evaluation.

from lrkit.llm import load_tiny, generate, perplexity
model, tok = load_tiny()
print(generate(model, "def fibonacci(n):", max_new_tokens=200, temperature=0.7, seed=0))
"""

from __future__ import annotations

from ..core._params import checked
from .evaluate import Perplexity, generate, perplexity
from .model import KVCache, Llama, LlamaConfig
from .tokenizer import ByteTokenizer

__all__ = [
    "ByteTokenizer",
    "KVCache",
    "Llama",
    "LlamaConfig",
    "Perplexity",
    "generate",
    "load_tiny",
    "perplexity",
]


@checked
def load_tiny(*, device="cpu", dtype=None):
    """The course's small Llama, shipped in ``datasets/tiny-llama/``, and its tokenizer."""
    import torch

    from .data import DATASETS

    path = DATASETS / "tiny-llama"
    model = Llama.from_pretrained(path, dtype=dtype or torch.float32, device=device)
    return model, ByteTokenizer()
