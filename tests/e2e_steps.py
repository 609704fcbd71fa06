"""The steps of the end-to-end tests (`tests/test_*_e2e.py`), each through its real command.

Each step is a subprocess from the repository root, as a user types it; a
failing step fails the test with its output. `synthetic_dataset` is the
shared head of every chain: `nia synth` -> index -> split -> crops or clips.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NIA = [str(Path(sys.executable).with_name("nia"))]  # the console script of this venv
# the demo crops (docs/synthetic.md, "Demo recipe"; the Makefile's demo data): the smallest size
# at which l2cs and ritnet demo training still pass with a margin
CROPS_SYNTH_ARGS = ["--subjects", "30", "--videos-per-subject", "8", "--frames-per-video", "16",
                    "--size", "640x360", "--seed", "0", "--workers", "2"]


def demo_train_env() -> dict[str, str]:
    """The Makefile's DEMO_TRAIN_ENV (fixed threads and CPU kernels), so a test trains as `make` does."""
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


def synthetic_dataset(folder: Path, synth_args: list[str], command: str) -> Path:
    """`nia synth` into FOLDER/synth, index and split it, then `nia COMMAND` (crops or clips) into FOLDER/COMMAND."""
    synth, manifest, dataset = folder / "synth", folder / "manifest.parquet", folder / command
    run([*NIA, "synth", str(synth), *synth_args], "nia synth")
    run([*NIA, "index", str(synth), "--out", str(manifest)], "nia index")
    run([*NIA, "split", str(manifest)], "nia split")
    run([*NIA, command, str(manifest), str(dataset), "--workers", "2"], f"nia {command}")
    return dataset
