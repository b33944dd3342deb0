"""The benchmarks still run (a quick case each). No timing is asserted: speed is reported by
the benchmarks themselves, never tested."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("bench_*.py")))
def test_benchmark_runs_quick(script):
    out = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCH,
    )
    assert out.returncode == 0, out.stderr
    assert "lrkit" in out.stdout
    assert out.stdout.startswith("machine: ")  # every run says where it was measured
    assert "median [min-max]" in out.stdout  # ratios from interleaved rounds, with spread


def _timing():
    sys.path.insert(0, str(BENCH))
    try:
        import _timing
    finally:
        sys.path.remove(str(BENCH))
    return _timing


def test_interleaved_rounds_rotate_the_order_and_ratios_pair_rounds():
    timing = _timing()
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "ABC"}
    times = timing.interleaved_times(fns, rounds=4, warmup=1)
    assert calls == list("ABC" + "ABC" + "BCA" + "CAB" + "ABC")  # warm-up, then rotating
    assert {k: len(v) for k, v in times.items()} == {"A": 4, "B": 4, "C": 4}
    # Ratios are taken round by round, then summarized: median, min, max.
    assert timing.ratio_stats([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]) == (1.0, 0.5, 1.5)
    assert timing.fmt_ratio((1.0, 0.5, 1.5)) == "1.00 [0.50-1.50]"
    with pytest.raises(ValueError, match="equally many rounds"):
        timing.ratio_stats([1.0], [1.0, 2.0])


def test_machine_info_names_cpu_threads_and_versions():
    text = _timing().machine_info()
    assert text.startswith("machine: ")
    for word in ("logical cores", "threads: torch", "torch", "numpy"):
        assert word in text
