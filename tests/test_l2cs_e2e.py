"""End to end: `nia synth` -> index -> split -> crops -> demo training -> run_valid_l2cs.py -> PASS.

The issue-5 acceptance of the `demo` preset: on 2 CPU cores, a small
synthetic set trains in a few minutes to a test-split mean angular error
within the 10 deg threshold. Every step runs through its real command (a
subprocess, as a user types it), and the validation scores every crop of
the test split. The recipe is the one of docs/synthetic.md ("Demo recipe"),
at the smallest size that still passes with a margin.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
NIA = [str(Path(sys.executable).with_name("nia"))]  # the console script of this venv
SYNTH_ARGS = ["--subjects", "30", "--videos-per-subject", "8", "--frames-per-video", "16",
              "--size", "640x360", "--seed", "0", "--workers", "2"]
TRAIN_ARGS = ["--preset", "demo", "--device", "cpu"]
THRESHOLD_DEG = 10.0


def demo_train_env() -> dict[str, str]:
    """The Makefile's DEMO_TRAIN_ENV (fixed threads and CPU kernels), so this test trains as `make` does."""
    line = re.search(r"^DEMO_TRAIN_ENV \?= (.+)$", (REPO / "Makefile").read_text(), re.M)
    assert line is not None, "Makefile: DEMO_TRAIN_ENV is gone"
    return dict(item.split("=", 1) for item in line.group(1).split())


def run(args: list[str], what: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one step from the repository root; a failing step fails the test with its output."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})}
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"{what} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.mark.slow
def test_demo_preset_passes_on_synthetic_data(tmp_path: Path) -> None:
    synth, manifest, crops = tmp_path / "synth", tmp_path / "manifest.parquet", tmp_path / "crops"
    run([*NIA, "synth", str(synth), *SYNTH_ARGS], "nia synth")
    run([*NIA, "index", str(synth), "--out", str(manifest)], "nia index")
    run([*NIA, "split", str(manifest)], "nia split")
    run([*NIA, "crops", str(manifest), str(crops), "--workers", "2"], "nia crops")
    run([sys.executable, "l2cs/train.py", *TRAIN_ARGS, "--data", str(crops), "--out", str(tmp_path / "train")],
        "l2cs/train.py", demo_train_env())
    result = run([sys.executable, "l2cs/run_valid_l2cs.py", "--data", str(crops), "--weights",
                  str(tmp_path / "train" / "best.pt"), "--out", str(tmp_path / "results"), "--split", "test"],
                 "l2cs/run_valid_l2cs.py")

    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert "PASS" in result.stdout + result.stderr
    assert metrics["passed"] is True
    assert metrics["value"] <= THRESHOLD_DEG
    index = pd.read_parquet(crops / "index.parquet")
    n_test = int(((index["crop"] == "eyes") & (index["split"] == "test")).sum())
    assert metrics["n_samples"] == n_test > 0 and metrics["n_skipped"] == 0  # every test crop scored
