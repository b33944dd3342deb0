"""The numbers the README and the model card quote about the shipped model come from the
files that record them, so a retrained model or a changed evaluation fails here instead of
contradicting the prose.

Sources: the weights themselves (parameter count), ``trainer_state.json`` and ``log.csv``
(the trainer's own records), ``args.json`` (the training command's settings) and
``evaluation.json``, written by ``datasets/tiny-llama/evaluate.py`` (the model's score on the
whole held-out part takes minutes, so it is recorded with the call that produced it; the
compressors' figures are recomputed here)."""

import csv
import gzip
import json
import lzma
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "datasets" / "tiny-llama"
README = (ROOT / "README.md").read_text()
CARD = (MODEL / "README.md").read_text()
EVAL = json.loads((MODEL / "evaluation.json").read_text())
STATE = json.loads((MODEL / "trainer_state.json").read_text())
ARGS = json.loads((MODEL / "args.json").read_text())


def quoted(page: str, pattern: str) -> str:
    """The number the page writes where ``pattern`` (one group) matches; flattened lines."""
    found = re.search(pattern, " ".join(page.split()))
    assert found, f"no match for {pattern!r}: the sentence changed, update the test with it"
    return found.group(1)


def test_parameter_count():
    from lrkit.llm import load_tiny

    model, _ = load_tiny()
    n = sum(p.numel() for p in model.parameters())
    assert n == EVAL["parameters"]
    assert quoted(CARD, r"\| parameters \| ([\d,]+) \(") == f"{n:,}"
    assert quoted(CARD, r"\(([\d.]+) MB in float32\)") == f"{4 * n / 1e6:.1f}"
    assert quoted(README, r"(\d+\.\dM) parameters") == f"{n / 1e6:.1f}M"


def test_held_out_scores_quote_the_recorded_evaluation():
    from lrkit.llm.data import load_ids

    assert EVAL["call"] == 'perplexity(model, load_ids("heldout"), context=512, stride=256)'
    assert load_ids("heldout").numel() == EVAL["heldout_bytes"]
    bpb, xz, gz = (f"{EVAL[k]:.3f}" for k in ("bits_per_byte", "xz_9e", "gzip_9"))
    assert quoted(README, r"\): (\d\.\d+) bits per byte on the whole held-out") == bpb
    assert quoted(README, r"against (\d\.\d+) for `xz -9e`") == xz
    assert quoted(CARD, r"\*\*(\d\.\d+) bits per byte\*\*") == bpb
    assert quoted(CARD, r"against xz -9e (\d\.\d+) and gzip -9") == xz
    assert quoted(CARD, r"gzip -9 (\d\.\d+) on the same bytes") == gz
    assert quoted(CARD, r"all ([\d,]+) bytes of") == f"{EVAL['heldout_bytes']:,}"


def test_compressor_figures_are_reproduced():
    # xz and gzip are deterministic for one library version; another liblzma or zlib may
    # choose a few bytes differently, which moves bits per byte by ~8 * 10 / 540560 ~ 1.5e-4
    from lrkit.llm.data import load_ids

    data = bytes(load_ids("heldout").numpy())
    xz = 8 * len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)) / len(data)
    gz = 8 * len(gzip.compress(data, compresslevel=9, mtime=0)) / len(data)
    assert xz == pytest.approx(EVAL["xz_9e"], abs=1e-3)
    assert gz == pytest.approx(EVAL["gzip_9"], abs=1e-3)


def test_training_figures_quote_the_trainer_records():
    bpb = f"{STATE['heldout_bpb']:.3f}"
    tokens = STATE["eval_tokens"]
    assert tokens == ARGS["eval_tokens"]
    assert quoted(README, r"the first ([\d,]+) held-out bytes") == f"{tokens:,}"
    assert quoted(README, r"held-out bytes, gives (\d\.\d+) \(`trainer_state.json`\)") == bpb
    assert quoted(CARD, r"\(first ([\d,]+) bytes\)") == f"{tokens:,}"
    assert quoted(CARD, r"\| (\d\.\d+) bits per byte at step") == bpb
    assert quoted(CARD, r"bits per byte at step (\d+)") == str(STATE["step"])
    steps, batch, ctx = ARGS["steps"], ARGS["batch"], ARGS["context"]
    assert STATE["step"] == steps and STATE["tokens"] == steps * batch * ctx
    assert quoted(CARD, r"\| training \| ([\d,]+) steps ×") == f"{steps:,}"
    assert quoted(CARD, r"steps × (\d+) × \d+ =") == str(batch)
    assert quoted(CARD, r"steps × \d+ × (\d+) =") == str(ctx)
    assert quoted(CARD, r"= ([\d.]+)M tokens") == f"{steps * batch * ctx / 1e6:.1f}"
    with open(MODEL / "log.csv") as f:
        rows = list(csv.DictReader(f))
    elapsed = float(rows[-1]["elapsed_s"])
    assert elapsed == pytest.approx(STATE["elapsed_s"], abs=0.1)  # the log's last row
    assert quoted(CARD, r"\| compute \| (\d+) minutes of training") == f"{elapsed / 60:.0f}"
