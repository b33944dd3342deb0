"""CP and Tucker: lrkit.tensor against TensorLy (numpy and pytorch backends).

Every method gets the same tensor (float32), the same init ("svd"), the same number of
sweeps and ``tol=0`` so all of them do the same amount of work: CP-ALS (``cp_als`` against
``tensorly.decomposition.parafac``) and HOOI started from the HOSVD (``hooi`` against
``tensorly.decomposition.tucker``). The tensors are exactly low-rank plus 10% Gaussian noise.
For every case the table gives

- rel_err: final relative Frobenius error ||T - X|| / ||T||;
- median_s: median wall time over the rounds of interleaved runs (see ``_timing.py``);
- lrkit/this: lrkit's time divided by this method's in the same round, median [min-max]
  over the rounds (< 1: lrkit is faster);
- lrkit err <=: whether lrkit's error is at most this method's (to 0.1%).

Target (issue 7): equal or better error, and a median lrkit/this <= 1.0 against the faster
TensorLy backend in every case. Measured here, never asserted in a test. The library
defaults stop earlier (see ``lrkit.tensor._stop``); this compares equal work per sweep.

Run: ``.venv/bin/python benchmarks/bench_tensor.py [--quick]``.
Time it only when nothing else runs on the machine.
"""

from __future__ import annotations

import statistics
import warnings

import tensorly as tl
import torch
from _timing import bench_parser, interleaved_times, print_machine, print_table, ratio
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
    parser = bench_parser("lrkit.tensor against TensorLy", "small cases (smoke run)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rounds = 2 if args.quick else 5
    rows = []
    for name, kind, T, rank in cases(args.quick):
        fns = methods(kind, T, rank)
        errors = {method: lrkit.rel_error(T, fn()) for method, fn in fns.items()}  # + warm-up
        times = interleaved_times(fns, rounds=rounds, warmup=0)
        median = {method: statistics.median(t) for method, t in times.items()}
        fastest_tl = min(v for k, v in median.items() if k != "lrkit")
        for method, err in errors.items():
            rows.append(
                {
                    "case": name,
                    "method": f"{'CP' if kind == 'cp' else 'Tucker'} {rank}",
                    "library": method,
                    "rel_err": f"{err:.5f}",
                    "median_s": median[method],
                    "lrkit/this": ratio(times["lrkit"], times[method]),
                    "lrkit err <=": "yes" if errors["lrkit"] <= err * (1 + 1e-3) else "no",
                    "target met": (
                        ("yes" if median["lrkit"] <= fastest_tl else "no")
                        if method == "lrkit"
                        else ""
                    ),
                }
            )
    print_machine(args)
    print(
        f"tensorly {tl.__version__}; float32, init='svd', tol=0, CP {CP_SWEEPS} sweeps, "
        f"Tucker (HOOI) {TUCKER_SWEEPS} sweeps; lrkit/this: median [min-max] over {rounds} "
        f"interleaved rounds"
    )
    cols = ["case", "method", "library", "rel_err", "median_s", "lrkit/this", "lrkit err <=",
            "target met"]  # fmt: skip
    print_table(rows, cols)


if __name__ == "__main__":
    main()
