"""The validation bench runs end to end and its loops agree (speed itself is never asserted)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_runs_and_our_loop_matches_the_anchor() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_l2cs_valid.py"), "--anchor-images", "2",
                           "--images", "4", "--batch-size", "2", "--workers", "0", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    difference = re.search(r"prediction difference: ([0-9.]+) deg", done.stdout)
    assert difference is not None, done.stdout
    assert float(difference.group(1)) < 0.01  # folded BatchNorm + channels_last: same predictions as the anchor
    ceiling = re.search(r"ceiling \(forward alone / anchor as a plain script runs it\): ([0-9.]+)x", done.stdout)
    assert ceiling is not None and float(ceiling.group(1)) > 0, done.stdout
