"""Determinism: the same inputs and seed give the same files, in separate processes with different hash seeds.

* data: ``nia synth`` -> ``nia index`` -> ``nia split`` -> ``nia crops``, run twice from scratch: the same
  synthetic tree byte for byte, the same manifest (less file times), the same split hash and lists, the same
  crops byte for byte;
* each test (L2CS-Net, RIT-Net, Former-DFER): the same tiny training twice gives the same weights files
  byte for byte; two validation runs on the CPU give identical metrics.json values (less run id, times)
  and a byte-identical per_sample.csv (and RIT-Net's overlays).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.hostile_env import REPO, env

pytestmark = pytest.mark.slow

SYNTH = ["--subjects", "3", "--videos-per-subject", "1", "--frames-per-video", "16", "--size", "320x180",
         "--devices", "S", "--workers", "1"]
VARYING = {"run_id", "start_time", "end_time", "command"}  # differ by design (the command names its --out)


def nia(*args: str | Path, hash_seed: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "common", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env={**env(), "PYTHONHASHSEED": hash_seed}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def digest(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}


@pytest.fixture(scope="module")
def two_data_runs(tmp_path_factory) -> list[Path]:
    runs = []
    for k, hash_seed in enumerate(("1", "2")):
        base = tmp_path_factory.mktemp(f"data{k}")
        nia("synth", base / "synth", *SYNTH, "--seed", "7", hash_seed=hash_seed)
        nia("index", base / "synth", "--out", base / "manifest.parquet", "--workers", "2", hash_seed=hash_seed)
        nia("split", base / "manifest.parquet", "--seed", "3", "--ratios", "34,33,33", hash_seed=hash_seed)
        nia("crops", base / "manifest.parquet", base / "crops", "--workers", "2", "--chunk-size", "5",
            hash_seed=hash_seed)
        runs.append(base)
    return runs


def test_same_seed_same_synthetic_dataset(two_data_runs: list[Path]) -> None:
    first, second = (digest(base / "synth") for base in two_data_runs)
    assert first == second and len(first) > 50


def test_same_seed_same_manifest_and_split(two_data_runs: list[Path]) -> None:
    from common.delivery.manifest import read_manifest

    frames = []
    for base in two_data_runs:
        df = read_manifest(base / "manifest.parquet")[0]
        frames.append(df.drop(columns=[c for c in df.columns if c.endswith("_mtime_ns")]))
    pd.testing.assert_frame_equal(*frames)
    assert set(frames[0]["split"].dropna()) == {"train", "val", "test"} and frames[0]["split"].notna().sum() == 51
    first, second = (digest(base / "splits") for base in two_data_runs)
    assert first == second
    summaries = [json.loads((base / "splits" / "summary.json").read_text()) for base in two_data_runs]
    assert summaries[0]["sha256"] == summaries[1]["sha256"]


def test_same_manifest_same_crops(two_data_runs: list[Path]) -> None:
    skip = ("index.parquet", "crops_summary.json")  # hold the PNGs' mtimes and the manifest hash (its mtimes)
    first, second = (digest(base / "crops", skip) for base in two_data_runs)
    assert first == second and len(first) == 1 + 3 * 3 * 48  # crops_skipped.csv, 3 files per crop, 3 crops a frame
    indexes = [pd.read_parquet(base / "crops" / "index.parquet").drop(columns=["input_sha256"])
               for base in two_data_runs]
    pd.testing.assert_frame_equal(*indexes)


# --- the three tests: training and validation --------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """A test's tiny training (seconds on 2 cores), its validation entry point and the fixture with its data."""

    train: str
    train_args: list[str]
    valid: str
    valid_args: list[str]
    data: str


COMMON = ["--workers", "0", "--device", "cpu", "--seed", "5", "--epochs", "2"]
TESTS = {
    "l2cs": Entry("l2cs/train.py", ["--preset", "demo", "--base-width", "8", "--input-size", "64x32", "--batch-size", "8",
                                   *COMMON], "l2cs/run_valid_l2cs.py", ["--batch-size", "5"], "l2cs_data"),
    "ritnet": Entry("ritnet/train.py", ["--preset", "demo", "--channels", "4", "--input-size", "32x16", "--batch-size",
                                       "8", *COMMON], "ritnet/test.py", ["--batch-size", "5"], "rit_data"),
    "dfer": Entry("dfer/train.py", ["--preset", "demo", "--base-width", "8", "--segments", "2", "--input-size", "32",
                                   "--batch-size", "4", *COMMON], "dfer/valid_nia.py", ["--batch-size", "3"],
                 "dfer_data"),
}


@pytest.fixture(scope="module")
def l2cs_data(tmp_path_factory) -> Path:
    from tests.l2cs_fakes import make_fake_crops

    return make_fake_crops(tmp_path_factory.mktemp("crops"), {"train": 16, "val": 8, "test": 16}, width=64, height=32)


@pytest.fixture(scope="module")
def rit_data(tmp_path_factory) -> Path:
    from tests.rit_fakes import make_seg_crops

    return make_seg_crops(tmp_path_factory.mktemp("rit-crops"), {"train": 8, "val": 4, "test": 8})


@pytest.fixture(scope="module")
def dfer_data(tmp_path_factory) -> Path:
    from tests.dfer_fakes import balanced_clips, write_clip_set

    return write_clip_set(tmp_path_factory.mktemp("dfer-clips"), balanced_clips({"train": 8, "val": 5, "test": 7}))


@pytest.fixture(scope="module", params=sorted(TESTS))
def two_trainings(request: pytest.FixtureRequest, tmp_path_factory) -> tuple[str, Path, list[Path]]:
    """(test, its data, the OUT of two trainings in separate processes with other hash seeds)."""
    test = TESTS[request.param]
    data = request.getfixturevalue(test.data)
    runs = []
    for k, hash_seed in enumerate(("1", "2")):
        out = tmp_path_factory.mktemp(f"{request.param}-train{k}")
        done = subprocess.run([sys.executable, str(REPO / test.train), "--data", str(data), "--out", str(out),
                               *test.train_args], cwd=REPO, capture_output=True, text=True, timeout=600,
                              env={**env(), "PYTHONHASHSEED": hash_seed})
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(out)
    return request.param, data, runs


def test_same_seed_same_weights(two_trainings: tuple[str, Path, list[Path]]) -> None:
    """The same seed gives the same weights file, byte for byte (its hash goes into every report)."""
    _, _, runs = two_trainings
    for name in ("best.pt", "last.pt"):
        first, second = (hashlib.sha256((run / name).read_bytes()).hexdigest() for run in runs)
        assert first == second, name


def _plain(metrics: dict) -> dict:
    """metrics.json less what differs between two runs by design (run id, start and end times)."""
    if isinstance(metrics, dict):
        return {k: _plain(v) for k, v in metrics.items() if k not in VARYING}
    if isinstance(metrics, list):
        return [_plain(v) for v in metrics]
    return metrics


def test_two_cpu_validations_are_identical(two_trainings: tuple[str, Path, list[Path]], tmp_path: Path) -> None:
    """Two runs with 2 loader workers and torch on every core give the same numbers, byte for byte."""
    name, data, runs = two_trainings
    test = TESTS[name]
    results = []
    default_threads = {k: v for k, v in env().items() if k != "OMP_NUM_THREADS"}  # torch takes every core
    for k, hash_seed in enumerate(("1", "2")):
        out = tmp_path / f"res{k}"
        done = subprocess.run([sys.executable, str(REPO / test.valid), "--data", str(data),
                               "--weights", str(runs[0] / "best.pt"), "--out", str(out), "--device", "cpu",
                               "--workers", "2", *test.valid_args], cwd=REPO, capture_output=True, text=True,
                              timeout=600, env={**default_threads, "PYTHONHASHSEED": hash_seed})
        assert done.returncode in (0, 1), done.stderr[-2000:]
        results.append(out)
    first, second = (json.loads((out / "metrics.json").read_text()) for out in results)
    first_csv, second_csv = ((out / "per_sample.csv").read_bytes() for out in results)
    assert first_csv == second_csv and first_csv.count(b"\n") == 1 + first["n_samples"] > 4
    assert first["run_id"] != second["run_id"]
    assert _plain(first) == _plain(second)
    assert digest(results[0], ("metrics.json",)) == digest(results[1], ("metrics.json",))  # RIT-Net's overlays too
