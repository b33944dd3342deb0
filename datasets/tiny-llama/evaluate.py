"""Score the shipped model on the whole held-out part and write ``evaluation.json``.

    PYTHONPATH=. .venv/bin/python datasets/tiny-llama/evaluate.py

The model card (``README.md`` here) and the repository's README quote these numbers;
``tests/test_quoted_numbers.py`` checks that they quote this file, and recomputes the two
general-purpose compressors (fast) against it. The model's own score takes about two
minutes on a 2-core CPU, too long for every test run, so it is recorded here with the call
that produced it.
"""

from __future__ import annotations

import gzip
import json
import lzma
import platform
from pathlib import Path

import torch

from lrkit.llm import load_tiny, perplexity
from lrkit.llm.data import load_ids

HERE = Path(__file__).resolve().parent


def compressor_bits_per_byte(data: bytes) -> dict[str, float]:
    """Bits per byte of xz -9e and gzip -9 on ``data`` (gzip without a timestamp)."""
    xz = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    gz = gzip.compress(data, compresslevel=9, mtime=0)
    return {"xz_9e": 8 * len(xz) / len(data), "gzip_9": 8 * len(gz) / len(data)}


def main() -> None:
    ids = load_ids("heldout")
    model, _ = load_tiny()
    result = perplexity(model, ids, context=512, stride=256)
    record = {
        "call": 'perplexity(model, load_ids("heldout"), context=512, stride=256)',
        "heldout_bytes": int(ids.numel()),
        "bits_per_byte": result.bits_per_byte,
        **compressor_bits_per_byte(bytes(ids.numpy())),
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }
    (HERE / "evaluation.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
