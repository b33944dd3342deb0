"""Compress a causal language model's checkpoint from the command line.

    python -m lrkit.nn.compress CHECKPOINT_DIR --method whiten --param-ratio 0.6 \\
        --calibration TEXT_FILE --out DIR [--eval TEXT_FILE]

``CHECKPOINT_DIR`` is either

- an lrkit Llama checkpoint (``config.json`` with ``model_type`` "llama" and
  ``model.safetensors``, no tokenizer files, e.g. ``datasets/tiny-llama``): loaded with
  :meth:`lrkit.llm.Llama.from_pretrained`, text read as bytes by lrkit's byte tokenizer;
- a Hugging Face causal LM directory (a ``config.json`` of any other kind, or with tokenizer
  files): loaded with ``transformers``' ``AutoModelForCausalLM`` and ``AutoTokenizer``,
  offline (``local_files_only=True``), in float32.

``--format lrkit`` or ``--format hf`` overrides the guess. The calibration text is cut into
windows of ``--context`` tokens (default: the model's context, at most 512), up to
``--calibration-tokens`` tokens in all (default 32 windows of 512), from the start of the
file. The linear layers are compressed with :func:`lrkit.nn.compress_model` (every Linear but
the output layer), the :class:`~lrkit.nn.CompressionReport` printed, and the result written
with :func:`lrkit.nn.save_compressed` to ``--out``. Load it back on the dense architecture::

    from lrkit.llm import Llama
    from lrkit.nn import load_compressed
    model = load_compressed(Llama.from_pretrained(CHECKPOINT_DIR), OUT)
    # a Hugging Face model: load_compressed(AutoModelForCausalLM.from_pretrained(...), OUT)

``--eval TEXT_FILE`` scores the text before and after compression with
:func:`lrkit.llm.perplexity` (windows of ``--context`` tokens, stride half of it). For an lrkit
model a token is a byte, so the bits per token are bits per byte. For a Hugging Face model the
command prints bits per token and bits per byte: the same total of bits divided by the UTF-8
bytes of the text the scored tokens cover (all but the first token, which nothing predicts).

Memory: the dense model is evaluated first, then compressed in place, so one model is held,
plus each layer's calibration statistics (an (in, in) float64 Gram matrix for whitening).
With ``--sequential``, :func:`lrkit.nn.compress_model`'s sequential mode (calibrate and
compress one block at a time, each block fed the outputs of the blocks already compressed,
as SVD-LLM and GPTQ do) bounds the statistics to one block's: that is how the same code
scales to a model whose statistics do not fit in memory at once.

Run ``python -m lrkit.nn.compress --help`` for every option.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import warnings
from pathlib import Path

import torch

# The methods sized by a rank (lplr also needs its bit widths, which this command does not take)
CLI_METHODS = ("svd", "asvd", "whiten", "fwsvd", "rsvd", "cur")
AWARE = ("asvd", "whiten", "fwsvd")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 < value <= 1):
        raise argparse.ArgumentTypeError(f"must be in (0, 1]; got {text}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text}")
    return value


def _allocation_rule():
    from ...core._params import PARAMS

    return PARAMS["compress_model"]["allocation"]  # the strategies compress_model takes


def _allocations() -> str:
    return ", ".join(_allocation_rule().values)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lrkit.nn.compress",
        description="Compress the linear layers of a causal language model checkpoint "
        "(lrkit's Llama or a Hugging Face model) and save it with lrkit.nn.save_compressed.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT_DIR", help="the model's directory")
    p.add_argument("--out", required=True, metavar="DIR", help="where to save the result")
    p.add_argument(
        "--method",
        default="svd",
        choices=CLI_METHODS,
        help="how each weight is factorized (default svd; whiten is SVD-LLM's)",
    )
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument(
        "--param-ratio",
        type=_ratio,
        metavar="R",
        help="fraction of the linear layers' parameters kept, in (0, 1]",
    )
    size.add_argument("--rank", type=_positive, help="one rank for every layer")
    p.add_argument(
        "--allocation",
        default="uniform",
        help=f"how --param-ratio is shared among layers: {_allocations()} "
        f"(default uniform; passed to compress_model)",
    )
    p.add_argument(
        "--sequential",
        action="store_true",
        help="calibrate and compress one block at a time, each seeing the blocks compressed "
        "before it (asvd, whiten; memory: one block's statistics)",
    )
    p.add_argument(
        "--calibration",
        metavar="TEXT_FILE",
        help="text the statistics are collected on (needed by asvd, whiten, fwsvd "
        "and by allocations other than uniform)",
    )
    p.add_argument(
        "--calibration-tokens",
        type=_positive,
        default=32 * 512,
        metavar="N",
        help="calibration tokens at most, cut into windows of --context "
        "(default 16384: 32 windows of 512)",
    )
    p.add_argument(
        "--context",
        type=_positive,
        default=None,
        help="window length in tokens for calibration and evaluation (default: "
        "the model's context, at most 512)",
    )
    p.add_argument(
        "--batch-size", type=_positive, default=8, help="windows per forward pass (default 8)"
    )
    p.add_argument(
        "--eval", metavar="TEXT_FILE", help="score this text before and after (bits per byte)"
    )
    p.add_argument(
        "--eval-tokens",
        type=_positive,
        default=None,
        metavar="N",
        help="score only the first N tokens of --eval (default: all)",
    )
    p.add_argument(
        "--format",
        default="auto",
        choices=("auto", "lrkit", "hf"),
        help="the checkpoint's kind (default: guessed from config.json)",
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of randomized methods (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


# -- loading --------------------------------------------------------------------------------
def checkpoint_format(path: Path) -> str:
    """The kind of checkpoint: "lrkit" (a Llama without tokenizer files) or "hf"."""
    config = json.loads((path / "config.json").read_text())
    has_tokenizer = any((path / name).is_file() for name in TOKENIZER_FILES)
    return "lrkit" if config.get("model_type") == "llama" and not has_tokenizer else "hf"


class Model:
    """A loaded checkpoint: the model, how it turns text into ids and back, and its context."""

    def __init__(self, path: Path, kind: str, device: str, progress: bool = True):
        self.kind = kind
        if kind == "lrkit":
            from ...llm import ByteTokenizer, Llama

            self.model = Llama.from_pretrained(path, device=device)
            self.tokenizer = ByteTokenizer()
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging

            shown = logging.is_progress_bar_enabled()
            if not progress:
                logging.disable_progress_bar()  # transformers' "Loading weights" bar
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
                self.model = AutoModelForCausalLM.from_pretrained(
                    path, local_files_only=True, dtype=torch.float32
                )
            finally:
                if shown:
                    logging.enable_progress_bar()
            self.model = self.model.to(device).eval()
        self.context = int(self.model.config.max_position_embeddings)

    def encode(self, path: Path, limit: int | None = None) -> tuple[torch.Tensor, int]:
        """The file's token ids (the first ``limit``), and the UTF-8 bytes the scored tokens
        cover (all but the first)."""
        data = path.read_bytes()
        if self.kind == "lrkit":
            ids = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()  # id = byte
            ids = ids[:limit] if limit else ids
            return ids, max(ids.numel() - 1, 0)
        enc = self.tokenizer(data.decode("utf-8", errors="replace"), verbose=False)
        ids = torch.tensor(enc["input_ids"], dtype=torch.long)
        ids = ids[:limit] if limit else ids
        decode = lambda t: self.tokenizer.decode(t, skip_special_tokens=True)  # noqa: E731
        covered = len(decode(ids.tolist()).encode()) - len(decode(ids[:1].tolist()).encode())
        return ids, covered


def windows(ids: torch.Tensor, length: int, count: int) -> torch.Tensor:
    """The first ``count`` non-overlapping windows of ``length`` tokens, (count, length)."""
    return ids[: count * length].reshape(count, length)


# -- the command ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    path, out = Path(args.checkpoint), Path(args.out)
    if not (path / "config.json").is_file():
        parser.error(f"CHECKPOINT_DIR {str(path)!r} is not a directory with a config.json")
    for flag, file in (("--calibration", args.calibration), ("--eval", args.eval)):
        if file is not None and not Path(file).is_file():
            parser.error(f"{flag} {file!r} is not a file")
    if out.exists() and not out.is_dir():
        parser.error(f"--out {str(out)!r} exists and is not a directory")
    try:  # before any loading: compress_model's own rule for allocation
        _allocation_rule()(args.allocation, "--allocation")
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    needs_data = args.method in AWARE or args.allocation != "uniform"
    if needs_data and args.calibration is None:
        parser.error(
            f"--method {args.method} --allocation {args.allocation} needs --calibration TEXT_FILE"
        )
    torch.manual_seed(args.seed)
    progress = not args.no_progress
    kind = checkpoint_format(path) if args.format == "auto" else args.format
    try:
        loaded = Model(path, kind, args.device, progress)
    except (ImportError, OSError, ValueError, KeyError, TypeError) as err:
        what = "an lrkit Llama" if kind == "lrkit" else "a Hugging Face"
        parser.error(f"cannot load {str(path)!r} as {what} checkpoint: {err}")
    context = args.context or min(loaded.context, 512)
    if not 2 <= context <= loaded.context:
        parser.error(f"--context (={context}) must be in 2..{loaded.context}, the model's context")
    name = "lrkit Llama" if kind == "lrkit" else type(loaded.model).__name__
    params = sum(p.numel() for p in loaded.model.parameters())
    print(f"model: {path} ({name}, {params:,} parameters, context {loaded.context})")

    calibration = None
    if args.calibration is not None:
        ids, _ = loaded.encode(Path(args.calibration))
        count = min(args.calibration_tokens, ids.numel()) // context
        if count == 0:
            parser.error(
                f"--calibration {args.calibration!r} has {ids.numel()} tokens; a window needs "
                f"{context} (--context) and --calibration-tokens is {args.calibration_tokens}"
            )
        cal = windows(ids, context, count).to(args.device)
        calibration = cal.split(args.batch_size)  # batches of (batch, context) ids
        print(f"calibration: {args.calibration}, {count} windows of {context} tokens")

    evaluation = None
    if args.eval is not None:
        eval_ids, covered = loaded.encode(Path(args.eval), args.eval_tokens)
        if eval_ids.numel() < 2:
            parser.error(f"--eval {args.eval!r} has {eval_ids.numel()} tokens; need 2 or more")
        evaluation = (eval_ids, covered)
        dense = score(loaded.model, eval_ids, covered, context, progress)

    from ..io import save_compressed
    from ..linear import METHODS
    from . import compress_model

    # "uniform" with one rank for every layer is what --rank alone does
    allocation = None if args.rank is not None and args.allocation == "uniform" else args.allocation
    method_kwargs = {}
    fn = METHODS.get(args.method)
    if fn is not None and "seed" in inspect.signature(fn).parameters:
        method_kwargs["seed"] = args.seed
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model, report = compress_model(
                loaded.model,
                args.method,
                param_ratio=args.param_ratio,
                rank=args.rank,
                allocation=allocation,
                calibration=calibration,
                sequential=args.sequential,
                inplace=True,
                progress=progress,
                **method_kwargs,
            )
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(report)
    if evaluation is not None:
        after = score(model, *evaluation, context, progress)
        print(
            f"\nevaluation: {args.eval}, {after['tokens']:,} tokens scored "
            f"(context {context}, stride {max(context // 2, 1)})"
        )
        for label, s in (("dense", dense), ("compressed", after)):
            line = f"{label:<11} {s['bits_per_byte']:.4f} bits/byte"
            if kind == "hf":
                line += f"  {s['bits_per_token']:.4f} bits/token"
            print(line)
        print(f"difference  {after['bits_per_byte'] - dense['bits_per_byte']:+.4f} bits/byte")
    save_compressed(model, out, report)
    print(f"\nsaved to {out} (load with lrkit.nn.load_compressed on the dense model)")
    return 0


def score(model, ids: torch.Tensor, covered: int, context: int, progress: bool) -> dict:
    """Bits per token and per byte of ``ids`` under ``model`` (see the module docstring)."""
    from ...llm import perplexity

    window = min(context, ids.numel())
    result = perplexity(model, ids, context=window, stride=max(window // 2, 1), progress=progress)
    bits = result.nll * result.tokens / math.log(2)
    return {
        "tokens": result.tokens,
        "bits_per_token": result.nll / math.log(2),
        "bits_per_byte": bits / max(covered, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
