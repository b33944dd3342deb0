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
TensorLy backend in every case. Measured here, never asserted in a test.

A second table (counts, not times) calls each library with its *default* stopping rule
(lrkit: ``lrkit.tensor._stop``; TensorLy: ``tucker`` tol 1e-4 and ``parafac`` tol 1e-8 on the
absolute change of the error) on noisy float64 tensors, and gives the sweeps each ran and the
error it reached, beside the error of a long run (``tol=0``) as the reference.

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


def tucker_signal(shape, ranks, seed: int) -> torch.Tensor:
    """float64 Tucker tensor with a Gaussian core and orthonormal factors."""
    g = torch.Generator().manual_seed(seed)
    core = torch.randn(ranks, generator=g, dtype=torch.float64)
    factors = [
        torch.linalg.qr(torch.randn(I, r, generator=g, dtype=torch.float64))[0]
        for I, r in zip(shape, ranks, strict=True)
    ]
    return TuckerTensor(core, factors).to_dense()


def with_noise(T: torch.Tensor, level: float, seed: int) -> torch.Tensor:
    E = torch.randn(T.shape, generator=torch.Generator().manual_seed(seed + 100), dtype=T.dtype)
    return T + level * T.norm() / E.norm() * E


def default_stop_cases(quick: bool):
    """(name, kind, tensor, rank or ranks, sweeps of the long reference run)."""
    T = with_noise(tucker_signal((30, 40, 50), (8, 6, 4), 3), 0.5, 3)
    yield "30x40x50 Tucker-(8,6,4) +50%", "tucker", T, (11, 9, 7), 200
    if not quick:
        T = with_noise(tucker_signal((60, 70, 80), (12, 12, 12), 0), 0.1, 0)
        yield "60x70x80 Tucker-12 +10%", "tucker", T, (12, 12, 12), 200
        yield "60x70x80 Tucker-12 +10%", "tucker", T, (15, 15, 15), 200
    T = with_noise(noisy_low_rank((20, 18, 16), 5, seed=2, noise=0).double(), 0.3, 2)
    yield "20x18x16 CP-5 +30%", "cp", T, 7, 1000
    if not quick:
        T = with_noise(noisy_low_rank((30, 40, 50), 5, seed=0, noise=0).double(), 0.1, 0)
        yield "30x40x50 CP-5 +10%", "cp", T, 10, 1000


def default_stops(quick: bool) -> list[dict]:
    tl.set_backend("numpy")
    rows = []
    for name, kind, T, rank, long in default_stop_cases(quick):
        T_np = T.numpy()
        if kind == "cp":
            ours = cp_als(T, rank, seed=0)
            ref = cp_als(T, rank, n_iter_max=long, tol=0, seed=0)
            out, errs = parafac(T_np, rank, init="svd", return_errors=True)
            theirs = CPTensor.from_tensorly(out)
        else:
            ours = hooi(T, rank, seed=0)
            ref = hooi(T, rank, n_iter_max=long, tol=0, seed=0)
            out, errs = tucker(T_np, list(rank), init="svd", return_errors=True)
            theirs = TuckerTensor.from_tensorly(out)
        e_ref = lrkit.rel_error(T, ref)
        for library, fact, sweeps in (
            ("lrkit", ours, ours.n_iter),
            ("tensorly", theirs, len(errs)),
        ):
            err = lrkit.rel_error(T, fact)
            rows.append(
                {
                    "case": name,
                    "fit": f"{'CP' if kind == 'cp' else 'Tucker'} {rank}",
                    "library (defaults)": library,
                    "sweeps": sweeps,
                    "rel_err": f"{err:.6f}",
                    "long run": f"{long} sweeps",
                    "err / long run's - 1": f"{err / e_ref - 1:.1e}",
                }
            )
    return rows


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
    print("\nEach library's default stopping rule (float64; counts, not times):")
    rows = default_stops(args.quick)
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
