"""Randomized SVD: lrkit.rsvd against the peers a user would pick instead.

Peers: torch.svd_lowrank (same oversampled size l = rank + 10 and the same two power
iterations), scikit-learn's randomized_svd (same l and n_iter, its default normalizer),
scipy.sparse.linalg.svds (ARPACK, iterates to convergence) and the full SVD
(torch.linalg.svd, the exact optimum). For every case and method the table gives

- err/opt: relative Frobenius error divided by the optimal (Eckart–Young) error, the mean
  over 20 seeds for the randomized methods;
- median_s: median wall time over the rounds;
- lrkit/this: lrkit's time divided by this method's, per round of interleaved runs (see
  ``_timing.py``), as the median and [min-max] over the rounds (< 1: lrkit is faster);
- GFLOP/s for the two methods whose passes over A we can count (2 + 2 n_iter products of an
  l x m or l x n block with A: 2 m n l flops each), from the median time.

There is no "% of GEMM peak" column: a reference product of one shape, timed apart from the
algorithm, is not the rate the algorithm's own products run at (they alternate two shapes and
interleave QR or LU steps), so that column read 108% and 136% on one machine. The question it
stood for, "is lrkit's implementation as fast as the same algorithm elsewhere", is answered by
lrkit/this against torch.svd_lowrank, which does the same products.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_rsvd.py [--quick]``.
Time it only when nothing else runs on the machine.
"""

from __future__ import annotations

import statistics
import warnings

import numpy as np
import scipy.sparse.linalg
import torch
from _timing import bench_parser, interleaved_times, print_machine, print_table, ratio
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

    # name -> (function, randomized?); the randomized ones are timed in more rounds
    return {
        "lrkit.rsvd": (lambda: lrkit.rsvd(A, rank, seed=seed), True),
        "torch.svd_lowrank": (svd_lowrank, True),
        "sklearn randomized_svd": (sklearn, True),
        "scipy svds (ARPACK)": (svds, False),
        "full SVD (torch)": (full, False),
    }


def main() -> None:
    parser = bench_parser("lrkit.rsvd against its peers", "one small case (smoke run)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    # Rounds of interleaved runs: the fast randomized methods, and the slow exact ones (each
    # with lrkit in the same rounds, so every ratio compares runs made side by side).
    fast_rounds, slow_rounds = (3, 2) if args.quick else (11, 3)
    rows = []
    for name, A, rank in cases(args.quick):
        m, n = A.shape
        l = rank + OVERSAMPLE
        opt = lrkit.rel_error(A, lrkit.truncated_svd(A, rank)) if not args.quick else None
        fns = methods(A, rank)
        fast = {k: fn for k, (fn, randomized) in fns.items() if randomized}
        slow = {k: fn for k, (fn, randomized) in fns.items() if not randomized}
        times = interleaved_times(fast, rounds=fast_rounds)
        slow_times = interleaved_times(
            {"lrkit.rsvd": fast["lrkit.rsvd"], **slow}, rounds=slow_rounds, warmup=0
        )
        errors = {}
        for method, (fn, randomized) in fns.items():
            if randomized:  # mean error over SEEDS draws
                errors[method] = np.mean(
                    [lrkit.rel_error(A, methods(A, rank, s)[method][0]()) for s in SEEDS]
                )
            else:
                errors[method] = lrkit.rel_error(A, fn())
        opt = opt or min(errors.values())
        for method, err in errors.items():
            group = times if method in fast else slow_times
            ours, theirs = group["lrkit.rsvd"], group[method]
            t = statistics.median(theirs)
            row = {
                "case": name,
                "rank": rank,
                "method": method,
                "err/opt": f"{err / opt:.4f}",
                "median_s": t,
                "lrkit/this": ratio(ours, theirs),
                "lrkit err <=": "yes" if errors["lrkit.rsvd"] <= err * (1 + 1e-4) else "no",
            }
            if method in ("lrkit.rsvd", "torch.svd_lowrank"):
                row["GFLOP/s"] = (2 + 2 * N_ITER) * 2 * m * n * l / t / 1e9
            rows.append(row)
    print_machine(args)
    print(
        f"l = rank + {OVERSAMPLE}, n_iter = {N_ITER}; float32; lrkit/this: median [min-max] over "
        f"{fast_rounds} interleaved rounds ({slow_rounds} for svds and the full SVD)"
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
    ]
    print_table(rows, cols)


if __name__ == "__main__":
    main()
