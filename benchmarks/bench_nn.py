"""Factorized layers against ``nn.Linear``: forward and forward+backward latency.

For square layers of width n = 256, 1024 and 4096, a batch of 1 token and of 512 tokens,
float32 and 2 threads (``--threads``), the tables give:

- **low rank**: ``FactorizedLinear.low_rank(n, n, rank)`` (``y = ((x Vh^T) S) U^T + b``) at
  ranks 1/16, 1/8, 1/4, 1/2, 3/4 and 1 times the break-even rank r* = mn/(m+n) = n/2, where
  its parameters and flops equal the dense layer's. Beside it the raw reference, two plain
  matmuls ``x @ Vh.T @ U.T`` against ``x @ W.T``, so the layer's own overhead (Python, the
  scaling by S, the bias) is visible in microseconds per call;
- **TensorLy-Torch** (the peer, where ``tensorly-torch`` is installed): its
  ``tltorch.FactorizedLinear`` with a rank-r CP factorization of the (out, in) weight, which
  is the same model ``U diag(w) V^T + b`` with exactly the same parameter count, contracted in
  factorized form (its default ``implementation="factorized"``). That contraction is one
  ``torch.einsum`` over four operands: install ``opt-einsum`` for a fair peer, since without
  it torch goes left to right through a (tokens, n, rank, n) tensor (such points are skipped);
- **Monarch**: ``FactorizedLinear.monarch(n, n, nblocks)`` for nblocks 4, 16 and sqrt(n).

Every comparison is measured in one run, interleaved: each round times every candidate in
turn (A, B, C, then C, B, A, ...), and a ratio is taken per round; the tables give its median
and [min-max] over the rounds, so a loaded machine shows up as a wide spread. "speedup" is
dense time / factorized time (> 1: the factorized layer is faster); "vs tltorch" is tltorch
time / lrkit time (> 1: lrkit is faster). Forward runs under ``torch.no_grad()``;
forward+backward computes the gradients of the input and of every parameter.

At the end: the measured latency break-even rank per width and batch (the rank up to which
the low-rank layer beats the dense one, interpolated between measured ranks) next to r*.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_nn.py [--quick] [--threads 2]``
(``make bench`` runs every benchmark). Time it only when nothing else runs on the machine.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable

import torch
from _timing import (
    bench_parser,
    fmt_ratio,
    interleaved_samples,
    print_machine,
    print_table,
    ratio_stats,
)
from torch import nn

import lrkit
from lrkit.nn import FactorizedLinear

FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 1)  # of the break-even rank mn/(m+n)
NAIVE_EINSUM_LIMIT = 64 * 2**20  # bytes: the peer's largest intermediate without opt_einsum


# -- the machine -----------------------------------------------------------------------------
def versions(peer_version: str | None) -> str:
    """What _timing's machine paragraph leaves out: lrkit, the peer, and the load average."""
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"lrkit {lrkit.__version__}, tensorly-torch {peer_version or 'not installed'}; "
        f"load average {load} (1/5/15 min)"
    )


def tltorch_or_reason():
    """The tltorch module, or None and why it is missing."""
    try:
        import tltorch
    except ImportError as err:
        return None, f"tensorly-torch is not installed (pip install tensorly-torch): {err}"
    return tltorch, None


def peer_skipped(tokens: int, n: int, rank: int) -> str | None:
    """Why the peer cannot run at this point, or None.

    tltorch contracts x with its CP factors in one ``torch.einsum("bc,a,da,ca->bd", ...)``.
    Without the opt_einsum package torch contracts left to right and builds a
    (tokens, n, rank, n) intermediate (4 GB at n = 256, 512 tokens, rank 32); with it, torch
    finds the two thin products. Points whose intermediate would pass the limit are skipped.
    """
    if torch.backends.opt_einsum.is_available():
        return None
    nbytes = 4 * tokens * n * rank * n
    if nbytes <= NAIVE_EINSUM_LIMIT:
        return None
    return f"{nbytes / 2**30:.2g} GB intermediate"


# -- interleaved timing ----------------------------------------------------------------------
def interleaved(fns: dict[str, Callable[[], object]], rounds: int, target: float) -> dict:
    return interleaved_samples(fns, rounds=rounds, target=target)


def ratio(times: dict, num: str, den: str) -> tuple[float, float, float]:
    """Median, min and max over the rounds of times[num] / times[den], each round's own."""
    return ratio_stats(times[num], times[den])


fmt = fmt_ratio


def us(times: dict, key: str) -> float | int:
    """Median microseconds per call: one decimal below 100, whole numbers above."""
    v = statistics.median(times[key]) * 1e6
    return round(v, 1) if v < 100 else round(v)


def forward(layer: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    return lambda: layer(x)  # called under torch.no_grad()


def train_step(layer: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """Forward and backward: gradients of the input and of every parameter, fresh each call."""
    x = x.detach().clone().requires_grad_(True)
    params = list(layer.parameters())
    out = int(layer.out_features)  # tltorch stores a numpy integer
    g = torch.randn(*x.shape[:-1], out, generator=torch.Generator().manual_seed(1))

    def step():
        x.grad = None
        for p in params:
            p.grad = None
        layer(x).backward(g)

    return step


# -- low rank, the raw matmuls and the peer ----------------------------------------------------
def low_rank_point(n, tokens, rank, dense, tltorch, args) -> dict:
    x = torch.randn(tokens, n, generator=torch.Generator().manual_seed(0))
    ours = FactorizedLinear.low_rank(n, n, rank, seed=0)
    U, Vh, W = ours.U.detach(), ours.Vh.detach(), dense.weight.detach()
    fwd = {
        "dense": forward(dense, x),
        "lrkit": forward(ours, x),
        "raw dense": lambda: x @ W.T,
        "raw 2 matmuls": lambda: x @ Vh.T @ U.T,
    }
    step = {"dense": train_step(dense, x), "lrkit": train_step(ours, x)}
    peer = None
    skip = "" if tltorch is None else peer_skipped(tokens, n, rank)
    if tltorch is not None and skip is None:
        # rank-r CP of the (out, in) weight: U diag(w) V^T, r (m + n + 1) numbers like lrkit's
        peer = tltorch.FactorizedLinear((n,), (n,), bias=True, factorization="cp", rank=rank)
        n_peer = sum(p.numel() for p in peer.parameters())
        if n_peer != ours.num_params:
            raise RuntimeError(
                f"parameter counts differ: tltorch {n_peer}, lrkit {ours.num_params}"
            )
        fwd["tltorch"], step["tltorch"] = forward(peer, x), train_step(peer, x)
    with torch.no_grad():
        tf = interleaved(fwd, args.rounds, args.sample)
    tb = interleaved(step, args.rounds, args.sample)
    fwd_speedup, bwd_speedup = ratio(tf, "dense", "lrkit"), ratio(tb, "dense", "lrkit")
    raw_speedup = ratio(tf, "raw dense", "raw 2 matmuls")
    row = {
        "n": n,
        "tokens": tokens,
        "rank": rank,
        "r/r*": f"{rank / (n / 2):.3g}",
        "params": f"{ours.num_params / (n * n + n):.3f}",
        "dense fwd us": us(tf, "dense"),
        "lrkit fwd us": us(tf, "lrkit"),
        "fwd speedup": fmt(fwd_speedup),
        "raw speedup": fmt(raw_speedup),
        "overhead us": round(
            statistics.median(
                (a - b) * 1e6 for a, b in zip(tf["lrkit"], tf["raw 2 matmuls"], strict=True)
            ),
            1,
        ),
        "fwd+bwd speedup": fmt(bwd_speedup),
        "_fwd": fwd_speedup[0],  # medians, for the break-even and the targets
        "_bwd": bwd_speedup[0],
        "_raw": raw_speedup[0],
    }
    if peer is not None:
        vs_fwd, vs_bwd = ratio(tf, "tltorch", "lrkit"), ratio(tb, "tltorch", "lrkit")
        row["fwd vs tltorch"], row["fwd+bwd vs tltorch"] = fmt(vs_fwd), fmt(vs_bwd)
        row["_peer"] = min(vs_fwd[0], vs_bwd[0])
    elif skip:
        row["fwd vs tltorch"] = f"skipped: {skip}"
    return row


def monarch_point(n, tokens, nblocks, dense, args) -> dict:
    x = torch.randn(tokens, n, generator=torch.Generator().manual_seed(0))
    ours = FactorizedLinear.monarch(n, n, nblocks, seed=0)
    with torch.no_grad():
        tf = interleaved(
            {"dense": forward(dense, x), "lrkit": forward(ours, x)}, args.rounds, args.sample
        )
    tb = interleaved(
        {"dense": train_step(dense, x), "lrkit": train_step(ours, x)}, args.rounds, args.sample
    )
    return {
        "n": n,
        "tokens": tokens,
        "nblocks": nblocks,
        "params": f"{ours.num_params / (n * n + n):.3f}",
        "dense fwd us": us(tf, "dense"),
        "monarch fwd us": us(tf, "lrkit"),
        "fwd speedup": fmt(ratio(tf, "dense", "lrkit")),
        "fwd+bwd speedup": fmt(ratio(tb, "dense", "lrkit")),
    }


def break_even(ranks: list[int], speedups: list[float]) -> str:
    """The rank where the speedup crosses 1, interpolated in log(speedup) between the two
    measured ranks around the first crossing; or which side of the measured range it lies."""
    if speedups[0] < 1:
        return f"< {ranks[0]} (slower at every rank)"
    for i in range(1, len(ranks)):
        s0, s1 = speedups[i - 1], speedups[i]
        if s1 < 1 <= s0:
            t = math.log(s0) / (math.log(s0) - math.log(s1))  # where log(speedup) = 0
            return f"{ranks[i - 1] + t * (ranks[i] - ranks[i - 1]):.0f}"
    return f"> {ranks[-1]} (faster at every rank)"


def main() -> None:
    parser = bench_parser(
        "lrkit.nn factorized layers against nn.Linear", "a tiny subset (smoke run)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--widths", type=int, nargs="+", default=None, help="layer widths")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:  # a smoke run: one tiny width, a few rounds of short samples
        widths, batches, fractions, blocks = [64], (1, 16), (1 / 4, 1), {4, 8}
        args.rounds, args.sample = args.rounds or 3, 2e-4
    else:
        widths, batches, fractions, blocks = [256, 1024, 4096], (1, 512), FRACTIONS, {4, 16}
        args.rounds, args.sample = args.rounds or 9, 5e-3
    widths = args.widths or widths
    tltorch, why = tltorch_or_reason()
    print_machine(args)
    print(versions(tltorch.__version__ if tltorch else None))
    print(f"float32; {args.rounds} interleaved rounds of ~{args.sample * 1e3:g} ms per candidate")
    print("speedup = the other's time / lrkit's, median [min-max] over the interleaved rounds")
    if tltorch is None:
        print(f"TensorLy-Torch peer skipped: {why}")
    elif not torch.backends.opt_einsum.is_available():
        print(
            "opt_einsum is not installed: TensorLy-Torch's CP contraction takes torch.einsum's "
            "left-to-right path, slow and memory-hungry; points where it would need more than "
            f"{NAIVE_EINSUM_LIMIT / 2**20:g} MB are skipped (pip install opt-einsum: a fair peer)"
        )

    rows, mrows = [], []
    for n in widths:
        torch.manual_seed(0)
        dense = nn.Linear(n, n)
        ranks = sorted({max(1, round(f * n / 2)) for f in fractions})
        for tokens in batches:
            rows += [low_rank_point(n, tokens, r, dense, tltorch, args) for r in ranks]
            for b in sorted(blocks | ({math.isqrt(n)} if not args.quick else set())):
                if n % b == 0:
                    mrows.append(monarch_point(n, tokens, b, dense, args))

    print("\nLow-rank layer against nn.Linear (n x n, bias); params: fraction of the dense layer's")
    cols = [
        "n",
        "tokens",
        "rank",
        "r/r*",
        "params",
        "dense fwd us",
        "lrkit fwd us",
        "fwd speedup",
        "raw speedup",
        "overhead us",
        "fwd+bwd speedup",
    ]
    print_table(rows, cols)
    print(
        "raw speedup: x @ W.T against x @ Vh.T @ U.T; overhead us: the lrkit layer's time per "
        "call minus the two raw matmuls' (S, bias, Python)"
    )
    if tltorch is not None:
        how = "opt_einsum" if torch.backends.opt_einsum.is_available() else "naive einsum"
        print(
            "\nlrkit against TensorLy-Torch's FactorizedLinear (rank-r CP, the same parameters; "
            f"{how}); > 1: lrkit is faster"
        )
        print_table(rows, ["n", "tokens", "rank", "fwd vs tltorch", "fwd+bwd vs tltorch"])

    print("\nMonarch layer against nn.Linear")
    print_table(
        mrows,
        [
            "n",
            "tokens",
            "nblocks",
            "params",
            "dense fwd us",
            "monarch fwd us",
            "fwd speedup",
            "fwd+bwd speedup",
        ],
    )

    print("\nWhere the low-rank layer becomes faster than the dense one (median speedup = 1)")
    even = []
    for n in widths:
        for tokens in batches:
            pts = [r for r in rows if r["n"] == n and r["tokens"] == tokens]
            ranks = [r["rank"] for r in pts]
            even.append(
                {
                    "n": n,
                    "tokens": tokens,
                    "params/flops break-even r*": n // 2,
                    "forward": break_even(ranks, [r["_fwd"] for r in pts]),
                    "fwd+bwd": break_even(ranks, [r["_bwd"] for r in pts]),
                    "raw 2 matmuls": break_even(ranks, [r["_raw"] for r in pts]),
                }
            )
    print_table(
        even, ["n", "tokens", "params/flops break-even r*", "forward", "fwd+bwd", "raw 2 matmuls"]
    )

    print("\nTargets (issue 16; meaningful only on a quiet machine with --threads 2)")
    for tokens, goal in ((512, 3.0), (1, 2.2)):
        hit = [r for r in rows if (r["n"], r["tokens"], r["rank"]) == (1024, tokens, 128)]
        if hit:
            s = hit[0]["_fwd"]
            print(
                f"  width 1024, {tokens} token(s), rank 128, forward: {s:.2f}x faster than "
                f"dense (target >= {goal}x: {'met' if s >= goal else 'NOT met'}; two raw "
                f"matmuls {hit[0]['_raw']:.2f}x)"
            )
    worst = min((r for r in rows if "_peer" in r), key=lambda r: r["_peer"], default=None)
    if worst is not None:
        print(
            f"  against TensorLy-Torch: slowest point {worst['_peer']:.2f}x at n = {worst['n']}, "
            f"{worst['tokens']} tokens, rank {worst['rank']} (target >= 1: "
            f"{'met' if worst['_peer'] >= 1 else 'NOT met'})"
        )
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"load average at the end: {load}")


if __name__ == "__main__":
    main()
