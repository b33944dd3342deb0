"""One attention layer: full softmax attention against Linformer, time and memory against n.

One layer of width 256 with 8 heads (``--dim``, ``--heads``), batch 1, float32, 2 threads
(``--threads``), at sequence lengths n = 512, 1024, 2048, 4096 and 8192 (``--lengths``):

- **full**: the layer's four linear maps around ``scaled_dot_product_attention`` over all n
  keys (``LinformerSelfAttention.full_attention``), O(n^2) time;
- **lrkit k**: ``LinformerSelfAttention(..., k=k)`` for k = 64, 128 and 256 (``--ks``):
  keys and values projected along the sequence to k rows (one E and one F shared by the
  heads), O(n k) time;
- **linformer k** (the peer, where the ``linformer`` package is installed): its
  ``LinformerSelfAttention`` with the same k and the same layout (one E and one F for all
  heads, separate key and value maps), so both hold the same parameters.

Times are measured in interleaved rounds (every candidate once per round, the order turning
from round to round), as ratios per round; the tables give the median and [min-max] over the
rounds. "speedup" is full time / lrkit time; "vs linformer" is the package's time / lrkit's
(> 1: lrkit is faster). Forward runs under ``torch.no_grad()``; forward+backward computes the
gradients of the input and of every parameter.

Memory, two columns, each said for what it is:

- **peak MiB** (measured): on CPU, the largest total of bytes that torch's allocator holds at
  an operator boundary during one call, from ``torch.profiler`` (``profile_memory=True``),
  counting only what the call allocates (weights and the input are already there). A
  temporary that an operator allocates and frees before it returns is not seen. On CUDA,
  ``torch.cuda.max_memory_allocated`` minus what was allocated before the call;
- **scores MiB** (computed): the size of one (batch, heads, n, n) or (batch, heads, n, k)
  float32 score matrix, what an attention that writes its scores out holds. PyTorch's
  fused SDPA kernels (flash attention, on CPU too) never write the n x n matrix out, so the
  measured column of full attention grows like n, not n^2.

At the end, per k: the crossover length, where Linformer's fwd+bwd becomes faster than full
attention (interpolated in log n between measured lengths), and the targets.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_attention.py [--quick]``
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
from torch.profiler import ProfilerActivity, profile

import lrkit
from lrkit.nn import LinformerSelfAttention


def peer_or_reason():
    """The ``linformer`` package, or None and why it is missing."""
    try:
        import linformer
    except ImportError as err:
        return None, f"the linformer package is not installed (pip install linformer): {err}"
    return linformer, None


# -- calls ---------------------------------------------------------------------------------------
def synced(fn: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """``fn`` that waits for the device to finish, so the clock sees the whole call."""
    if device.type != "cuda":
        return fn

    def call():
        fn()
        torch.cuda.synchronize(device)

    return call


def forward(f: Callable, x: torch.Tensor) -> Callable[[], object]:
    def call():
        with torch.no_grad():
            f(x)

    return call


def train_step(f: Callable, module: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """Forward and backward: gradients of the input and of every parameter, fresh each call."""
    x = x.detach().clone().requires_grad_(True)
    params = list(module.parameters())
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(x.device)

    def call():
        f(x).backward(g)
        x.grad = None  # freed inside the call, so a memory profile sees the whole step
        for p in params:
            p.grad = None

    return call


# -- interleaved timing ------------------------------------------------------------------------
def interleaved(fns: dict[str, Callable[[], object]], rounds: int, target: float) -> dict:
    return interleaved_samples(fns, rounds=rounds, target=target)


def ratio(times: dict, num: str, den: str) -> tuple[float, float, float]:
    """Median, min and max over the rounds of times[num] / times[den], each round's own."""
    return ratio_stats(times[num], times[den])


fmt = fmt_ratio


def ms(times: dict, name: str) -> float:
    return round(statistics.median(times[name]) * 1e3, 3)


# -- memory --------------------------------------------------------------------------------------
def peak_mib(fn: Callable[[], object], device: torch.device) -> float:
    """Peak bytes allocated by one call of ``fn`` beyond what was allocated before, in MiB."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # each operator's own net allocation at its end; frees outside any operator as they come
    steps = []
    for e in prof.events():
        if e.name == "[memory]":
            steps.append((e.time_range.start, e.cpu_memory_usage))
        else:
            steps.append((e.time_range.end, e.self_cpu_memory_usage))
    live = peak = 0
    for _, nbytes in sorted(steps, key=lambda s: s[0]):
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20


def scores_mib(batch: int, heads: int, n: int, m: int) -> float:
    return 4 * batch * heads * n * m / 2**20  # one float32 (batch, heads, n, m) matrix


# -- one length ----------------------------------------------------------------------------------
def length_point(n: int, args, peer) -> list[dict]:
    dev, B, d, h = args.device, args.batch, args.dim, args.heads
    x = torch.randn(B, n, d, generator=torch.Generator().manual_seed(0)).to(dev)
    ks = [k for k in args.ks if k <= n]
    layers = {k: LinformerSelfAttention(d, n, k=k, heads=h, seed=0, device=dev) for k in ks}
    full = LinformerSelfAttention(d, n, k=min(ks), heads=h, seed=1, device=dev)
    fwd = {"full": forward(full.full_attention, x)}
    step = {"full": train_step(full.full_attention, full, x)}
    for k, layer in layers.items():
        fwd[f"lrkit {k}"], step[f"lrkit {k}"] = forward(layer, x), train_step(layer, layer, x)
        if peer is not None:
            theirs = peer.LinformerSelfAttention(d, n, k=k, heads=h).to(dev)
            n_theirs = sum(p.numel() for p in theirs.parameters())
            if n_theirs != layer.num_params:
                raise RuntimeError(
                    f"parameters differ: linformer {n_theirs}, lrkit {layer.num_params}"
                )
            fwd[f"peer {k}"], step[f"peer {k}"] = forward(theirs, x), train_step(theirs, theirs, x)
    fwd = {name: synced(f, dev) for name, f in fwd.items()}
    step = {name: synced(f, dev) for name, f in step.items()}
    tf = interleaved(fwd, args.rounds, args.sample)
    tb = interleaved(step, args.rounds, args.sample)
    mem_f = {name: peak_mib(f, dev) for name, f in fwd.items()}
    mem_b = {name: peak_mib(f, dev) for name, f in step.items()}

    rows = [
        {
            "n": n,
            "method": "full (SDPA)",
            "fwd ms": ms(tf, "full"),
            "fwd+bwd ms": ms(tb, "full"),
            "fwd peak MiB": round(mem_f["full"], 2),
            "fwd+bwd peak MiB": round(mem_b["full"], 2),
            "scores MiB": round(scores_mib(B, h, n, n), 2),
        }
    ]
    for k in ks:
        me = f"lrkit {k}"
        row = {
            "n": n,
            "method": f"lrkit k={k}",
            "k": k,
            "fwd ms": ms(tf, me),
            "fwd+bwd ms": ms(tb, me),
            "fwd speedup": fmt(ratio(tf, "full", me)),
            "fwd+bwd speedup": fmt(ratio(tb, "full", me)),
            "fwd peak MiB": round(mem_f[me], 2),
            "fwd+bwd peak MiB": round(mem_b[me], 2),
            "scores MiB": round(scores_mib(B, h, n, k), 2),
            "_bwd": ratio(tb, "full", me)[0],
        }
        if peer is not None:
            them = f"peer {k}"
            vs_f, vs_b = ratio(tf, them, me), ratio(tb, them, me)
            row.update(
                {
                    "linformer fwd ms": ms(tf, them),
                    "linformer fwd+bwd ms": ms(tb, them),
                    "fwd vs linformer": fmt(vs_f),
                    "fwd+bwd vs linformer": fmt(vs_b),
                    "linformer fwd+bwd peak MiB": round(mem_b[them], 2),
                    "_peer": min(vs_f[0], vs_b[0]),
                }
            )
        rows.append(row)
    return rows


def crossover(ns: list[int], speedups: list[float]) -> str:
    """The length where the speedup first reaches 1 from below, interpolated in log n and
    log speedup between the two measured lengths around it; or which side of the range."""
    if speedups[0] >= 1:
        return f"<= {ns[0]} (faster at every measured n)"
    for i in range(1, len(ns)):
        s0, s1 = speedups[i - 1], speedups[i]
        if s0 < 1 <= s1:
            t = -math.log(s0) / (math.log(s1) - math.log(s0))  # where log(speedup) = 0
            return f"{math.exp(math.log(ns[i - 1]) + t * math.log(ns[i] / ns[i - 1])):.0f}"
    return f"> {ns[-1]} (slower at every measured n)"


def main() -> None:
    parser = bench_parser(
        "full attention against Linformer (lrkit and the linformer package)",
        "a tiny subset: width 64, 4 heads, n = 128, 256, k = 16, 32 (smoke run)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="sequence lengths")
    parser.add_argument("--ks", type=int, nargs="+", default=None, help="Linformer's k")
    parser.add_argument("--dim", type=int, default=None, help="model width (default 256)")
    parser.add_argument("--heads", type=int, default=None, help="heads (default 8)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.device = torch.device(args.device)
    if args.quick:
        lengths, ks, dim, heads, rounds, args.sample = [128, 256], [16, 32], 64, 4, 3, 2e-3
    else:
        lengths, ks, dim, heads, rounds = [512, 1024, 2048, 4096, 8192], [64, 128, 256], 256, 8, 5
        args.sample = 0.05
    args.lengths, args.ks = args.lengths or lengths, args.ks or ks
    args.dim, args.heads, args.rounds = args.dim or dim, args.heads or heads, args.rounds or rounds
    peer, why = peer_or_reason()
    print_machine(args)
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"lrkit {lrkit.__version__}, linformer {peer_version(peer)}; load average {load} "
        f"(1/5/15 min)"
    )
    print(
        f"one layer: width {args.dim}, {args.heads} heads, batch {args.batch}, float32, "
        f"{args.device}; {args.rounds} interleaved rounds of ~{args.sample * 1e3:g} ms each"
    )
    print("speedup = full time / lrkit time, median [min-max] over the interleaved rounds")
    if peer is None:
        print(f"linformer peer skipped: {why}")
    how = (
        "torch.cuda.max_memory_allocated"
        if args.device.type == "cuda"
        else "torch.profiler, allocator bytes at operator boundaries"
    )
    print(f"peak MiB: measured ({how}); scores MiB: computed, 4 B h n m bytes (m = n or k)")

    rows = []
    for n in args.lengths:
        rows += length_point(n, args, peer)

    print("\nTime and memory of one layer")
    print_table(
        rows,
        [
            "n", "method", "fwd ms", "fwd+bwd ms", "fwd speedup", "fwd+bwd speedup",
            "fwd peak MiB", "fwd+bwd peak MiB", "scores MiB",
        ],
    )  # fmt: skip
    if peer is not None:
        print("\nlrkit against the linformer package (same k and layout); > 1: lrkit is faster")
        print_table(
            [r for r in rows if "k" in r],
            [
                "n", "k", "fwd ms", "linformer fwd ms", "fwd vs linformer", "fwd+bwd ms",
                "linformer fwd+bwd ms", "fwd+bwd vs linformer", "fwd+bwd peak MiB",
                "linformer fwd+bwd peak MiB",
            ],
        )  # fmt: skip

    print("\nCrossover: the length from which Linformer's fwd+bwd is faster than full attention")
    cross = []
    for k in args.ks:
        pts = [r for r in rows if r.get("k") == k]
        if pts:
            ns, s = [r["n"] for r in pts], [r["_bwd"] for r in pts]
            cross.append({"k": k, "crossover n": crossover(ns, s)})
    print_table(cross, ["k", "crossover n"])

    print("\nTargets (meaningful only on a quiet machine with --threads 2)")
    hit = [r for r in rows if (r["n"], r.get("k")) == (4096, 256)]
    if hit:
        s = hit[0]["_bwd"]
        print(
            f"  n = 4096, k = 256, fwd+bwd: {s:.2f}x faster than full SDPA attention "
            f"(target >= 4x: {'met' if s >= 4 else 'NOT met'})"
        )
    worst = min((r for r in rows if "_peer" in r), key=lambda r: r["_peer"], default=None)
    if worst is not None:
        print(
            f"  against the linformer package: slowest point {worst['_peer']:.2f}x at "
            f"n = {worst['n']}, k = {worst['k']} (target >= 1 at every n: "
            f"{'met' if worst['_peer'] >= 1 else 'NOT met'})"
        )
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"load average at the end: {load}")


def peer_version(peer) -> str:
    if peer is None:
        return "not installed"
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("linformer")
    except PackageNotFoundError:
        return "unknown version"


if __name__ == "__main__":
    main()
