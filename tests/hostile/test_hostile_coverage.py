"""The coverage rule on every input shape (issue 19, item 1): a damaged sample of the scored split is
counted as skipped under its data reason, never dropped from the split.

One small synthetic delivery and its damaged copy (tests/hostile_corpus.py ``COVERAGE``: each case damages
one sample of the test split) are scored by the three tests on every shape of ``--data`` they accept: the
crop or clip index, the manifest and the dataset root. Score-only predictions equal to the truth make
every run a PASS, so what is compared is the count: the damaged copy's ``n_in_split`` must be the intact
copy's, and its skips exactly the cases' reasons.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import nia_ok
from tests.hostile_corpus import COVERAGE, Case, is_video_case
from tests.hostile_env import run_click

SYNTH = ["--subjects", "8", "--videos-per-subject", "3", "--frames-per-video", "16", "--size", "320x180",
         "--seed", "0", "--workers", "1"]
TESTS = {  # test -> (its entry point's module, the index shape it takes, crops per frame sample)
    "l2cs": ("l2cs.run_valid_l2cs", "crops", 1),
    "rit": ("ritnet.test", "crops", 2),
    "dfer": ("dfer.valid_nia", "clips", 0),
}
SHAPES = ("index", "manifest", "root")


def _prepared(root: Path, folder: Path) -> dict[str, Path]:
    """nia index, split, crops and clips of ``root`` under ``folder``: what each shape of --data points at."""
    manifest = folder / "manifest.parquet"
    nia_ok("index", root, "--out", manifest, "--workers", "1")
    unsplit = folder / "unsplit.parquet"
    shutil.copyfile(manifest, unsplit)  # the manifest shape: split by the entry point itself
    nia_ok("split", manifest, "--out", folder / "splits")
    nia_ok("crops", manifest, folder / "crops", "--workers", "1")
    nia_ok("clips", manifest, folder / "clips", "--workers", "1")
    return {"root": root, "manifest": unsplit, "crops": folder / "crops", "clips": folder / "clips"}


def _damage(root: Path, manifest: Path) -> dict[str, str]:
    """Apply every COVERAGE case to its own sample of the test split; returns case id -> sample id."""
    df = pd.read_parquet(manifest)
    test = df[df["split"] == "test"]
    videos = test[test["kind"] == "video"].sort_values("sample_id")
    frames = test[(test["kind"] == "frame") & (test["video_stem"] == videos["sample_id"].iloc[0])]
    frames = frames.sort_values("sample_id")
    damaged, n_frames, n_videos = {}, 0, 1
    for case in COVERAGE:
        if is_video_case(case):
            row, n_videos = videos.iloc[n_videos], n_videos + 1
        else:
            row, n_frames = frames.iloc[n_frames], n_frames + 1
        case.make(root, row)
        damaged[case.id] = row["sample_id"]
    return damaged


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("coverage")
    nia_ok("synth", base / "intact", *SYNTH)
    intact = _prepared(base / "intact", base / "intact_work")
    shutil.copytree(base / "intact", base / "damaged", symlinks=True)
    damaged_ids = _damage(base / "damaged", base / "intact_work" / "manifest.parquet")
    damaged = _prepared(base / "damaged", base / "damaged_work")
    return {"base": base, "intact": intact, "damaged": damaged, "ids": damaged_ids,
            "predictions": _truth_predictions(intact, base / "predictions"), "runs": {}}


def _truth_predictions(intact: dict[str, Path], folder: Path) -> dict[str, Path]:
    """Score-only predictions equal to the intact copy's truth: every test passes with them."""
    folder.mkdir()
    crops = pd.read_parquet(intact["crops"] / "index.parquet")
    eyes = crops[crops["crop"] == "eyes"]
    gaze = folder / "gaze.csv"
    eyes.rename(columns={"crop_id": "name", "gaze_pitch_deg": "pitch", "gaze_yaw_deg": "yaw"})[
        ["name", "pitch", "yaw"]].to_csv(gaze, index=False)
    maps = folder / "maps"
    maps.mkdir()
    for row in crops[crops["crop"] != "eyes"].itertuples():
        shutil.copy(intact["crops"] / row.png_path, maps / f"{row.crop_id}.png")
    clips = pd.read_parquet(intact["clips"] / "index.parquet")
    states = folder / "states.csv"
    clips.rename(columns={"clip_id": "name", "state": "label"})[["name", "label"]].to_csv(states, index=False)
    return {"l2cs": gaze, "rit": maps, "dfer": states}


def scored(copies: dict[str, Any], test: str, copy: str, shape: str) -> dict:
    """metrics.json of ``test`` on ``copy`` given as ``shape`` (each run once per module)."""
    key = (test, copy, shape)
    if key not in copies["runs"]:
        import importlib

        module, index_shape, _ = TESTS[test]
        data = copies[copy][index_shape if shape == "index" else shape]
        out = copies["base"] / "results" / "_".join(key)
        work = copies["base"] / "work" / f"{copy}_{shape}"  # shared by the tests: later ones resume
        outcome = run_click(importlib.import_module(module).cli,
                            ["--data", data, "--predictions", copies["predictions"][test], "--out", out,
                             "--work-dir", work, "--device", "cpu", "--workers", "0"])
        assert outcome.code == 0 and "-> PASS" in outcome.out, (key, outcome.err[-3000:])
        copies["runs"][key] = json.loads((out / "metrics.json").read_text())
    return copies["runs"][key]


def expected_skips(test: str) -> dict[str, int]:
    """The damaged copy's skips: each case's reason, once per crop the test makes of a frame, once per clip."""
    _, _, per_frame = TESTS[test]
    expected: dict[str, int] = {}
    for case in COVERAGE:
        n = (1 if test == "dfer" else 0) if is_video_case(case) else per_frame
        if n:
            expected[case.line[0]] = expected.get(case.line[0], 0) + n
    return expected


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_every_damaged_sample_of_the_split_is_counted_on_every_input_shape(copies: dict, shape: str) -> None:
    for test in TESTS:
        intact, damaged = scored(copies, test, "intact", "index"), scored(copies, test, "damaged", shape)
        assert intact["skipped"] == {} and intact["n_samples"] == intact["n_in_split"], (test, intact)
        assert damaged["n_in_split"] == intact["n_in_split"], (test, shape, damaged["skipped"])
        assert damaged["skipped"] == expected_skips(test), (test, shape)
        assert damaged["n_samples"] + damaged["n_skipped"] == damaged["n_in_split"]


@pytest.mark.slow
@pytest.mark.parametrize("case", COVERAGE, ids=lambda c: c.id)
def test_hostile_coverage(copies: dict, case: Case) -> None:
    """Each damage on its own: counted under its reason by the tests that score such a sample, given the
    dataset root (how the containers get it)."""
    for test in (("dfer",) if is_video_case(case) else ("l2cs", "rit")):
        skipped = scored(copies, test, "damaged", "root")["skipped"]
        assert skipped.get(case.line[0], 0) >= 1, (case.id, test, skipped)
