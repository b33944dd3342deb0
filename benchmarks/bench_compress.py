"""Compressing the course's Llama: how long it takes, and how fast the result runs.

Two tables, float32 on the CPU, 2 threads (``--threads``), each measured in interleaved
rounds (see ``_timing.py``):

- **time to calibrate and compress** the whole shipped model (``datasets/tiny-llama``, every
  Linear but the output layer, half of their parameters kept, uniform allocation) per method:
  ``compress_model(model, method, param_ratio=0.5, calibration=...)`` on 32 windows of 512
  tokens of the calibration corpus (``lrkit.llm.data.load_ids("calibration")``). Beside each
  method, the time of ``calibrate`` alone with the statistics that method needs (``xtx`` for
  whitening, ``abs_mean`` for ASVD, ``fisher`` for Fisher weighting: a backward pass per
  batch), the rest (factorizing, building the layers, copying the model) as the difference
  per round, and the time over plain SVD's (which needs no data) in the same round;
- **inference speed** of the compressed model against the dense one at 0.8 and 0.5 of the
  Linear parameters kept: prompt processing (one forward pass over 8 prompts of 256 tokens,
  tokens/s) and greedy generation of 128 tokens after 256 with the KV cache (``generate``,
  tokens/s). The speed depends on the ranks, not on how the factors were chosen, so the
  models are compressed by plain SVD. Speed-up = dense time / compressed time in the same
  round (> 1: the compressed model is faster).

Times are medians, with [min-max] over the rounds. ``--quick`` runs a tiny random model on a
few short windows in seconds (a smoke run). Time it only when nothing else runs on the
machine. Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_compress.py [--quick]``.
"""

from __future__ import annotations

import statistics
import time
import warnings

import torch
from _models import load
from _timing import bench_parser, fmt_ratio, interleaved_times, print_machine, print_table, ratio

import lrkit
from lrkit.llm import Llama, generate
from lrkit.llm.data import load_ids
from lrkit.nn import calibrate, compress_model

METHODS = ("svd", "asvd", "whiten", "fwsvd")
STATS = {"asvd": ("abs_mean",), "whiten": ("xtx",), "fwsvd": ("fisher",)}  # what each needs
TARGET_S = 30  # the goal: calibrate and compress the shipped model in under 30 s


def spread(times: list[float]) -> str:
    """Median seconds and [min-max] over the rounds."""
    return f"{statistics.median(times):.2f} [{min(times):.2f}-{max(times):.2f}]"


def compression_times(model: Llama, cal: torch.Tensor, rounds: int) -> list[dict]:
    """Seconds of compress_model per method and of calibrate per statistic, interleaved."""

    def compress(method):
        data = dict(calibration=cal) if method in STATS else {}
        return lambda: compress_model(model, method, param_ratio=0.5, progress=False, **data)

    def stats_only(method):
        return lambda: calibrate(model, cal, stats=STATS[method], progress=False)

    fns = {m: compress(m) for m in METHODS}
    fns |= {f"calibrate {m}": stats_only(m) for m in STATS}
    t = interleaved_times(fns, rounds=rounds, warmup=0)
    rows = []
    for m in METHODS:
        cal_t = t.get(f"calibrate {m}")
        rest = [a - b for a, b in zip(t[m], cal_t, strict=True)] if cal_t else t[m]
        median = statistics.median(t[m])
        rows.append(
            {
                "method": m,
                "statistics": ", ".join(STATS.get(m, ("none",))),
                "total s": spread(t[m]),
                "calibrate s": spread(cal_t) if cal_t else "-",
                "rest s": spread(rest),
                "vs svd": ratio(t[m], t["svd"]) if m != "svd" else "1",
                f"< {TARGET_S} s": "yes" if median < TARGET_S else "NO",
            }
        )
    return rows


def inference_speed(model: Llama, ids: torch.Tensor, new: int, rounds: int) -> list[dict]:
    """Prompt and generation tokens/s of the dense model and its SVD compressions."""
    models = {"dense": model}
    for keep in (0.8, 0.5):
        models[f"{keep:g}"], _ = compress_model(model, "svd", param_ratio=keep, progress=False)
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    prompt = ids[0]  # generation: one sequence

    def gen(m):
        return lambda: generate(m, prompt, max_new_tokens=new, temperature=0)

    with torch.inference_mode():
        fwd = interleaved_times({k: (lambda m=m: m(ids)) for k, m in models.items()}, rounds=rounds)
        gens = interleaved_times({k: gen(m) for k, m in models.items()}, rounds=rounds)
    rows = []
    for k in models:
        row = {
            "model": "dense" if k == "dense" else f"svd, {k} of Linear params",
            "params": f"{params[k]:,}",
            "prompt tok/s": f"{ids.numel() / statistics.median(fwd[k]):,.0f}",
            "generate tok/s": f"{new / statistics.median(gens[k]):,.1f}",
        }
        if k != "dense":  # dense time / compressed time: > 1 is faster
            row["prompt speedup"] = fmt_ratio(_inverse(fwd["dense"], fwd[k]))
            row["generate speedup"] = fmt_ratio(_inverse(gens["dense"], gens[k]))
        rows.append(row)
    return rows


def _inverse(dense: list[float], ours: list[float]) -> tuple[float, float, float]:
    r = [a / b for a, b in zip(dense, ours, strict=True)]
    return statistics.median(r), min(r), max(r)


def main() -> None:
    parser = bench_parser(
        "calibrating and compressing the course's Llama, and the compressed model's speed",
        "a tiny random model on short windows (smoke run)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # whitening's shift on the first layers is expected
    model, name = load(args.quick)
    if args.quick:
        windows, length, batch, prompt_len, new = 4, 64, 4, 64, 32
        rounds = args.rounds or 2
    else:
        windows, length, batch, prompt_len, new = 32, 512, 8, 256, 128
        rounds = args.rounds or 3
    cal = load_ids("calibration")[: windows * length].long().reshape(windows, length)
    ids = load_ids("heldout")[: batch * prompt_len].long().reshape(batch, prompt_len)
    t0 = time.perf_counter()
    rows = compression_times(model, cal, rounds)
    speed = inference_speed(model, ids, new, rounds)
    took = time.perf_counter() - t0

    print_machine(args)
    print(f"lrkit {lrkit.__version__}; {name}, {sum(p.numel() for p in model.parameters()):,} "
          f"parameters; float32; {rounds} interleaved rounds; benchmark {took:.0f} s")  # fmt: skip
    print("times and ratios: median [min-max] over the interleaved rounds")
    print(
        f"\nCalibrate and compress the whole model (param_ratio 0.5, uniform), calibration "
        f"{windows} windows of {length} tokens; rest = total - calibrate, per round; vs svd = "
        f"this method's time / plain SVD's"
    )
    print_table(
        rows,
        ["method", "statistics", "total s", "calibrate s", "rest s", "vs svd", f"< {TARGET_S} s"],
    )
    print(
        f"\nInference: prompt {batch}x{prompt_len} tokens (one forward pass), greedy generation "
        f"of {new} tokens after {prompt_len} with the KV cache; speedup = dense time / "
        f"compressed time (> 1: faster)"
    )
    print_table(
        speed,
        ["model", "params", "prompt tok/s", "prompt speedup", "generate tok/s", "generate speedup"],
    )


if __name__ == "__main__":
    main()
