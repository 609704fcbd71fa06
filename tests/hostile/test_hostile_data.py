"""Hostile labels, PNGs and mp4s inside one otherwise good delivery (tests/hostile_corpus.py).

One tree holds 12 good frames and every bad file of the corpus, each under a
valid NIA name. `nia index`, `nia crops` and `nia clips` run over it once,
as a user runs them, and must finish (exit 0), keep every good sample, and
record each bad file on one line that names it (and the field), counted
under its reason.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SOURCE_DIR, LABEL_DIR, frame_label, png_bytes, video_stem, write_tree
from tests.hostile_corpus import FRAME, LABELS, PNGS, VIDEOS, Case, coded_frames
from tests.hostile_env import Outcome, run_nia

N_GOOD_FRAMES = 12


def _frame_stem(subject: int) -> str:
    return f"{video_stem(f'{subject:03d}', 10, 'S', 'rgb', 'F', 'D')}_0"


def _write_frame(root: Path, subject: int, label: bytes, image: bytes) -> tuple[str, str, str]:
    stem = _frame_stem(subject)
    src, lab = root / SOURCE_DIR / "TS_S" / f"{subject:03d}", root / LABEL_DIR / "TL_S" / f"{subject:03d}"
    src.mkdir(parents=True, exist_ok=True)
    lab.mkdir(parents=True, exist_ok=True)
    (src / f"{stem}.png").write_bytes(image)
    (lab / f"{stem}.json").write_bytes(label)
    return stem, (src / f"{stem}.png").relative_to(root).as_posix(), (lab / f"{stem}.json").relative_to(root).as_posix()


def _good_label(subject: int) -> dict:
    stem = _frame_stem(subject)
    return frame_label(stem, f"{subject:03d}", "S", "rgb", "F", "D", 0, (900.0, 500.0))


def _build(root: Path) -> dict[str, dict]:
    write_tree(root, n_subjects=2, videos_per_subject=2, frames_per_video=3, with_mp4=False, with_video_json=False)
    placed: dict[str, dict] = {}
    good_png = png_bytes(*FRAME)
    for i, case in enumerate(LABELS):
        stem, png_rel, json_rel = _write_frame(root, 100 + i, case.make(_good_label(100 + i)), good_png)
        placed[case.id] = {"stem": stem, "file": json_rel}
    for i, case in enumerate(PNGS):
        label = json.dumps(_good_label(200 + i)).encode()
        stem, png_rel, _ = _write_frame(root, 200 + i, label, case.make(good_png))
        placed[case.id] = {"stem": stem, "file": png_rel}
    videos = root / SOURCE_DIR / "TS_S" / "300"
    videos.mkdir(parents=True)
    for i, case in enumerate(VIDEOS):
        stem = video_stem(f"{300 + i:03d}", 20, "S", "rgb", "F", "D")
        case.make(videos / f"{stem}.mp4")
        placed[case.id] = {"stem": stem, "file": (videos / f"{stem}.mp4").relative_to(root).as_posix()}
    from common.synth.mp4 import write_mp4

    write_mp4(videos / f"{video_stem('399', 20, 'S', 'rgb', 'F', 'D')}.mp4", coded_frames(20), 30.0)  # a good one
    return placed


@pytest.fixture(scope="module")
def delivery(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("hostile")
    root = base / "nia"
    placed = _build(root)
    return {"base": base, "root": root, "placed": placed}


@pytest.fixture(scope="module")
def indexed(delivery: dict) -> dict:
    outcome = run_nia("index", delivery["root"], "--out", delivery["base"] / "manifest.parquet", "--workers", "1")
    from common.delivery.manifest import read_manifest

    df, _ = read_manifest(delivery["base"] / "manifest.parquet")
    return {**delivery, "index": outcome, "df": df.set_index("sample_id", drop=False)}


def test_index_goes_on_and_counts_every_bad_label_and_png(indexed: dict) -> None:
    outcome: Outcome = indexed["index"]
    assert outcome.code == 0, outcome.err
    df = indexed["df"]
    frames = df[df["kind"] == "frame"]
    bad = [c for c in LABELS + PNGS if c.id != "png_damaged_pixels"]  # its header is sound: only decoding finds it
    assert (~frames["valid"]).sum() == len(bad)
    assert frames["valid"].sum() == N_GOOD_FRAMES + 1


@pytest.mark.parametrize("case", LABELS + [c for c in PNGS if c.id != "png_damaged_pixels"], ids=lambda c: c.id)
def test_bad_label_or_png_is_one_line_naming_file_and_field(indexed: dict, case: Case) -> None:
    """The manifest's error column: one line, the file, the JSON path or check, what was wrong."""
    placed = indexed["placed"][case.id]
    row = indexed["df"].loc[placed["stem"]]
    assert not row["valid"]
    error = row["error"]
    assert "\n" not in error
    for part in case.expected(placed["file"]):
        assert part in error, (part, error)


@pytest.fixture(scope="module")
def cropped(indexed: dict) -> dict:
    out = indexed["base"] / "crops"
    outcome = run_nia("crops", indexed["base"] / "manifest.parquet", out, "--split-column", "none", "--workers", "1")
    skipped = pd.read_csv(out / "crops_skipped.csv", keep_default_na=False)
    return {**indexed, "crops": outcome, "skipped": skipped, "summary": json.loads((out / "crops_summary.json").read_text())}


def test_crops_go_on_and_count_every_bad_frame(cropped: dict) -> None:
    outcome: Outcome = cropped["crops"]
    assert outcome.code == 0, outcome.err
    summary = cropped["summary"]
    assert summary["crops_in_index"] == 3 * N_GOOD_FRAMES  # every good frame: two-eye crop and both eyes
    assert summary["rows_skipped"]["invalid label (see the error column)"] == len(LABELS) - 1  # outside image: image
    listed = set(cropped["skipped"]["png_path"])
    for case in PNGS:
        assert cropped["placed"][case.id]["file"] in listed, case.id


@pytest.mark.parametrize("case", PNGS, ids=lambda c: c.id)
def test_bad_png_is_listed_on_one_line_by_crops(cropped: dict, case: Case) -> None:
    file = cropped["placed"][case.id]["file"]
    rows = cropped["skipped"][cropped["skipped"]["png_path"] == file]
    assert len(rows) >= 1
    reason = rows["reason"].iloc[0]
    assert "\n" not in reason
    for part in case.expected(file):
        assert part in reason, (part, reason)
    if case.id == "png_damaged_pixels":  # found only when decoding: named on stderr too, on one line
        assert len(cropped["crops"].lines_naming(file)) == 1


@pytest.fixture(scope="module")
def clipped(indexed: dict) -> dict:
    manifest = indexed["base"] / "manifest.parquet"
    split = run_nia("split", manifest, "--seed", "0")
    assert split.code == 0, split.err
    out = indexed["base"] / "clips"
    outcome = run_nia("clips", manifest, out, "--workers", "1")
    index = pd.read_parquet(out / "index.parquet").set_index("clip_id")
    return {**indexed, "clips": outcome, "clip_index": index,
            "summary": json.loads((out / "clips_summary.json").read_text())}


def test_clips_go_on_and_count_every_bad_video(clipped: dict) -> None:
    assert clipped["clips"].code == 0, clipped["clips"].err
    unusable = clipped["summary"]["unusable"]
    assert unusable == {"too_short": 1, "unreadable": 3}
    assert clipped["summary"]["usable"] == 3  # the good video, the variable-frame-rate one and the rotated one
    assert clipped["summary"]["videos_rotated"] == [clipped["placed"]["mp4_rotated"]["file"]]
    assert "warning: 1 video(s) tagged with a rotation, read as stored" in clipped["clips"].err


@pytest.mark.parametrize("case", VIDEOS, ids=lambda c: c.id)
def test_bad_video_is_one_line_in_the_clip_index(clipped: dict, case: Case) -> None:
    placed = clipped["placed"][case.id]
    row = clipped["clip_index"].loc[placed["stem"]]
    line = f"{row['reason'] or 'usable'}, {row['n_frames']} frames, {row['width']}x{row['height']}, {row['error']}"
    assert "\n" not in line
    for part in case.expected(placed["file"]):
        assert part in line, (part, line)
