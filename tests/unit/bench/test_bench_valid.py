"""The validation benches run end to end and their loops agree (speed itself is never asserted)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

CEILING = r"ceiling \(forward alone / anchor as a plain script runs it\): ([0-9.]+)x"


def run_bench(script: str, *extra: str) -> str:
    """The bench's stdout on 2 anchor crops and 4 crops on the CPU; fails on a non-zero exit or no ceiling line."""
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), "--anchor-images", "2", "--images", "4",
                           "--batch-size", "2", "--workers", "0", "--device", "cpu", *extra],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ceiling = re.search(CEILING, done.stdout)
    assert ceiling is not None and float(ceiling.group(1)) > 0, done.stdout
    return done.stdout


@pytest.mark.slow
def test_l2cs_bench_runs_and_our_loop_matches_the_anchor() -> None:
    out = run_bench("bench_l2cs_valid.py")
    difference = re.search(r"prediction difference: ([0-9.]+) deg", out)
    assert difference is not None, out
    assert float(difference.group(1)) < 0.01  # folded BatchNorm + channels_last: same predictions as the anchor


@pytest.mark.slow
def test_rit_bench_runs_and_our_loop_matches_the_anchor() -> None:
    out = run_bench("bench_rit_valid.py")
    moved = re.search(r"ours vs anchor: \d+ of 2 crops with other counts, ([0-9.]+) % of pixels", out)
    assert moved is not None, out
    assert float(moved.group(1)) < 1.0  # the same preprocessing and network: at most a few decode-rounding pixels
    assert re.search(r"batch-1 latency on cpu: [0-9.]+ images/s at 160x96", out), out


@pytest.mark.slow
def test_load_runs_busy_processes_for_the_bench_only_and_reports_the_targets() -> None:
    """Issue 23: `--load N` keeps N cores busy during the run and stops them at its end; the bench prints the
    ratios under that load, the decode rate against the forward rate, and why the GPU figures are skipped."""
    out = run_bench("bench_rit_valid.py", "--load", "1")
    started = re.search(r"load: 1 busy process\(es\) running all along \(pids (\d+)\)", out)
    assert started is not None, out
    assert not Path(f"/proc/{started.group(1)}").exists()  # stopped (and reaped) when the bench ended
    assert re.search(r"with --load 1: ours / anchor script [0-9.]+x .*ceiling under the same load \d+ %", out), out
    assert re.search(r"decode alone [0-9.]+ crops/s vs forward alone [0-9.]+ crops/s", out), out
    assert "GPU figures skipped: device cpu" in out and "250,000 crops in <= 1 min" in out
    # what the machine's CPUs give, quiet and under the load (one-thread streams), and decode's bound
    together = re.search(r"machine: (\d+) usable core\(s\); one one-thread stream per core together do ([0-9.]+)", out)
    assert together is not None and 0 < float(together.group(2)) <= int(together.group(1)) + 0.5, out
    assert re.search(r"machine under the load: one stream keeps \d+ % .* does [0-9.]+x one stream.s work", out), out
    assert re.search(r"ours can reach at most \d+ % of the forward-only ceiling", out), out


def test_ours_and_the_ceiling_are_timed_alternately_and_their_medians_taken(capsys: pytest.CaptureFixture) -> None:
    import numpy as np

    from bench.timing import ours_and_ceiling

    calls: list[str] = []
    ours_rates, ceiling_rates = iter([10.0, 30.0, 20.0]), iter([20.0, 40.0, 25.0])  # the machine drifts

    def ours() -> tuple[float, np.ndarray]:
        calls.append("ours")
        return next(ours_rates), np.array([len(calls)])

    def ceiling() -> float:
        calls.append("ceiling")
        return next(ceiling_rates)

    rate, output, top = ours_and_ceiling(3, ours, ceiling)
    assert calls == ["ours", "ceiling"] * 3 and (rate, top) == (20.0, 25.0) and output.tolist() == [1]
    assert "50 %, 75 %, 80 %" in capsys.readouterr().out
