"""CP and Tucker: lrkit.tensor against TensorLy (numpy and pytorch backends).

Every method gets the same tensor (float32), the same init ("svd"), the same number of
sweeps and ``tol=0`` so all of them do the same amount of work: CP-ALS (``cp_als`` against
``tensorly.decomposition.parafac``) and HOOI started from the HOSVD (``hooi`` against
``tensorly.decomposition.tucker``). The tensors are exactly low-rank plus 10% Gaussian noise.
For every case the table gives

- rel_err: final relative Frobenius error ||T - X|| / ||T||;
- median_s: median wall time over repeats, in one run of this script;
- lrkit/this: lrkit's time divided by this method's time (< 1: lrkit is faster);
- lrkit err <=: whether lrkit's error is at most this method's (to 0.1%).

Target (issue 7): equal or better error, and lrkit/this <= 1.0 against the faster TensorLy
backend in every case. Measured here, never asserted in a test.

Run: ``.venv/bin/python benchmarks/bench_tensor.py [--quick]``.
Time it only when nothing else runs on the machine.
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np
import tensorly as tl
import torch
from _timing import median_time, print_table
from tensorly.decomposition import parafac, tucker

import lrkit
from lrkit.tensor import CPTensor, TuckerTensor, cp_als, hooi

CP_SWEEPS, TUCKER_SWEEPS = 25, 10


def noisy_low_rank(shape, rank: int, seed: int = 0, noise: float = 0.1) -> torch.Tensor:
    """float32 CP tensor of rank ``rank`` (Gaussian factors) plus ``noise`` relative noise."""
    g = torch.Generator().manual_seed(seed)
    T = CPTensor(None, [torch.randn(I, rank, generator=g) for I in shape]).to_dense()
    E = torch.randn(shape, generator=g)
    return (T + noise * T.norm() / E.norm() * E).contiguous()


def cases(quick: bool):
    """(name, kind, tensor, rank or ranks)."""
    if quick:
        T = noisy_low_rank((30, 30, 30), 5)
        yield "30^3", "cp", T, 5
        yield "30^3", "tucker", T, (5, 5, 5)
        return
    T = noisy_low_rank((100, 100, 100), 20)
    yield "100^3", "cp", T, 10
    yield "100^3", "cp", T, 32
    yield "100^3", "tucker", T, (10, 10, 10)
    yield "100^3", "tucker", T, (32, 32, 32)
    T4 = noisy_low_rank((64, 64, 64, 8), 16)
    yield "64^3x8", "cp", T4, 16
    yield "64^3x8", "tucker", T4, (16, 16, 16, 4)


def methods(kind: str, T: torch.Tensor, rank):
    """name -> function returning an lrkit CPTensor / TuckerTensor."""
    T_np = T.numpy()

    def tensorly(backend: str):
        data = T_np if backend == "numpy" else T

        def run():
            tl.set_backend(backend)
            try:
                if kind == "cp":
                    out = parafac(data, rank, init="svd", n_iter_max=CP_SWEEPS, tol=0)
                    return CPTensor.from_tensorly(out)
                out = tucker(data, list(rank), init="svd", n_iter_max=TUCKER_SWEEPS, tol=0)
                return TuckerTensor.from_tensorly(out)
            finally:
                tl.set_backend("numpy")

        return run

    if kind == "cp":
        ours = lambda: cp_als(T, rank, init="svd", n_iter_max=CP_SWEEPS, tol=0, seed=0)  # noqa: E731
    else:
        ours = lambda: hooi(T, rank, init="svd", n_iter_max=TUCKER_SWEEPS, tol=0, seed=0)  # noqa: E731
    return {
        "lrkit": ours,
        "tensorly numpy": tensorly("numpy"),
        "tensorly pytorch": tensorly("pytorch"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="lrkit.tensor against TensorLy")
    parser.add_argument("--quick", action="store_true", help="small cases (smoke run)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    repeat = 1 if args.quick else 3
    rows = []
    for name, kind, T, rank in cases(args.quick):
        results = {}
        for method, fn in methods(kind, T, rank).items():
            err = lrkit.rel_error(T, fn())  # this first run is also the warm-up
            results[method] = (median_time(fn, repeat=repeat, warmup=0), err)
        t_lrkit, err_lrkit = results["lrkit"]
        fastest_tl = min(v[0] for k, v in results.items() if k != "lrkit")
        for method, (t, err) in results.items():
            rows.append(
                {
                    "case": name,
                    "method": f"{'CP' if kind == 'cp' else 'Tucker'} {rank}",
                    "library": method,
                    "rel_err": f"{err:.5f}",
                    "median_s": t,
                    "lrkit/this": t_lrkit / t,
                    "lrkit err <=": "yes" if err_lrkit <= err * (1 + 1e-3) else "no",
                    "target met": (
                        ("yes" if t_lrkit <= fastest_tl else "no") if method == "lrkit" else ""
                    ),
                }
            )
    print(
        f"torch {torch.__version__}, tensorly {tl.__version__}, numpy {np.__version__}, "
        f"threads {torch.get_num_threads()}, cpus {os.cpu_count()}; float32, init='svd', "
        f"tol=0, CP {CP_SWEEPS} sweeps, Tucker (HOOI) {TUCKER_SWEEPS} sweeps"
    )
    cols = ["case", "method", "library", "rel_err", "median_s", "lrkit/this", "lrkit err <=",
            "target met"]  # fmt: skip
    print_table(rows, cols)


if __name__ == "__main__":
    main()
