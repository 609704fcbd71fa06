"""The Makefile's demo data puts at least 20 people in every test split (issue 18).

A percentile bootstrap over 3 subjects has 10 distinct resamples, so a demo
verdict's "95 % CI" needs more people than that. Rendering the demo sets
takes minutes, so the split is computed from what `nia synth` would write:
its clip plan (`SynthConfig.videos`: person, display, state, frames) as the
manifest rows `nia split` reads. That this plan is the manifest `nia index`
builds is checked on a tiny rendered set.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from common.cli.synth_cmds import _devices, synth
from common.delivery.splits import make_splits
from common.synth.writer import SynthConfig
from tests.e2e_steps import crops_synth_args, dfer_synth_args, run

MIN_TEST_SUBJECTS = 20


def synth_config(args: list[str]) -> SynthConfig:
    """The SynthConfig `nia synth ARGS` writes (its own option parsing and defaults)."""
    p = synth.make_context("nia synth", ["OUT", *args]).params
    return SynthConfig(subjects=p["subjects"], seed=p["seed"], videos_per_subject=p["videos_per_subject"],
                       frames_per_video=p["frames_per_video"], devices=_devices(p["devices"]))


def planned_manifest(config: SynthConfig) -> pd.DataFrame:
    """The rows of `nia index`'s manifest that `nia split` reads, one per clip and frame the config writes."""
    rows = []
    for subject in range(config.subjects):
        for video in config.videos(subject):
            meta = {"metaid": video.subject.metaid, "subject": video.subject.metaid, "video_stem": video.stem,
                    "inst": video.device, "condition": video.state, "valid": True}
            rows.append({**meta, "kind": "video", "sample_id": video.stem})
            rows += [{**meta, "kind": "frame", "sample_id": video.frame_name(f)} for f in range(video.n_frames)]
    return pd.DataFrame(rows)


def subjects_per_split(manifest: pd.DataFrame) -> dict[str, int]:
    split = make_splits(manifest).split
    return manifest.assign(split=split).groupby("split")["subject"].nunique().to_dict()


@pytest.mark.parametrize("which", ["crops (l2cs, rit)", "clips (dfer)"])
def test_every_demo_split_holds_enough_people(which: str) -> None:
    args = crops_synth_args() if which.startswith("crops") else dfer_synth_args()
    counts = subjects_per_split(planned_manifest(synth_config(args)))
    assert counts["test"] >= MIN_TEST_SUBJECTS and counts["val"] >= MIN_TEST_SUBJECTS, counts
    assert sum(counts.values()) == synth_config(args).subjects  # every person in exactly one split


def test_the_plan_is_the_manifest_nia_index_builds(tmp_path: Path) -> None:
    args = ["--subjects", "3", "--videos-per-subject", "2", "--frames-per-video", "16", "--size", "64x36",
            "--devices", "S,M", "--seed", "5", "--workers", "1"]
    nia = str(Path(sys.executable).with_name("nia"))
    run([nia, "synth", str(tmp_path / "synth"), *args], "nia synth")
    run([nia, "index", str(tmp_path / "synth"), "--out", str(tmp_path / "manifest.parquet")], "nia index")
    indexed = pd.read_parquet(tmp_path / "manifest.parquet")
    planned = planned_manifest(synth_config(args))
    assert make_splits(indexed).sha256 == make_splits(planned).sha256
    eligible = indexed[indexed["valid"].fillna(False).astype(bool) & indexed["kind"].isin(["frame", "video"])]
    columns = ["kind", "sample_id", "subject", "video_stem", "inst", "condition"]
    assert sorted(map(tuple, eligible[columns].to_numpy())) == sorted(map(tuple, planned[columns].to_numpy()))
