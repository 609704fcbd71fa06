"""End to end: `nia synth` -> index -> split -> clips -> demo training -> dfer/valid_nia.py -> PASS.

The issue-12 acceptance of the `demo` preset: on 2 CPU cores, the synthetic
demo set (docs/dfer.md, "Demo recipe": at least 100 test clips) trains to a
test-split WAR above the 70 % threshold. Every step runs through its real
command (a subprocess, as a user types it), and the validation scores every
clip of the test split. The validation is given the dataset ROOT, as the
container is (`/data`): it indexes, splits and clips it again itself and
must find the same test split.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
NIA = [str(Path(sys.executable).with_name("nia"))]  # the console script of this venv
SYNTH_ARGS = ["--subjects", "80", "--videos-per-subject", "16", "--frames-per-video", "16", "--size", "640x360",
              "--seed", "0", "--workers", "2"]
TRAIN_ARGS = ["--preset", "demo", "--device", "cpu"]
TRAIN_ENV = {"OMP_NUM_THREADS": "2"}
THRESHOLD = 0.70


def run(args: list[str], what: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one step from the repository root; a failing step fails the test with its output."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})}
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"{what} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.mark.slow
@pytest.mark.skip(reason="issue 12, open: the demo recipe's verdict is not yet measured to pass (synth of 80 "
                         "subjects + demo training); enable once docs/dfer.md records its WAR over seeds and threads")
def test_demo_preset_passes_on_synthetic_clips(tmp_path: Path) -> None:
    synth, manifest, clips = tmp_path / "synth", tmp_path / "manifest.parquet", tmp_path / "clips"
    run([*NIA, "synth", str(synth), *SYNTH_ARGS], "nia synth")
    run([*NIA, "index", str(synth), "--out", str(manifest)], "nia index")
    run([*NIA, "split", str(manifest)], "nia split")
    run([*NIA, "clips", str(manifest), str(clips), "--workers", "2"], "nia clips")
    run([sys.executable, "dfer/train.py", *TRAIN_ARGS, "--data", str(clips), "--out", str(tmp_path / "train")],
        "dfer/train.py", TRAIN_ENV)
    result = run([sys.executable, "dfer/valid_nia.py", "--data", str(synth), "--work-dir", str(tmp_path / "work"),
                  "--weights", str(tmp_path / "train" / "best.pt"), "--out", str(tmp_path / "results")],
                 "dfer/valid_nia.py")

    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert "PASS" in result.stdout and metrics["passed"] is True and metrics["value"] >= THRESHOLD
    index = pd.read_parquet(clips / "index.parquet")
    test_clips = set(index.loc[index["split"] == "test", "clip_id"])
    scored = set(pd.read_csv(tmp_path / "results" / "per_sample.csv")["name"])
    assert scored == test_clips and len(scored) >= 100 and metrics["n_skipped"] == 0  # every test clip scored
