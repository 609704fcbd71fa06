"""The registry's proof (issue 20): a fourth acceptance test, declared by one registry entry in its own folder
(tests/fourth_test: a tiny blink detector, a linear layer over eight eye-openness readings, scored by F1),
trains, runs through its entry point, and is filed by `nia report` and `nia suite table` like the three.

Nothing outside tests/fourth_test names it: `$NIA_TEST_PLUGINS` tells the suite's processes to import its
module, which registers it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.suite.registry import PLUGINS_ENV, REGISTRY
from tests.paths import REPO

PLUGIN = "tests.fourth_test.blink"


def _env() -> dict[str, str]:
    return {**os.environ, PLUGINS_ENV: PLUGIN, "PYTHONPATH": str(REPO), "NIA_RUN_ID": "blink-run"}


def _run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=300)


def _samples(folder: Path, n: int, seed: int, *, flipped: int = 0) -> Path:
    """n sequences of eight openness readings, every other one a blink (a dip in the middle); the truth of the
    first ``flipped`` blinks is set to 0 (label noise the detector cannot follow)."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % 2
    readings = 0.9 + 0.05 * rng.standard_normal((n, 8))
    readings[truth == 1, 2:6] -= 0.7
    truth[np.flatnonzero(truth == 1)[:flipped]] = 0
    frame = pd.DataFrame(readings, columns=[f"o{i}" for i in range(8)])
    frame.insert(0, "name", [f"seq{i:03d}" for i in range(n)])
    frame.insert(1, "subject", [f"s{i % 4}" for i in range(n)])
    frame.insert(2, "inst", "phone")
    frame["truth"] = truth
    folder.mkdir(parents=True)
    frame.to_csv(folder / "samples.csv", index=False)
    return folder


def test_the_plugin_is_not_registered_by_default() -> None:
    assert "blink" not in REGISTRY


@pytest.mark.parametrize("flipped, verdict, code", [(0, "PASS", 0), (12, "FAIL", 1)])
def test_a_fourth_test_runs_and_is_filed_like_the_three(tmp_path: Path, flipped: int, verdict: str,
                                                        code: int) -> None:
    train = _samples(tmp_path / "train", 64, seed=0)
    done = _run("tests/fourth_test/train_blink.py", "--data", train, "--out", tmp_path / "train_out")
    assert done.returncode == 0, done.stderr
    test_data = _samples(tmp_path / "test", 40, seed=1, flipped=flipped)
    results = tmp_path / "results"
    done = _run("tests/fourth_test/valid_blink.py", "--data", test_data, "--weights",
                tmp_path / "train_out" / "best.pt", "--out", results / "blink")
    assert done.returncode == code, done.stderr
    metrics = json.loads((results / "blink" / "metrics.json").read_text())
    truth = (np.arange(40) % 2).astype(bool)
    truth[np.flatnonzero(truth)[:flipped]] = False
    expected_f1 = 2 * truth.sum() / (20 + truth.sum())  # the detector finds the 20 dips, the truth has the rest
    assert (metrics["test"], metrics["metric"], metrics["verdict"]) == ("blink", "f1", verdict)
    assert metrics["value"] == pytest.approx(expected_f1)
    assert metrics["thresholds_file"] == str(REPO / "tests" / "fourth_test" / "thresholds.json")
    assert f"blink F1 {100 * expected_f1:.2f} %" in done.stdout

    done = _run("-m", "common", "report", results / "blink", "--out", results / "report", "--run-id", "blink-run")
    assert done.returncode == code, done.stderr
    report = json.loads((results / "report" / "report.json").read_text())
    (entry,) = report["tests"]
    assert (entry["test"], entry["verdict"], entry["consistent"]) == ("blink", verdict, True), entry["problems"]
    assert entry["details"]["recomputed_value"] == pytest.approx(expected_f1)
    assert entry["groups"] is None and entry["problems"] == []
    assert f"blink precision {truth.sum() / 20:.3f}, recall 1.000" in (results / "report" / "report.html").read_text()

    done = _run("-m", "common", "suite", "table", results, "--tests", "blink")
    assert done.returncode == code, done.stderr
    row = done.stdout.splitlines()[1].split()
    assert row[:4] == ["blink", verdict, f"{100 * expected_f1:.2f}", "%"]


def test_without_the_plugin_its_folder_is_refused(tmp_path: Path) -> None:
    train = _samples(tmp_path / "train", 32, seed=0)
    assert _run("tests/fourth_test/train_blink.py", "--data", train, "--out", tmp_path / "w").returncode == 0
    done = _run("tests/fourth_test/valid_blink.py", "--data", train, "--weights", tmp_path / "w" / "best.pt",
                "--out", tmp_path / "blink")
    assert done.returncode == 0, done.stderr
    env = {**_env(), PLUGINS_ENV: ""}
    done = subprocess.run([sys.executable, "-m", "common", "report", str(tmp_path / "blink"), "--out",
                           str(tmp_path / "report")], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"{tmp_path / 'blink'}: metrics.json names test \"blink\", which is not a registered acceptance test" \
        in done.stderr
