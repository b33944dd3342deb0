"""Truncated SVD: lrkit.truncated_svd against the exact SVDs a user would call instead.

lrkit.truncated_svd computes a full thin SVD (torch.linalg.svd), keeps the top ``rank``
triplets and fixes signs. This measures what that wrapping costs against calling
numpy.linalg.svd, scipy.linalg.svd (gesdd) or torch.linalg.svd directly and slicing, at
equal (exact) error. Every function runs in interleaved rounds (see ``_timing.py``);
median_s is the median over the rounds, lrkit/this the median [min-max] over the rounds of
lrkit's time divided by the other's in the same round (> 1: lrkit is slower).
Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_svd.py [--quick]``.
Time it only when nothing else runs on the machine.
"""

from __future__ import annotations

import statistics

import numpy as np
import scipy.linalg
import torch
from _timing import bench_parser, interleaved_times, print_machine, print_table, ratio

import lrkit


def peers(A64: np.ndarray, rank: int):
    At = torch.from_numpy(A64)

    def numpy_svd():
        u, s, vh = np.linalg.svd(A64, full_matrices=False)
        return u[:, :rank], s[:rank], vh[:rank]

    def scipy_svd():
        u, s, vh = scipy.linalg.svd(A64, full_matrices=False, lapack_driver="gesdd")
        return u[:, :rank], s[:rank], vh[:rank]

    def torch_svd():
        u, s, vh = torch.linalg.svd(At, full_matrices=False)
        return u[:, :rank], s[:rank], vh[:rank]

    return {
        "lrkit.truncated_svd": lambda: lrkit.truncated_svd(At, rank),
        "numpy.linalg.svd": numpy_svd,
        "scipy.linalg.svd": scipy_svd,
        "torch.linalg.svd": torch_svd,
    }


def main() -> None:
    parser = bench_parser(__doc__.splitlines()[0], "small sizes only (CI smoke run)")
    args = parser.parse_args()
    rounds = 3 if args.quick else 9
    sizes = [(256, 256, 16)] if args.quick else [(512, 512, 32), (1024, 1024, 64), (2000, 500, 50)]
    rng = np.random.default_rng(0)
    rows = []
    for m, n, rank in sizes:
        A = rng.standard_normal((m, n))
        fns = peers(A, rank)
        times = interleaved_times(fns, rounds=rounds)
        for name, fn in fns.items():
            U, S, Vh = (torch.as_tensor(x) for x in fn())
            rows.append(
                {
                    "shape": f"{m}x{n}",
                    "rank": rank,
                    "method": name,
                    "rel_error": lrkit.rel_error(A, (U * S) @ Vh),
                    "median_s": statistics.median(times[name]),
                    "lrkit/this": ratio(times["lrkit.truncated_svd"], times[name]),
                }
            )
    print_machine(args)
    print(f"float64; lrkit/this: median [min-max] over {rounds} interleaved rounds")
    print_table(rows, ["shape", "rank", "method", "rel_error", "median_s", "lrkit/this"])


if __name__ == "__main__":
    main()
