"""The KV cache of the course's Llama: plain against Palu-style latents, float and quantized.

For each cache and each context length n (up to the model's maximum, 512), float32 on the
CPU, batch 1, 2 threads (``--threads``), in interleaved rounds (see ``_timing.py``):

- **cache bytes per token** (all layers), read from the cache's own ``nbits`` after the
  prompt (codes and every quantization range counted), and the cache at n tokens in KiB;
- **prefill**: one forward pass over a prompt of ``n - new`` tokens into an empty cache (ms);
- **decode**: then ``new`` tokens fed one at a time with the cache (greedy), ms per token,
  the last at position n;
- **vs plain**: this cache's time / the plain float32 cache's, round by round (< 1: faster).

The caches: the model's own (keys after RoPE, float32); the plain cache quantized to 4 bits
by the same quantizer as the latents (``compress_kv(method="identity", bits=4,
hadamard=True)``); latents of 50% and 25% of the K/V width, float32 and 4-bit (with the
Hadamard rotation). Speed depends on the ranks and bits, not on how the factors were chosen,
so the latents are built by plain SVD (no calibration). A latent cache is smaller but
rebuilds the keys of every cached position at every step, and a quantized one packs and
unpacks codes: the tables say what that costs here.

``--quick`` runs a tiny random model at short contexts in seconds (a smoke run). Time it
only when nothing else runs on the machine.
Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_kv.py [--quick]``.
"""

from __future__ import annotations

import statistics
import time

import torch
from _models import load
from _timing import bench_parser, fmt_ratio, interleaved_times, print_machine, print_table

import lrkit
from lrkit.llm import Llama
from lrkit.llm.data import load_ids
from lrkit.nn import compress_kv


def caches(model: Llama) -> dict[str, Llama]:
    """The models whose caches are compared, by the name the tables give them."""
    kw = dict(method="svd")
    return {
        "plain, float32": model,
        "plain, 4 bits + Hadamard": compress_kv(model, method="identity", bits=4, hadamard=True),
        "latent 50%, float32": compress_kv(model, ratio=0.5, **kw),
        "latent 25%, float32": compress_kv(model, ratio=0.25, **kw),
        "latent 50%, 4 bits + Hadamard": compress_kv(model, ratio=0.5, bits=4, hadamard=True, **kw),
        "latent 25%, 4 bits + Hadamard": compress_kv(
            model, ratio=0.25, bits=4, hadamard=True, **kw
        ),
    }


def measure(models: dict[str, Llama], ids: torch.Tensor, new: int, rounds: int):
    """Per model: prefill seconds and decode seconds per token, round by round, and the
    cache's bits per token. ids (1, n): the prompt is ids[:, :n - new]."""
    prompt = ids[:, : ids.shape[1] - new]
    split = {k: {"prefill": [], "decode": []} for k in models}
    bits = {}

    def run(name, m):
        def fn():
            cache = m.new_cache()
            t0 = time.perf_counter()
            logits = m(prompt, cache)
            t1 = time.perf_counter()
            for _ in range(new):  # greedy: feed back the most likely next token
                logits = m(logits[:, -1:].argmax(-1), cache)
            t2 = time.perf_counter()
            split[name]["prefill"].append(t1 - t0)
            split[name]["decode"].append((t2 - t1) / new)
            bits[name] = cache.nbits / len(cache)

        return fn

    with torch.inference_mode():
        interleaved_times({k: run(k, m) for k, m in models.items()}, rounds=rounds)
    for k in models:  # the warm-up call's times are not the rounds'
        for part in ("prefill", "decode"):
            split[k][part] = split[k][part][-rounds:]
    return split, bits


def vs(ours: list[float], plain: list[float]) -> str:
    r = [a / b for a, b in zip(ours, plain, strict=True)]
    return fmt_ratio((statistics.median(r), min(r), max(r)))


def main() -> None:
    parser = bench_parser(
        "the KV cache of the course's Llama: plain against low-rank latents, float and 4-bit",
        "a tiny random model at short contexts (smoke run)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, name = load(args.quick)
    ctx = model.config.max_position_embeddings
    if args.quick:
        lengths, new, rounds = [32, ctx], 8, args.rounds or 2
    else:
        lengths, new, rounds = [128, 256, ctx], 32, args.rounds or 3
    models = caches(model)
    text = load_ids("heldout")[:ctx].long()[None]  # (1, ctx)
    t0 = time.perf_counter()
    rows = []
    for n in lengths:
        split, bits = measure(models, text[:, :n], new, rounds)
        plain = split["plain, float32"]
        for k in models:
            p, d = split[k]["prefill"], split[k]["decode"]
            rows.append(
                {
                    "context": n,
                    "cache": k,
                    "B/token": f"{bits[k] / 8:,.0f}",
                    "KiB at n": f"{n * bits[k] / 8 / 1024:,.1f}",
                    "prefill ms": f"{1e3 * statistics.median(p):.1f}",
                    "prefill vs plain": "1" if k == "plain, float32" else vs(p, plain["prefill"]),
                    "decode ms/token": f"{1e3 * statistics.median(d):.2f}",
                    "decode vs plain": "1" if k == "plain, float32" else vs(d, plain["decode"]),
                }
            )
    took = time.perf_counter() - t0

    print_machine(args)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"lrkit {lrkit.__version__}; {name}, {params:,} parameters; float32; batch 1; "
        f"{rounds} interleaved rounds; benchmark {took:.0f} s"
    )
    print("times and ratios: median [min-max] over the interleaved rounds")
    print(
        f"\nPer context n: prefill of n - {new} tokens, then {new} tokens decoded one at a time "
        f"with the cache; B/token from the cache's nbits (codes and ranges); vs plain = this "
        f"cache's time / the plain float32 cache's, per round (< 1: faster)"
    )
    print_table(
        rows,
        [
            "context",
            "cache",
            "B/token",
            "KiB at n",
            "prefill ms",
            "prefill vs plain",
            "decode ms/token",
            "decode vs plain",
        ],
    )


if __name__ == "__main__":
    main()
