"""Truncated SVD: lrkit.truncated_svd against the exact SVDs a user would call instead.

lrkit.truncated_svd computes a full thin SVD (torch.linalg.svd), keeps the top ``rank``
triplets and fixes signs. This measures what that wrapping costs against calling
numpy.linalg.svd, scipy.linalg.svd (gesdd) or torch.linalg.svd directly and slicing, at
equal (exact) error. Times are medians in one run on this machine; ratios > 1 mean lrkit
is slower. Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_svd.py``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import scipy.linalg
import torch
from _timing import median_time, print_table

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (CI smoke run)")
    args = parser.parse_args()
    sizes = [(256, 256, 16)] if args.quick else [(512, 512, 32), (1024, 1024, 64), (2000, 500, 50)]
    rng = np.random.default_rng(0)
    rows = []
    for m, n, rank in sizes:
        A = rng.standard_normal((m, n))
        fns = peers(A, rank)
        times = {name: median_time(fn, repeat=3) for name, fn in fns.items()}
        for name, fn in fns.items():
            U, S, Vh = (torch.as_tensor(x) for x in fn())
            rows.append(
                {
                    "shape": f"{m}x{n}",
                    "rank": rank,
                    "method": name,
                    "rel_error": lrkit.rel_error(A, (U * S) @ Vh),
                    "median_s": times[name],
                    "lrkit_time / this": times["lrkit.truncated_svd"] / times[name],
                }
            )
    print(
        f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}, "
        f"cpus {os.cpu_count()}"
    )
    print_table(rows, ["shape", "rank", "method", "rel_error", "median_s", "lrkit_time / this"])


if __name__ == "__main__":
    main()
