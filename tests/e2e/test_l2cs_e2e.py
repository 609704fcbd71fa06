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
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e_steps import crops_synth_args, demo_train, run, synthetic_dataset

TRAIN_ARGS = ["--preset", "demo", "--device", "cpu"]
THRESHOLD_DEG = 10.0


@pytest.mark.slow
def test_demo_preset_passes_on_synthetic_data(tmp_path: Path) -> None:
    crops = synthetic_dataset(tmp_path, crops_synth_args(), "crops")
    run(demo_train("l2cs/train.py", *TRAIN_ARGS, "--data", str(crops), "--out", str(tmp_path / "train")),
        "l2cs/train.py")
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
