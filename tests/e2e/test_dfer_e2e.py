"""End to end: `nia synth` -> index -> split -> clips -> demo training -> dfer/valid_nia.py -> PASS.

The issue-12 acceptance of the `demo` preset: on 2 CPU cores, the Makefile's
demo videos (DFER_SYNTH_ARGS, docs/dfer.md "Demo recipe": 128 test clips)
train to a test-split WAR above the 70 % threshold. Every step runs through
its real command (a subprocess, as a user types it), training as `make` does
(DEMO_TRAIN_ENV), and the validation scores every clip of the test split.
The validation is given the dataset ROOT, as the container is (`/data`): it
indexes, splits and clips it again itself and must find the same test split.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e_steps import demo_train, dfer_synth_args, run, synthetic_dataset

THRESHOLD = 0.70


@pytest.mark.slow
def test_demo_preset_passes_on_synthetic_clips(tmp_path: Path) -> None:
    clips = synthetic_dataset(tmp_path, dfer_synth_args(), "clips")
    synth = tmp_path / "synth"
    run(demo_train("dfer/train.py", "--preset", "demo", "--device", "cpu", "--data", str(clips),
                   "--out", str(tmp_path / "train")), "dfer/train.py")
    result = run([sys.executable, "dfer/valid_nia.py", "--data", str(synth), "--work-dir", str(tmp_path / "work"),
                  "--weights", str(tmp_path / "train" / "best.pt"), "--out", str(tmp_path / "results")],
                 "dfer/valid_nia.py")

    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert "-> PASS" in result.stdout
    assert metrics["passed"] is True and metrics["value"] >= THRESHOLD
    index = pd.read_parquet(clips / "index.parquet")
    test_clips = set(index.loc[index["split"] == "test", "clip_id"])
    scored = set(pd.read_csv(tmp_path / "results" / "per_sample.csv")["name"])
    assert scored == test_clips and len(scored) >= 100  # the validation's own split is the training's
    assert metrics["n_samples"] == len(scored) and metrics["n_skipped"] == 0  # every test clip scored
