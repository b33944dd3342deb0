"""CUR: how close each column/row rule comes to the SVD optimum (errors, not times).

The data behind ``lrkit.cur``'s default (DEIM, 2k columns and rows; see its module docstring):
noisy rank-r matrices ``Q1 Q2^T diag(s) + noise`` (Haar-random orthonormal Q1, Q2; flat or
0.8^i spectrum; Gaussian noise of 1%, 10% or 50% of the signal's Frobenius norm) in four shapes,
r = 5, 12, 30, three seeds: 216 matrices. For each rule the table gives
``||A - CUR||_F / ||A - A_k||_F`` at k = r, the median [min-max] over the matrices and the
90th percentile: < 2 means within twice the best rank-k error. Rules with k columns and rows
give a CUR of rank k; with 2k, of rank up to 2k, stored in about twice the space.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_cur.py [--quick]``. Deterministic
(seeded); it times nothing, so it may run on a busy machine.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from _timing import bench_parser, print_machine, print_table

import lrkit

RULES = {  # name -> cur keywords; "over" multiplies k for n_cols and n_rows
    "leverage, k (old default)": dict(method="leverage", over=1),
    "leverage top-k scores, k": dict(method="leverage", sampling="topk", over=1),
    "deim, k": dict(method="deim", over=1),
    "qr, k": dict(method="qr", over=1),
    "leverage, 2k": dict(method="leverage", over=2),
    "deim, 1.5k": dict(method="deim", over=1.5),
    "deim, 2k (default)": dict(method="deim", over=2),
    "qr, 2k": dict(method="qr", over=2),
}


def noisy_low_rank(m: int, n: int, rank: int, noise: float, spectrum: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    Q1 = torch.linalg.qr(torch.randn(m, rank, generator=g, dtype=torch.float64))[0]
    Q2 = torch.linalg.qr(torch.randn(n, rank, generator=g, dtype=torch.float64))[0]
    s = torch.ones(rank, dtype=torch.float64)
    if spectrum == "decay":
        s = 0.8 ** torch.arange(rank, dtype=torch.float64)
    L, N = (Q1 * s) @ Q2.T, torch.randn(m, n, generator=g, dtype=torch.float64)
    return L + noise * N * (torch.linalg.matrix_norm(L) / torch.linalg.matrix_norm(N))


def main() -> None:
    parser = bench_parser("CUR rules against the SVD optimum", "a 12-matrix subset (smoke run)")
    args = parser.parse_args()
    if args.quick:
        shapes, ranks, noises, spectra, seeds = [(200, 200)], [5, 12], [0.01, 0.5], ["flat"], [0]
        shapes += [(300, 150)]
    else:
        shapes = [(500, 300), (300, 500), (1000, 200), (200, 200)]
        ranks, noises, spectra, seeds = [5, 12, 30], [0.01, 0.1, 0.5], ["flat", "decay"], [0, 1, 2]
    ratios: dict[str, list[float]] = {name: [] for name in RULES}
    grid = list(itertools.product(shapes, ranks, noises, spectra, seeds))
    for (m, n), r, noise, spectrum, seed in grid:
        A = noisy_low_rank(m, n, r, noise, spectrum, seed)
        S = torch.linalg.svdvals(A)
        best = float(torch.linalg.vector_norm(S[r:]) / torch.linalg.vector_norm(S))
        svd = lrkit.truncated_svd(A, 2 * r)  # one SVD for every rule
        for name, kw in RULES.items():
            kw = dict(kw)
            count = int(round(kw.pop("over") * r))
            fact = lrkit.cur(A, r, n_cols=count, n_rows=count, svd=svd, seed=seed, **kw)
            ratios[name].append(lrkit.rel_error(A, fact) / best)
    rows = []
    for name, v in ratios.items():
        v = np.array(v)
        rows.append(
            {
                "rule (lrkit.cur)": name,
                "err/opt: median [min-max]": f"{np.median(v):.2f} [{v.min():.2f}-{v.max():.2f}]",
                "90th pct": f"{np.quantile(v, 0.9):.2f}",
                "within 2x": f"{np.mean(v < 2):.0%}",
            }
        )
    print_machine(args)
    print(
        f"{len(grid)} noisy low-rank float64 matrices: shapes {shapes}, r = {ranks}, noise "
        f"{noises}, spectra {spectra}, seeds {seeds}; err/opt = ||A - CUR||_F / ||A - A_r||_F"
    )
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
