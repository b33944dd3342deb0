"""The shipped corpus: CPython's standard library source, split into three fixed parts.

See ``datasets/pystdlib/`` (built by its ``build_corpus.py``; PSF License): ``train``,
``heldout`` (about 5% of the files, for perplexity) and ``calibration`` (about 5%, for
activation statistics in the compression lessons). Parts are xz-compressed UTF-8 text.
"""

from __future__ import annotations

import lzma
from pathlib import Path

import torch

__all__ = ["DATASETS", "corpus_path", "load_text", "load_ids"]

DATASETS = Path(__file__).resolve().parents[2] / "datasets"
PARTS = ("train", "heldout", "calibration")


def corpus_path(part: str) -> Path:
    if part not in PARTS:
        raise ValueError(f"part (={part!r}) must be one of {', '.join(map(repr, PARTS))}")
    path = DATASETS / "pystdlib" / f"{part}.txt.xz"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the corpus ships in the repository's datasets/ folder "
            "(install lrkit from a clone with `pip install -e .`)"
        )
    return path


def load_text(part: str) -> str:
    """The whole part as one string."""
    return lzma.decompress(corpus_path(part).read_bytes()).decode("utf-8")


def load_ids(part: str) -> torch.Tensor:
    """The part as byte-level token ids (uint8 tensor; id = byte value)."""
    data = lzma.decompress(corpus_path(part).read_bytes())
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)
