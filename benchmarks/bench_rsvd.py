"""Randomized SVD: lrkit.rsvd against the peers a user would pick instead.

Peers: torch.svd_lowrank (same oversampled size l = rank + 10 and the same two power
iterations), scikit-learn's randomized_svd (same l and n_iter, its default normalizer),
scipy.sparse.linalg.svds (ARPACK, iterates to convergence) and the full SVD
(torch.linalg.svd, the exact optimum). For every case and method the table gives

- err/opt: relative Frobenius error divided by the optimal (Eckart–Young) error, the mean
  over 20 seeds for the randomized methods;
- median_s: median wall time over repeats, in one run of this script;
- lrkit/this: lrkit's time divided by this method's time (< 1: lrkit is faster);
- GFLOP/s and %GEMM for the two methods whose passes over A we can count
  (2 + 2 n_iter products of an l x m or l x n block with A: 2 m n l flops each), against
  the rate of one such product measured in the same run.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_rsvd.py [--quick]``.
Time it only when nothing else runs on the machine.
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np
import scipy.sparse.linalg
import torch
from _timing import median_time, print_table
from sklearn.utils.extmath import randomized_svd

import lrkit

OVERSAMPLE, N_ITER = 10, 2
SEEDS = range(20)


def with_spectrum(m: int, n: int, S: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """float32 m x n matrix U diag(S) V^T with Haar-random orthonormal U, V."""
    return lrkit.matrix_with_spectrum(m, n, S, seed=seed, dtype=torch.float32).contiguous()


def cases(quick: bool):
    if quick:
        yield "512^2 1/i", with_spectrum(512, 512, 1 / torch.arange(1, 513.0)), 32
        return
    yield "4096^2 1/i", with_spectrum(4096, 4096, 1 / torch.arange(1, 4097.0)), 128
    yield "2000^2 exp", with_spectrum(2000, 2000, 0.9 ** torch.arange(2000.0)), 32
    yield "8192x1024 1/i", with_spectrum(8192, 1024, 1 / torch.arange(1, 1025.0)), 64
    from skimage import data

    yield "photo 512^2", torch.from_numpy(data.camera().astype(np.float32)), 32


def methods(A: torch.Tensor, rank: int, seed: int = 0):
    l = rank + OVERSAMPLE
    A_np = A.numpy()

    def to_lowrank(U, S, Vh):
        return lrkit.LowRank(torch.as_tensor(U), torch.as_tensor(S), torch.as_tensor(Vh))

    def svd_lowrank():
        torch.manual_seed(seed)  # svd_lowrank draws from the global generator
        U, S, V = torch.svd_lowrank(A, q=l, niter=N_ITER)
        return to_lowrank(U[:, :rank], S[:rank], V[:, :rank].T)

    def sklearn():
        U, S, Vh = randomized_svd(
            A_np, rank, n_oversamples=OVERSAMPLE, n_iter=N_ITER, random_state=seed
        )
        return to_lowrank(U, S, Vh)

    def svds():
        U, S, Vh = scipy.sparse.linalg.svds(A_np, k=rank, random_state=0)
        order = np.argsort(S)[::-1]
        return to_lowrank(U[:, order].copy(), S[order].copy(), Vh[order].copy())

    def full():
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        return to_lowrank(U[:, :rank], S[:rank], Vh[:rank])

    # name -> (function, repeats)
    return {
        "lrkit.rsvd": (lambda: lrkit.rsvd(A, rank, seed=seed), 7),
        "torch.svd_lowrank": (svd_lowrank, 7),
        "sklearn randomized_svd": (sklearn, 5),
        "scipy svds (ARPACK)": (svds, 1),
        "full SVD (torch)": (full, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="lrkit.rsvd against its peers")
    parser.add_argument("--quick", action="store_true", help="one small case (smoke run)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for name, A, rank in cases(args.quick):
        m, n = A.shape
        l = rank + OVERSAMPLE
        block = torch.randn(l, m)
        gemm_s = median_time(lambda: block @ A, repeat=7)  # noqa: B023
        gemm_rate = 2 * m * n * l / gemm_s / 1e9
        opt = lrkit.rel_error(A, lrkit.truncated_svd(A, rank)) if not args.quick else None
        results = {}
        for method, (fn, repeat) in methods(A, rank).items():
            t = median_time(fn, repeat=repeat, warmup=1 if repeat > 1 else 0)
            if repeat > 1:  # randomized: mean error over SEEDS draws
                err = np.mean([lrkit.rel_error(A, methods(A, rank, s)[method][0]()) for s in SEEDS])
            else:
                err = lrkit.rel_error(A, fn())
            results[method] = (t, err)
        opt = opt or min(err for _, err in results.values())
        t_lrkit, err_lrkit = results["lrkit.rsvd"]
        for method, (t, err) in results.items():
            row = {
                "case": name,
                "rank": rank,
                "method": method,
                "err/opt": f"{err / opt:.4f}",
                "median_s": t,
                "lrkit/this": t_lrkit / t,
                "lrkit err <=": "yes" if err_lrkit <= err * (1 + 1e-4) else "no",
            }
            if method in ("lrkit.rsvd", "torch.svd_lowrank"):
                gflops = (2 + 2 * N_ITER) * 2 * m * n * l / t / 1e9
                row["GFLOP/s"] = gflops
                row["%GEMM"] = 100 * gflops / gemm_rate
            rows.append(row)
        rows.append({"case": name, "method": f"(one l x m @ A product: {gemm_rate:.0f} GFLOP/s)"})
    print(
        f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}, "
        f"cpus {os.cpu_count()}; l = rank + {OVERSAMPLE}, n_iter = {N_ITER}"
    )
    cols = [
        "case",
        "rank",
        "method",
        "err/opt",
        "median_s",
        "lrkit/this",
        "lrkit err <=",
        "GFLOP/s",
        "%GEMM",
    ]
    print_table(rows, cols)


if __name__ == "__main__":
    main()
