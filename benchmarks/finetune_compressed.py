"""Fine-tuning the shipped Llama after compression: bits per byte against steps and
training time, by cross-entropy or by distillation from the dense model.

Setting as benchmarks/llm_compression_table.py (first 128 kB of the held-out corpus,
context 512, stride 256; calibration 32 windows of 512 tokens); training batches of
``--batch`` random windows of 512 bytes from the training part; AdamW on the factors
(``--lr``, default 5e-4, warm-up then cosine). Run:

    .venv/bin/python benchmarks/finetune_compressed.py --ratio 0.5 --method whiten \\
        --steps 300 --eval-every 100 [--kd 1.0] [--sequential] [--allocation whiten]

The training time printed excludes the evaluations.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import torch

from lrkit.llm import load_tiny, perplexity
from lrkit.llm.data import load_ids
from lrkit.nn import compress_model, finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--method", default="whiten")
    parser.add_argument("--allocation", default=None)
    parser.add_argument("--sequential", action="store_true")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--kd", type=float, default=1.0, help="weight of distillation")
    parser.add_argument("--trainable", default="factors")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; {vars(args)}")  # fmt: skip
    warnings.simplefilter("ignore")
    dense, _ = load_tiny()
    held = load_ids("heldout")[: 128 * 1024].long()
    cal = load_ids("calibration").long()
    cal = torch.stack([cal[i * 512 : (i + 1) * 512] for i in range(32)])
    train = load_ids("train").long()
    n = train.numel() // 512
    windows = train[: n * 512].view(n, 512)

    def bpb(model):
        return perplexity(model, held, context=512, stride=256).bits_per_byte

    print(f"dense {bpb(dense):.4f} bits/byte", flush=True)
    small, report = compress_model(
        dense, args.method, param_ratio=args.ratio, calibration=cal.split(4),
        allocation=args.allocation, sequential=args.sequential, progress=False,
    )  # fmt: skip
    print(f"compressed ({report.param_ratio:.3f} of all parameters kept): {bpb(small):.4f}",
          flush=True)  # fmt: skip
    start, evals = time.perf_counter(), [0.0]

    def report_progress(step, model, loss):
        if (step + 1) % args.eval_every and step + 1 != args.steps:
            return
        t = time.perf_counter()
        train_min = (t - start - evals[0]) / 60  # wall time so far, evaluations excluded
        value = bpb(model)
        evals[0] += time.perf_counter() - t
        print(f"step {step + 1:4d}  {train_min:5.1f} min  loss {loss:.4f}  {value:.4f} bits/byte",
              flush=True)  # fmt: skip

    finetune(
        small, lambda s: windows[_rows(s, args.batch, n)], steps=args.steps, lr=args.lr,
        teacher=dense if args.kd > 0 else None, kd_weight=args.kd, trainable=args.trainable,
        callback=report_progress, inplace=True, progress=False,
    )  # fmt: skip


def _rows(step: int, batch: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1_000_003 + step)
    return torch.randint(0, n, (batch,), generator=g)


if __name__ == "__main__":
    main()
