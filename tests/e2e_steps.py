"""The steps of the end-to-end tests (`tests/e2e/test_*_e2e.py`), each through its real command.

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


def makefile_value(name: str) -> str:
    """The Makefile's `NAME ?= value` (its demo recipe), so a test runs what `make` runs."""
    line = re.search(rf"^{name} \?= (.+)$", (REPO / "Makefile").read_text(), re.M)
    assert line is not None, f"Makefile: {name} is gone"
    return line.group(1).strip()


def crops_synth_args() -> list[str]:
    """`nia synth` options of the Makefile's demo crops (DEMO_SUBJECTS, DEMO_SYNTH_ARGS; docs/synthetic.md)."""
    return ["--subjects", makefile_value("DEMO_SUBJECTS"), *makefile_value("DEMO_SYNTH_ARGS").split(),
            "--workers", "2"]


def dfer_synth_args() -> list[str]:
    """`nia synth` options of the Makefile's demo videos (DFER_SYNTH_ARGS; docs/dfer.md, "Demo recipe")."""
    return [*makefile_value("DFER_SYNTH_ARGS").split(), "--workers", "2"]


def demo_train(script: str, *args: str) -> list[str]:
    """A demo training command as `make` runs it: behind the Makefile's DEMO_TRAIN_ENV (common.pinned_env)."""
    prefix = makefile_value("DEMO_TRAIN_ENV").replace("$(PY)", sys.executable).split()
    return [*prefix, sys.executable, script, *args]


def run(args: list[str], what: str) -> subprocess.CompletedProcess:
    """Run one step from the repository root; a failing step fails the test with its output."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
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
