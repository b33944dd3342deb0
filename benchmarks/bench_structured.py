"""Structured products: Kronecker, Monarch and butterfly against the dense matmul and peers.

For n = 1024 and 4096 and p = 256 right-hand sides, float32, the table gives the median time
of one product ``fact @ X`` (X of shape (n, p)) and its speed-up over the dense ``A @ X``,
both from interleaved rounds (see ``_timing.py``): the speed-up is the median [min-max] over
the rounds of the dense time divided by this one in the same round.

- dense matmul (n^2 parameters);
- low rank, Kronecker (left shape (sqrt n, sqrt n)) and Monarch (nblocks = sqrt n), all three
  with the same parameter count, 2 n^1.5 (rank sqrt(n) for the first two); Kronecker also at
  rank 1 (2 n parameters): r terms cost r times one, so at equal parameters a Kronecker sum
  does as many flops as the dense product (4 p n^2 against 2 p n^2);
- the butterfly (2 n log2 n parameters, the Hadamard twiddles: any others cost the same);
- torch-structured's ``blockdiag_butterfly_multiply`` (the Monarch paper's own multiply) on
  the same factors, where the package installs; it takes X as rows, (p, n);
- the FFT butterfly (complex64) against ``torch.fft.fft`` (speed-up column: over torch.fft);
- ``monarch_project`` of an n x n matrix against one full SVD of it (torch.linalg.svd).

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_structured.py [--quick]``.
Time it only when nothing else runs on the machine.
"""

from __future__ import annotations

import importlib.util
import math
import os
import statistics
import warnings

import torch
from _timing import bench_parser, interleaved_times, print_machine, print_table, ratio

import lrkit
from lrkit.structured import Butterfly, KroneckerSum, Monarch, monarch_project

P = 256  # right-hand sides


def torch_structured_multiply():
    """torch-structured's Monarch multiply, or None and the reason it is missing.

    ``import torch_structured`` needs triton (a GPU compiler), absent on a CPU machine; its
    Monarch multiply itself needs only torch and einops, so we load that one file directly.
    """
    spec = importlib.util.find_spec("torch_structured")
    if spec is None:
        return None, "torch-structured is not installed (pip install torch-structured)"
    try:
        import torch_structured.monarch.blockdiag_butterfly_multiply as mod

        how = "imported"
    except ImportError as err:
        path = os.path.join(spec.submodule_search_locations[0], "monarch")
        file = os.path.join(path, "blockdiag_butterfly_multiply.py")
        try:
            mspec = importlib.util.spec_from_file_location("ts_bbm", file)
            mod = importlib.util.module_from_spec(mspec)
            mspec.loader.exec_module(mod)
        except Exception as err2:  # noqa: BLE001 - any failure means: not available here
            return None, f"torch-structured does not import ({err}; {err2})"
        how = f"`import torch_structured` fails ({err}); its Monarch multiply file loaded directly"
    return mod.blockdiag_butterfly_multiply, how


def products(n: int, rounds: int, ts_multiply) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    b = math.isqrt(n)
    A = torch.randn(n, n, generator=g)
    X = torch.randn(n, P, generator=g)
    Xt = X.T.contiguous()  # (p, n): the row layout torch-structured takes
    facts = {
        f"lrkit LowRank, rank {b}": lrkit.LowRank(
            torch.randn(n, b, generator=g),
            torch.rand(b, generator=g),
            torch.randn(b, n, generator=g),
        ),
        "lrkit KroneckerSum, rank 1": KroneckerSum(
            torch.randn(1, b, b, generator=g), torch.randn(1, b, b, generator=g)
        ),
        f"lrkit KroneckerSum, rank {b}": KroneckerSum(
            torch.randn(b, b, b, generator=g), torch.randn(b, b, b, generator=g)
        ),
        f"lrkit Monarch, nblocks {b}": Monarch(
            torch.randn(b, b, b, generator=g), torch.randn(b, b, b, generator=g)
        ),
        "lrkit Butterfly (Hadamard)": Butterfly.hadamard(n),
    }
    monarch = facts[f"lrkit Monarch, nblocks {b}"]
    fns = {"dense A @ X": lambda: A @ X}
    fns.update({name: (lambda f=fact: f @ X) for name, fact in facts.items()})
    ts_name = "torch-structured blockdiag_butterfly_multiply"
    if ts_multiply is not None:
        L, R = monarch.L, monarch.R
        torch.testing.assert_close(ts_multiply(Xt, R, L), (monarch @ X).T)  # same matrix
        fns[ts_name] = lambda: ts_multiply(Xt, R, L)
    times = interleaved_times(fns, rounds=rounds)
    dense = times["dense A @ X"]
    params = {name: fact.num_params for name, fact in facts.items()}
    params.update({"dense A @ X": n * n, ts_name: monarch.num_params})
    rows = []
    for name, t in times.items():
        row = {
            "n": n,
            "method": name,
            "params": params[name],
            "ms": 1e3 * statistics.median(t),
            "speed-up": ratio(dense, t),
        }
        if name == ts_name:
            mon = times[f"lrkit Monarch, nblocks {b}"]
            row["note"] = f"lrkit Monarch / this: {ratio(mon, t)}"
        rows.append(row)
    F = Butterfly.fft(n)
    Xc = X.to(torch.complex64)
    fft = interleaved_times(
        {"fft": lambda: torch.fft.fft(Xc, dim=0), "butterfly": lambda: F @ Xc}, rounds=rounds
    )
    note = "speed-up column: over torch.fft.fft"
    rows.append(
        {
            "n": n,
            "method": "torch.fft.fft (complex64)",
            "ms": 1e3 * statistics.median(fft["fft"]),
            "note": note,
        }
    )
    rows.append(
        {
            "n": n,
            "method": "lrkit Butterfly.fft (complex64)",
            "params": F.num_params,
            "ms": 1e3 * statistics.median(fft["butterfly"]),
            "speed-up": ratio(fft["fft"], fft["butterfly"]),
            "note": note,
        }
    )
    return rows


def projection(n: int, rounds: int) -> list[dict]:
    A = torch.randn(n, n, generator=torch.Generator().manual_seed(1))
    times = interleaved_times(
        {
            "svd": lambda: torch.linalg.svd(A, full_matrices=False),
            "project": lambda: monarch_project(A, math.isqrt(n)),
        },
        rounds=rounds,
        warmup=0,
    )
    note = "speed-up column: over the full SVD"
    return [
        {
            "n": n,
            "method": "full SVD (torch.linalg.svd)",
            "ms": 1e3 * statistics.median(times["svd"]),
            "note": note,
        },
        {
            "n": n,
            "method": f"lrkit monarch_project, nblocks {math.isqrt(n)}",
            "ms": 1e3 * statistics.median(times["project"]),
            "speed-up": ratio(times["svd"], times["project"]),
            "note": note,
        },
    ]


def main() -> None:
    parser = bench_parser("structured products against dense and peers", "n = 256 only (smoke run)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # torch-structured's deprecation and CUDA notices
    sizes, rounds, svd_rounds = ([256], 3, 2) if args.quick else ([1024, 4096], 11, 3)
    ts_multiply, ts_status = torch_structured_multiply()
    rows = []
    for n in sizes:
        rows += products(n, rounds, ts_multiply)
        rows += projection(n, svd_rounds)
    print_machine(args)
    print(
        f"float32, p = {P} right-hand sides; speed-up: median [min-max] over {rounds} "
        f"interleaved rounds ({svd_rounds} for the SVD and the projection)"
    )
    print(f"torch-structured: {ts_status}")
    print_table(rows, ["n", "method", "params", "ms", "speed-up", "note"])


if __name__ == "__main__":
    main()
