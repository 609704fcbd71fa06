"""Every benchmark script under bench/ starts: its imports resolve and --help answers (a bench that no test
ran once imported a helper that had gone; speed figures themselves are the benches' own business)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tests.paths import REPO

BENCHES = sorted(path.name for path in (REPO / "bench").glob("bench_*.py"))


def test_there_are_benches() -> None:
    assert len(BENCHES) >= 8


@pytest.mark.parametrize("script", BENCHES)
def test_bench_script_answers_help(script: str) -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()
