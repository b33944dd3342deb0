"""Bits per byte of the shipped Llama compressed by each method, at fractions of every
Linear's parameters kept: the table lesson 09 will draw (errors, not times; the compress
time is printed for information only).

Setting: the first 128 kB of the held-out corpus, context 512, stride 256; calibration on 32
windows of 512 tokens from the calibration part (batches of 4). Run:

    .venv/bin/python benchmarks/llm_compression_table.py [--ratios 0.6 0.4] [--allocation whiten]
        [--sequential]

About 25 s per evaluation on 2 cores.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from lrkit.llm import load_tiny, perplexity
from lrkit.llm.data import load_ids
from lrkit.nn import compress_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.8, 0.6, 0.5, 0.4])
    parser.add_argument("--methods", nargs="+", default=["svd", "asvd", "whiten", "fwsvd"])
    parser.add_argument(
        "--allocation", default=None, help="None, 'uniform', 'whiten', 'fisher', 'sensitivity'"
    )
    parser.add_argument("--sequential", action="store_true", help="block by block (asvd, whiten)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # the whitening shift of the first layers is expected
    model, _ = load_tiny()
    held = load_ids("heldout")[: 128 * 1024].long()
    cal = load_ids("calibration").long()
    cal = torch.stack([cal[i * 512 : (i + 1) * 512] for i in range(32)])  # (32, 512)
    dense = perplexity(model, held, context=512, stride=256).bits_per_byte
    print(f"dense: {dense:.4f} bits/byte; allocation={args.allocation}")
    for ratio in args.ratios:
        for method in args.methods:
            data = dict(calibration=cal.split(4)) if method != "svd" or args.allocation else {}
            if args.sequential:
                data["sequential"] = True
            t = time.perf_counter()
            small, report = compress_model(
                model, method, param_ratio=ratio, allocation=args.allocation, progress=False,
                **data,
            )  # fmt: skip
            seconds = time.perf_counter() - t
            bpb = perplexity(small, held, context=512, stride=256).bits_per_byte
            print(
                f"kept {ratio:.2f} of the Linear parameters  {method:6s}  {bpb:.4f} bits/byte  "
                f"(compress {seconds:.1f} s; whole model keeps {report.param_ratio:.3f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
