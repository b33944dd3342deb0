"""Structured products: Kronecker, Monarch and butterfly against the dense matmul and peers.

For n = 1024 and 4096 and p = 256 right-hand sides, float32, the table gives the median time
of one product ``fact @ X`` (X of shape (n, p)) and its speed-up over the dense ``A @ X``:

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

import argparse
import importlib.util
import math
import os
import warnings

import torch
from _timing import median_time, print_table

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


def products(n: int, repeat: int, ts_multiply) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    b = math.isqrt(n)
    A = torch.randn(n, n, generator=g)
    X = torch.randn(n, P, generator=g)
    Xt = X.T.contiguous()  # (p, n): the row layout torch-structured takes
    dense = median_time(lambda: A @ X, repeat=repeat)
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
    rows = [{"n": n, "method": "dense A @ X", "params": n * n, "ms": 1e3 * dense, "speed-up": 1.0}]
    for name, fact in facts.items():
        t = median_time(lambda f=fact: f @ X, repeat=repeat)
        rows.append(
            {
                "n": n,
                "method": name,
                "params": fact.num_params,
                "ms": 1e3 * t,
                "speed-up": dense / t,
            }
        )
        if name.startswith("lrkit Monarch"):
            monarch_ms = 1e3 * t
            if ts_multiply is not None:
                L, R = fact.L, fact.R
                torch.testing.assert_close(ts_multiply(Xt, R, L), (fact @ X).T)  # same matrix
                t_ts = median_time(lambda L=L, R=R: ts_multiply(Xt, R, L), repeat=repeat)
                rows.append(
                    {
                        "n": n,
                        "method": "torch-structured blockdiag_butterfly_multiply",
                        "params": fact.num_params,
                        "ms": 1e3 * t_ts,
                        "speed-up": dense / t_ts,
                        "note": f"lrkit Monarch / this: {monarch_ms / (1e3 * t_ts):.2f}",
                    }
                )
    F = Butterfly.fft(n)
    Xc = X.to(torch.complex64)
    t_fft = median_time(lambda: torch.fft.fft(Xc, dim=0), repeat=repeat)
    t_bfft = median_time(lambda: F @ Xc, repeat=repeat)
    note = "speed-up column: over torch.fft.fft"
    rows.append({"n": n, "method": "torch.fft.fft (complex64)", "ms": 1e3 * t_fft, "note": note})
    rows.append(
        {
            "n": n,
            "method": "lrkit Butterfly.fft (complex64)",
            "params": F.num_params,
            "ms": 1e3 * t_bfft,
            "speed-up": t_fft / t_bfft,
            "note": note,
        }
    )
    return rows


def projection(n: int) -> list[dict]:
    A = torch.randn(n, n, generator=torch.Generator().manual_seed(1))
    t_svd = median_time(lambda: torch.linalg.svd(A, full_matrices=False), repeat=1, warmup=0)
    t_proj = median_time(lambda: monarch_project(A, math.isqrt(n)), repeat=1, warmup=0)
    note = "speed-up column: over the full SVD"
    return [
        {"n": n, "method": "full SVD (torch.linalg.svd)", "ms": 1e3 * t_svd, "note": note},
        {
            "n": n,
            "method": f"lrkit monarch_project, nblocks {math.isqrt(n)}",
            "ms": 1e3 * t_proj,
            "speed-up": t_svd / t_proj,
            "note": note,
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="structured products against dense and peers")
    parser.add_argument("--quick", action="store_true", help="n = 256 only (smoke run)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # torch-structured's deprecation and CUDA notices
    sizes, repeat = ([256], 3) if args.quick else ([1024, 4096], 7)
    ts_multiply, ts_status = torch_structured_multiply()
    rows = []
    for n in sizes:
        rows += products(n, repeat, ts_multiply)
        rows += projection(n)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}; "
        f"float32, p = {P} right-hand sides; median of {repeat} runs (SVD and projection: 1)"
    )
    print(f"torch-structured: {ts_status}")
    print_table(rows, ["n", "method", "params", "ms", "speed-up", "note"])


if __name__ == "__main__":
    main()
