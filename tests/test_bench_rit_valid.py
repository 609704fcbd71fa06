"""The RIT-Net validation bench runs end to end and its loops agree (speed itself is never asserted)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_runs_and_our_loop_matches_the_anchor() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_rit_valid.py"), "--anchor-images", "2",
                           "--images", "4", "--batch-size", "2", "--workers", "0", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    moved = re.search(r"ours vs anchor: \d+ of 2 crops with other counts, ([0-9.]+) % of pixels", done.stdout)
    assert moved is not None, done.stdout
    assert float(moved.group(1)) < 1.0  # the same preprocessing and network: at most a few decode-rounding pixels
    ceiling = re.search(r"ceiling \(forward alone / anchor as a plain script runs it\): ([0-9.]+)x", done.stdout)
    assert ceiling is not None and float(ceiling.group(1)) > 0, done.stdout
    assert re.search(r"batch-1 latency on cpu: [0-9.]+ images/s at 160x96", done.stdout), done.stdout
