"""Timing helpers shared by the benchmarks: the machine, interleaved A/B runs, ratios, a table.

A single timing says little: a CPU changes its clock, other processes come and go, and
two runs of one function often differ by 10-30%. So every lrkit-vs-peer comparison here

- runs the functions in *rounds* (:func:`interleaved_times`): each round calls every function
  once, the order rotating from round to round, so a slow drift of the machine hits all of
  them alike;
- reports the *ratio* of lrkit's time to the peer's per round, then the median and the
  min-max of those ratios over the rounds (:func:`ratio_stats`, :func:`fmt_ratio`), not one
  run and not a ratio of medians measured at different moments;
- prints the machine it ran on (:func:`machine_info`): CPU model, cores, threads, versions,
  BLAS. A ratio measured on one machine is a fact about that machine only.

Run the benchmarks only when nothing else loads the machine.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


# -- the machine -------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except OSError:
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _physical_cores() -> int | None:
    """Physical cores from /proc/cpuinfo (Linux), None elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return None
    pairs = set(re.findall(r"physical id\s*:\s*(\d+)[\s\S]*?core id\s*:\s*(\d+)", text))
    return len(pairs) or None


def _torch_blas() -> str:
    import torch

    config = torch.__config__.show()
    found = re.search(r"BLAS_INFO=(\w+)", config)
    lapack = re.search(r"LAPACK_INFO=(\w+)", config)
    parts = [
        f"BLAS {found.group(1)}" if found else None,
        f"LAPACK {lapack.group(1)}" if lapack else None,
    ]
    return ", ".join(p for p in parts if p) or "BLAS unknown"


def _numpy_blas() -> str:
    import numpy as np

    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info.get('name', '?')} {info.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older numpy: no dict mode; the BLAS stays unnamed
        return "unknown"


def machine_info() -> str:
    """One paragraph naming the machine and the software a timing was measured with."""
    import numpy as np
    import torch

    physical = _physical_cores()
    cores = f"{os.cpu_count()} logical cores" + (f" ({physical} physical)" if physical else "")
    try:
        usable = len(os.sched_getaffinity(0))
        cores += f", {usable} usable by this process" if usable != os.cpu_count() else ""
    except AttributeError:
        pass
    env = ", ".join(
        f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
    )
    return (
        f"machine: {_cpu_model()}; {cores}; {platform.system()} {platform.release()}\n"
        f"threads: torch {torch.get_num_threads()} (interop {torch.get_num_interop_threads()})"
        f"{'; ' + env if env else ''}\n"
        f"software: Python {platform.python_version()}, torch {torch.__version__} "
        f"({_torch_blas()}), numpy {np.__version__} (BLAS {_numpy_blas()})"
    )


def bench_parser(description: str, quick_help: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes: ``--quick`` (a smoke run, what the tests run) and
    ``--no-machine`` (skip the machine paragraph; ``make bench`` prints it once for all)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--no-machine", action="store_true", help="do not print the machine (printed once already)"
    )
    return parser


def print_machine(args: argparse.Namespace) -> None:
    if not getattr(args, "no_machine", False):
        print(machine_info())


# -- timing ------------------------------------------------------------------------------------
def median_time(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeat`` runs, after ``warmup`` runs.

    For a time on its own (a baseline's rate); compare two functions with
    :func:`interleaved_times` instead.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_times(
    fns: dict[str, Callable[[], object]], *, rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall-clock seconds of every function, ``rounds`` times each, run in interleaved rounds.

    After ``warmup`` calls of each, round i calls every function once, starting at the
    (i mod k)-th: A B C, B C A, C A B, ... so no function always runs first (cold caches)
    or last. Returns name -> the list of its times, round by round.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def calls_per_sample(fn: Callable[[], object], target: float) -> int:
    """How many calls of ``fn`` take about ``target`` seconds (after two warm-up calls)."""
    fn()
    fn()
    t0 = time.perf_counter()
    fn()
    return max(1, math.ceil(target / max(time.perf_counter() - t0, 1e-7)))


def interleaved_samples(
    fns: dict[str, Callable[[], object]], *, rounds: int, target: float
) -> dict[str, list[float]]:
    """Seconds per call of every function, one sample per round, each sample as many calls as
    take about ``target`` seconds (for functions too fast to time one call); the rounds
    rotate the order as :func:`interleaved_times` does."""
    number = {name: calls_per_sample(f, target) for name, f in fns.items()}

    def sample(name):
        return lambda: [fns[name]() for _ in range(number[name])]

    times = interleaved_times({name: sample(name) for name in fns}, rounds=rounds, warmup=0)
    return {name: [t / number[name] for t in ts] for name, ts in times.items()}


def ratio_stats(ours: list[float], theirs: list[float]) -> tuple[float, float, float]:
    """Median, min and max over rounds of ``ours[i] / theirs[i]`` (< 1: ours is faster)."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError(f"need equally many rounds, got {len(ours)} and {len(theirs)}")
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def fmt_ratio(stats: tuple[float, float, float]) -> str:
    """``0.94 [0.90-1.01]``: the median ratio and its range over the rounds."""
    med, lo, hi = stats
    return f"{med:.2f} [{lo:.2f}-{hi:.2f}]"


def ratio(ours: list[float], theirs: list[float]) -> str:
    """:func:`ratio_stats` of two lists of round times, formatted by :func:`fmt_ratio`."""
    return fmt_ratio(ratio_stats(ours, theirs))


# -- output ------------------------------------------------------------------------------------
def print_table(rows: list[dict], columns: list[str]) -> None:
    """Print ``rows`` (dicts) as an aligned plain-text table with the given column order."""
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


if __name__ == "__main__":  # `python benchmarks/_timing.py`: the machine, for `make bench`
    print(machine_info())
