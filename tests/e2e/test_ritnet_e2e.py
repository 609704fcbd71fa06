"""End to end: `nia synth` -> index -> split -> crops -> RIT-Net demo training -> ritnet/test.py -> PASS.

The issue-11 acceptance of the `demo` preset on 2 CPU cores: the Makefile's
demo data (the recipe of docs/synthetic.md), demo training, then every
per-eye crop of the test split scored, each step through its real command
(a subprocess, as a user types it). Trains as `make` does (the Makefile's
DEMO_TRAIN_ENV: fixed threads and CPU kernels).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e_steps import crops_synth_args, demo_train, run, synthetic_dataset

THRESHOLD = 0.80


@pytest.mark.slow
def test_demo_preset_passes_on_synthetic_data(tmp_path: Path) -> None:
    crops = synthetic_dataset(tmp_path, crops_synth_args(), "crops")
    run(demo_train("ritnet/train.py", "--preset", "demo", "--device", "cpu", "--data", str(crops),
                   "--out", str(tmp_path / "train")), "ritnet/train.py")
    result = run([sys.executable, "ritnet/test.py", "--data", str(crops), "--weights",
                  str(tmp_path / "train" / "best.pt"), "--out", str(tmp_path / "results")], "ritnet/test.py")

    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert "-> PASS" in result.stdout
    assert metrics["passed"] is True and metrics["value"] >= THRESHOLD
    index = pd.read_parquet(crops / "index.parquet")
    n_test = int((index["crop"].isin(["r_eye", "l_eye"]) & (index["split"] == "test")).sum())
    assert metrics["n_samples"] == n_test > 0 and metrics["n_skipped"] == 0  # every test crop scored
    assert len(metrics["extra"]["overlays"]) == 6
