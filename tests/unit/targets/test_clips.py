"""`nia clips` on a tiny `nia synth` set plus the videos it must not use, and its pure parts by hand."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from common.cli import main
from common.targets.clip_index import ClipIndexError, read_clip_index, video_root
from common.targets.clip_labels import ClipOptions, fixed_region, label_region, resolve_states
from common.targets.clip_probe import read_probe_cache
from common.targets.clip_rows import build_rows
from common.targets.clips import write_clip_dataset
from common.delivery.manifest import build_index, read_manifest, write_manifest
from common.delivery.splits import make_splits
from common.synth import SynthConfig, build_dataset
from common.synth.mp4 import write_mp4
from common.synth.writer import LABEL_DIR, SOURCE_DIR
from common.targets.video import read_frames

CONFIG = SynthConfig(subjects=3, seed=3, videos_per_subject=2, frames_per_video=16, size=(160, 90), devices=("S",))
PHONE = "1.스마트폰"
EXTRA = "NIA22EYE_S1_009_T1_S0{}_S_rgb_{}_D_T"  # scenario, state
FIXED = EXTRA.format(1, "F")         # a good mp4 without JSON or frame labels: label from its name, fixed region
SHORT = EXTRA.format(2, "S")         # 10 frames
EMPTY = EXTRA.format(3, "A")         # 0 bytes
TEXT = EXTRA.format(4, "N")          # not an mp4
BROKEN = EXTRA.format(5, "D")        # its JSON does not parse: the manifest row is invalid
NO_NAME = "not_a_nia_name"           # no JSON and no name fields: no state


def _sources(root: Path) -> Path:
    return root / SOURCE_DIR / PHONE


def _make_set(base: Path) -> tuple[Path, Path, dict]:
    """The synth set with the extra videos, indexed and split; one synth video's JSON says another state,
    another synth video has its split removed. Returns (root, manifest, facts)."""
    root = base / "synth"
    build_dataset(root, CONFIG, workers=1)
    src, lab = _sources(root), root / LABEL_DIR / PHONE
    synth_mp4s = sorted(src.glob("*.mp4"))
    good = synth_mp4s[0]
    for stem in (FIXED, BROKEN, NO_NAME):
        shutil.copy(good, src / f"{stem}.mp4")
    frames = read_frames(good, range(10))[..., ::-1]
    write_mp4(src / f"{SHORT}.mp4", list(frames), 30.0)
    (src / f"{EMPTY}.mp4").write_bytes(b"")
    (src / f"{TEXT}.mp4").write_bytes(b"this is not a video\n" * 50)
    (lab / f"{BROKEN}.json").write_text("{broken", encoding="utf-8")
    relabelled = synth_mp4s[1].stem
    label_path = lab / f"{relabelled}.json"
    label = json.loads(label_path.read_text(encoding="utf-8"))
    name_state = relabelled.split("_")[7]
    json_state = "N" if name_state != "N" else "F"
    label["Annotations"]["condition"] = json_state
    label_path.write_text(json.dumps(label), encoding="utf-8")
    manifest = base / "manifest.parquet"
    build_index(root, manifest, workers=1)
    df, _ = read_manifest(manifest)
    df["split"] = make_splits(df, seed=0).split
    unsplit = synth_mp4s[2].stem
    df.loc[df["video_stem"] == unsplit, "split"] = None
    write_manifest(df, manifest, root)
    return root, manifest, {"relabelled": (relabelled, name_state, json_state), "unsplit": unsplit,
                            "synth": [p.stem for p in synth_mp4s]}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    base = tmp_path_factory.mktemp("clips")
    root, manifest, facts = _make_set(base)
    df, _ = read_manifest(manifest)
    summary = write_clip_dataset(df, root, base / "clips", workers=1, manifest_sha256="ab" * 32, progress=False)
    index = pd.read_parquet(base / "clips" / "index.parquet").set_index("clip_id")
    return {"base": base, "root": root, "manifest": manifest, "facts": facts, "summary": summary, "index": index,
            "df": df}


def test_every_video_is_in_the_index_with_its_reason(made):
    index = made["index"]
    assert len(index) == 6 + 6  # the synth clips and the extra videos: nothing dropped
    reasons = index["reason"].to_dict()
    assert reasons[SHORT] == "too_short" and index.loc[SHORT, "n_frames"] == 10
    assert reasons[EMPTY] == "unreadable" and "empty file (0 bytes)" in index.loc[EMPTY, "error"]
    assert reasons[TEXT] == "unreadable" and "cannot open it as a video" in index.loc[TEXT, "error"]
    assert reasons[NO_NAME] == "no_state" and index.loc[NO_NAME, "label_source"] == ""
    assert reasons[BROKEN] == "invalid_row" and index.loc[BROKEN, "state"] == "D"
    assert index.loc[BROKEN, "label_source"] == "name" and "JSON" in index.loc[BROKEN, "error"]
    assert reasons[made["facts"]["unsplit"]] == "no_split"
    usable = set(index.index[index["usable"]])
    assert usable == set(made["facts"]["synth"]) - {made["facts"]["unsplit"]} | {FIXED}
    assert (index.loc[list(usable), "reason"] == "").all()
    summary = made["summary"]
    assert summary["videos"] == 12 and summary["usable"] == 6
    assert summary["unusable"] == {"unreadable": 2, "too_short": 1, "no_state": 1, "invalid_row": 1, "no_split": 1}
    assert sum(s["usable"] for s in summary["by_split"].values()) == 6
    assert summary["videos_probed"] == 12 and summary["videos_reused"] == 0


def test_labels_come_from_the_json_and_a_disagreeing_name_is_flagged(made):
    index = made["index"]
    stem, name_state, json_state = made["facts"]["relabelled"]
    row = index.loc[stem]
    assert (row["state"], row["label_source"], row["label_mismatch"]) == (
        json_state, "json", f"name {name_state}, json {json_state}")
    others = index.loc[[s for s in made["facts"]["synth"] if s != stem]]
    assert (others["label_source"] == "json").all() and (others["label_mismatch"] == "").all()
    assert (others["state"] == [s.split("_")[7] for s in others.index]).all()
    assert index.loc[FIXED, "state"] == "F" and index.loc[FIXED, "label_source"] == "name"
    assert made["summary"]["label_mismatches"] == 1


def test_splits_frame_counts_and_columns_follow_the_manifest(made):
    index, df = made["index"], made["df"]
    videos = df[df["kind"] == "video"].set_index("sample_id")
    for stem in made["facts"]["synth"]:
        assert index.loc[stem, "split"] == (videos.loc[stem, "split"] or None)
        assert index.loc[stem, "n_frames"] == 16 and index.loc[stem, "header_frames"] == 16
        assert index.loc[stem, "video_path"] == videos.loc[stem, "video_path"]
        assert index.loc[stem, ["subject", "inst", "image"]].tolist() == [stem.split("_")[2], "S", stem.split("_")[6]]
    meta = pq.read_schema(made["base"] / "clips" / "index.parquet").metadata
    assert meta[b"nia.root"].decode() == str(made["root"].resolve())
    assert meta[b"nia.manifest_sha256"] == b"ab" * 32
    assert json.loads(meta[b"nia.clip_options"]) == {"min_frames": 16, "face_scale": 2.5, "face_shift": 0.15}
    assert json.loads(meta[b"nia.clips_summary"]) == made["summary"]


def test_regions_from_labels_hold_every_eye_centre_and_are_squares_inside_the_frame(made):
    index, df = made["index"], made["df"]
    frames = df[df["kind"] == "frame"]
    for stem in made["facts"]["synth"]:
        row = index.loc[stem]
        x0, y0, x1, y1 = (int(row[k]) for k in ("x0", "y0", "x1", "y1"))
        assert row["region_source"] == "labels" and row["label_frames"] == 16
        assert x1 - x0 == y1 - y0 and 0 <= x0 and 0 <= y0 and x1 <= 160 and y1 <= 90
        mine = frames[frames["video_stem"] == stem]
        for side in "rl":
            assert mine[f"{side}_center_x"].between(x0, x1).all() and mine[f"{side}_center_y"].between(y0, y1).all()
    assert index.loc[FIXED, ["x0", "y0", "x1", "y1"]].tolist() == [35, 0, 125, 90]  # centred 90x90 of 160x90
    assert index.loc[FIXED, "region_source"] == "fixed" and index.loc[FIXED, "label_frames"] == 0
    assert pd.isna(index.loc[EMPTY, "x0"]) and index.loc[EMPTY, "region_source"] == ""


def test_label_region_by_hand():
    box = {"xmin": 100.0, "xmax": 160.0, "ymin": 200.0, "ymax": 204.0, "iod": 60.0}
    # side = 60 + 1.5 * 60 = 150; centre (130, 202 + 0.15 * 150 = 224.5); top-left (55, 149.5 -> 150)
    assert label_region(box, 1920, 1080, ClipOptions()) == (55, 150, 205, 300)
    # near the left edge: moved inside the frame, same size
    assert label_region({**box, "xmin": 0.0, "xmax": 60.0}, 1920, 1080, ClipOptions()) == (0, 150, 150, 300)
    # a face larger than the frame: the frame's shorter side (120), centre (130, 102 + 18), moved inside
    low = {**box, "ymin": 100.0, "ymax": 104.0}
    assert label_region(low, 320, 120, ClipOptions()) == (70, 0, 190, 120)
    # the eyes outside the frame or no eye distance: no region from labels
    assert label_region(box, 100, 1080, ClipOptions()) is None
    assert label_region({**box, "iod": 0.0}, 1920, 1080, ClipOptions()) is None
    assert fixed_region(1920, 1080) == (420, 0, 1500, 1080) and fixed_region(90, 160) == (0, 35, 90, 125)


def test_resolve_states_by_hand():
    videos = pd.DataFrame({
        "json_path": ["a.json", "b.json", None, None, "e.json"],
        "condition": ["F", "S", None, None, "X"],
        "state": ["F", "D", "A", None, "N"],
    })
    got = resolve_states(videos)
    assert got["state"].tolist() == ["F", "S", "A", None, "N"]
    assert got["label_source"].tolist() == ["json", "json", "name", "", "name"]
    assert got["label_mismatch"].tolist() == ["", "name D, json S", "", "", ""]


def test_read_clip_index_gives_a_splits_usable_rows_and_its_skips(made):
    clips = made["base"] / "clips"
    index = made["index"]
    for split in ("train", "val", "test"):
        got = read_clip_index(clips, split)
        expected = index[(index["split"] == split) & index["usable"]]
        assert sorted(got.rows["clip_id"]) == sorted(expected.index)
        bad = index[(index["split"] == split) & ~index["usable"]]["reason"].value_counts().to_dict()
        assert got.skipped == bad
    assert sum(len(read_clip_index(clips, s).rows) for s in ("train", "val", "test")) == 6
    with pytest.raises(ClipIndexError, match=r"nowhere/index.parquet: no clip index \(run nia clips MANIFEST"):
        read_clip_index(made["base"] / "nowhere", "test")


def test_video_root_is_the_override_else_the_stored_root(made, tmp_path):
    clips = made["base"] / "clips"
    assert video_root(clips) == made["root"].resolve()
    assert video_root(clips, made["root"]) == made["root"]
    with pytest.raises(ClipIndexError) as caught:  # a wrong override is not replaced by the stored root
        video_root(clips, tmp_path / "moved")
    assert str(caught.value) == (f"{clips / 'index.parquet'}: cannot find the videos: tried the given video root "
                                 f"{tmp_path / 'moved'} (no such folder)")
    moved = made["base"] / "copy"
    shutil.copytree(clips, moved)
    stored = pq.read_table(moved / "index.parquet")
    meta = {**stored.schema.metadata, b"nia.root": str(tmp_path).encode()}
    pq.write_table(stored.replace_schema_metadata(meta), moved / "index.parquet")
    with pytest.raises(ClipIndexError, match=rf"nia.root of the clip index {tmp_path} \(lacks .*\); pass the folder"):
        video_root(moved)
    assert video_root(moved, made["root"]) == made["root"]


def test_a_rerun_reads_only_changed_mp4s_and_reflects_manifest_and_option_changes(made, tmp_path):
    root = tmp_path / "synth"
    shutil.copytree(made["root"], root)
    df = made["df"].copy()
    manifest = tmp_path / "manifest.parquet"
    write_manifest(df, manifest, root)
    out = tmp_path / "clips"
    write_clip_dataset(df, root, out, progress=False)
    again = write_clip_dataset(df, root, out, progress=False)
    assert (again["videos_probed"], again["videos_reused"]) == (0, 12)
    assert again["by_split"] == made["summary"]["by_split"]
    stem = made["facts"]["synth"][0]
    mp4 = _sources(root) / f"{stem}.mp4"
    st = mp4.stat()
    os.utime(mp4, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    df.loc[df["sample_id"] == FIXED, "split"] = None
    third = write_clip_dataset(df, root, out, progress=False)
    assert (third["videos_probed"], third["videos_reused"]) == (1, 11)
    index = pd.read_parquet(out / "index.parquet").set_index("clip_id")
    assert index.loc[FIXED, "reason"] == "no_split"
    strict = write_clip_dataset(df, root, out, options=ClipOptions(min_frames=17), progress=False)
    assert strict["usable"] == 0 and strict["videos_probed"] == 0


def test_a_killed_run_resumes_from_its_journal(made, tmp_path):
    out = tmp_path / "clips"
    out.mkdir()
    first = json.loads((made["base"] / "clips" / "probe_cache.jsonl").read_text().splitlines()[0])
    half = json.dumps({**first, "n_frames": 99})
    (out / "probe_cache.jsonl").write_text(json.dumps(first) + "\n" + half[: len(half) // 2], encoding="utf-8")
    assert len(read_probe_cache(out / "probe_cache.jsonl")) == 1  # the cut line is ignored
    summary = write_clip_dataset(made["df"], made["root"], out, progress=False)
    assert (summary["videos_probed"], summary["videos_reused"]) == (11, 1)
    lines = (out / "probe_cache.jsonl").read_text().splitlines()
    assert len(lines) == 12  # compacted: one line per mp4 (the cut one gone), the 0-byte and text ones too
    index = pd.read_parquet(out / "index.parquet")
    assert index.equals(pd.read_parquet(made["base"] / "clips" / "index.parquet"))


def test_two_workers_give_the_same_index(made, tmp_path):
    write_clip_dataset(made["df"], made["root"], tmp_path / "clips", workers=2, chunk_size=3, progress=False)
    assert pd.read_parquet(tmp_path / "clips" / "index.parquet").equals(
        pd.read_parquet(made["base"] / "clips" / "index.parquet"))


def test_cli_prints_the_summary_and_refuses_a_manifest_without_splits(made, tmp_path):
    result = CliRunner().invoke(main, ["clips", str(made["manifest"]), str(tmp_path / "clips"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "clips: 6 usable of 12 videos (12 read, 0 unchanged since the last run)" in result.output
    assert "skipped, unreadable: 2" in result.output and "skipped, no_split: 1" in result.output
    summary = json.loads((tmp_path / "clips" / "clips_summary.json").read_text())
    assert summary["manifest_sha256"] == __import__("hashlib").sha256(made["manifest"].read_bytes()).hexdigest()
    df, root = read_manifest(made["manifest"])
    bare = tmp_path / "bare.parquet"
    write_manifest(df.drop(columns=["split"]), bare, root)
    result = CliRunner().invoke(main, ["clips", str(bare), str(tmp_path / "clips2")])
    assert result.exit_code == 1
    assert f"{bare}: no column 'split': run nia split first" in result.output


def test_a_stream_shorter_than_its_header_is_unreadable_and_counted_frames_decide_too_short():
    df = pd.DataFrame({
        "sample_id": ["a", "b"], "kind": ["video", "video"], "video_path": ["a.mp4", "b.mp4"],
        "video_stem": ["a", "b"], "json_path": [None, None], "condition": [None, None], "state": ["F", "S"],
        "valid": [True, True], "error": ["", ""], "split": ["test", "test"],
    })
    records = {
        "a.mp4": {"video_path": "a.mp4", "n_frames": 40, "header_frames": 48, "width": 64, "height": 48, "error": ""},
        "b.mp4": {"video_path": "b.mp4", "n_frames": 15, "header_frames": 0, "width": 64, "height": 48, "error": ""},
    }
    index = build_rows(df, records, ClipOptions()).set_index("clip_id")
    assert index.loc["a", "reason"] == "unreadable"
    assert index.loc["a", "error"] == ("a.mp4: the stream yields 40 frames but the header declares 48 "
                                       "(truncated or damaged)")
    assert index.loc["b", "reason"] == "too_short"  # a header without a count (0) is no objection
    assert index.loc["b", ["x0", "y0", "x1", "y1"]].tolist() == [8, 0, 56, 48]
    assert build_rows(df, records, ClipOptions(min_frames=15)).set_index("clip_id").loc["b", "usable"]
