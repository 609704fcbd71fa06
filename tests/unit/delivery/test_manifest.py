"""nia index: pairing by stem in a Korean layout, nothing dropped, parallel = serial,
incremental re-index, and the manifest read/write contract."""
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import common.delivery.manifest.workers as manifest_workers
from tests.conftest import change_gaze_point
from common.cli import main
from common.delivery.manifest import (INDEX_SCHEMA, NO_JSON, NO_PNG, ManifestError, build_index, read_manifest,
                             write_manifest)


def index(root, tmp_path, **kw):
    out = tmp_path / "m.parquet"
    result = build_index(root, out, workers=kw.pop("workers", 1), **kw)
    df, stored_root = read_manifest(out)
    return result, df.set_index("sample_id", drop=False), stored_root


def test_tree_is_indexed_with_korean_paths(nia_tree, tmp_path):
    tree = nia_tree(2, videos_per_subject=2, frames_per_video=3)
    result, df, root = index(tree.root, tmp_path)
    assert root == tree.root.resolve()
    assert result.kinds == {"frame": 12, "video": 4} and result.n_invalid == 0
    assert list(df.columns) == INDEX_SCHEMA.names
    frame = df.loc[tree.frames[4]]
    assert frame["png_path"].startswith("01.데이터/1.Training/원천데이터/")
    assert frame["json_path"].startswith("01.데이터/1.Training/라벨링데이터/")
    assert (tree.root / frame["png_path"]).is_file()
    assert frame["video_stem"] == tree.videos[1] and frame["frame"] == 1
    assert df.loc[tree.videos[1], "video_path"].endswith(f"{tree.videos[1]}.mp4")
    assert frame["r_iris_cx"] == 1021.5 + 1 and frame["metaid"] == "001"
    assert list(frame["l_eyelid"][:4]) == [866.0, 291.0, 870.0, 295.0]
    assert frame["valid"] and frame["error"] == "" and frame["mismatch"] == ""
    assert df.loc[tree.videos[0], "condition"] == "F"


def test_unpaired_duplicate_invalid_and_mismatched_files_are_rows(nia_tree, tmp_path):
    tree = nia_tree(1, videos_per_subject=1, frames_per_video=4)
    paths = {p.stem + p.suffix: p for p in tree.root.rglob("*.*")}
    f0, f1, f2, f3 = tree.frames
    paths[f"{f0}.png"].unlink()
    paths[f"{f1}.json"].unlink()
    bad = json.loads(paths[f"{f2}.json"].read_text(encoding="utf-8"))
    bad["Annotations"]["annotations"][1]["rx"] = -1
    paths[f"{f2}.json"].write_text(json.dumps(bad), encoding="utf-8")
    other = json.loads(paths[f"{f3}.json"].read_text(encoding="utf-8"))
    other["Annotations"]["condition"] = "N"
    paths[f"{f3}.json"].write_text(json.dumps(other), encoding="utf-8")
    (tree.root / "copy").mkdir()
    (tree.root / "copy" / f"{f3}.json").write_text(json.dumps(other), encoding="utf-8")
    (tree.root / "notes.txt").write_text("x")
    result, df, _ = index(tree.root, tmp_path)
    assert df.loc[f0, ["kind", "valid", "error"]].tolist() == ["label_only", False, NO_PNG]
    assert df.loc[f1, ["kind", "valid", "error"]].tolist() == ["image_only", False, NO_JSON]
    assert df.loc[f2, "kind"] == "frame" and not df.loc[f2, "valid"]
    assert df.loc[f2, "error"].endswith(f"{f2}.json: Annotations.annotations[1].rx: expected a radius > 0, got -1.0")
    assert df.loc[f3, "valid"] and df.loc[f3, "mismatch"] == "state: name F, json N"
    dup = df.loc[f"{f3}#dup1"]
    assert dup["kind"] == "label_only" and not dup["valid"] and dup["error"].startswith("duplicate stem: also at")
    assert result.n_duplicates == 1 and result.ignored_files == {".txt": 1}
    n_files = sum(1 for p in tree.root.rglob("*") if p.suffix in (".png", ".json", ".mp4"))
    assert n_files == 9  # 3 PNG + 3 frame JSON + the copy + video JSON + mp4: every one is in a row
    listed = set(df["png_path"].dropna()) | set(df["json_path"].dropna()) | set(df["video_path"].dropna())
    assert len(listed) == n_files


def test_parallel_equals_serial(nia_tree, tmp_path):
    tree = nia_tree(3, videos_per_subject=2, frames_per_video=3)
    build_index(tree.root, tmp_path / "a.parquet", workers=1)
    build_index(tree.root, tmp_path / "b.parquet", workers=2, chunk=2)
    a, b = read_manifest(tmp_path / "a.parquet")[0], read_manifest(tmp_path / "b.parquet")[0]
    pd.testing.assert_frame_equal(a, b)


def test_reindex_reparses_only_changed_files_and_keeps_added_columns(nia_tree, tmp_path, monkeypatch):
    tree = nia_tree(1, videos_per_subject=2, frames_per_video=3)
    out = tmp_path / "m.parquet"
    build_index(tree.root, out, workers=1)
    df, root = read_manifest(out)
    df["split"] = "train"
    write_manifest(df, out, root)
    changed = next(tree.root.rglob(f"{tree.frames[2]}.json"))
    change_gaze_point(changed, [5, 6])
    parsed = []
    real = manifest_workers.parse_one
    monkeypatch.setattr(manifest_workers, "parse_one", lambda root, rel, *a: parsed.append(rel) or real(root, rel, *a))
    result = build_index(tree.root, out, workers=1)
    assert parsed == [changed.relative_to(tree.root).as_posix()]
    assert (result.n_parsed, result.n_reused) == (1, 7)
    df = read_manifest(out)[0].set_index("sample_id")
    assert df.loc[tree.frames[2], ["point_x", "point_y"]].tolist() == [5.0, 6.0]
    assert pd.isna(df.loc[tree.frames[2], "split"]) and df.loc[tree.frames[1], "split"] == "train"
    assert df.loc[tree.frames[1], "r_iris_cx"] == 1022.5  # reused row keeps its values


def test_write_manifest_keeps_extra_columns_and_types(nia_tree, tmp_path):
    tree = nia_tree(1, videos_per_subject=1, frames_per_video=2)
    _, df, root = index(tree.root, tmp_path)
    df = df.reset_index(drop=True)
    df["gaze_pitch_deg"] = None
    df["my_note"] = "x"
    write_manifest(df, tmp_path / "w.parquet", root)
    schema = pq.read_schema(tmp_path / "w.parquet")
    assert schema.field("gaze_pitch_deg").type == pa.float64()
    assert schema.field("my_note").type == pa.string() and schema.field("frame").type == pa.int64()
    back, back_root = read_manifest(tmp_path / "w.parquet")
    assert back_root == root and back["my_note"].tolist() == ["x"] * 3


def test_foreign_parquet_is_refused(tmp_path):
    pq.write_table(pa.table({"a": [1]}), tmp_path / "x.parquet")
    with pytest.raises(ManifestError, match="x.parquet: parquet metadata lacks 'nia.root'"):
        read_manifest(tmp_path / "x.parquet")


def test_cli_index(nia_tree, tmp_path):
    tree = nia_tree(1, videos_per_subject=1, frames_per_video=2)
    res = CliRunner().invoke(main, ["index", str(tree.root), "--out", str(tmp_path / "m.parquet"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "3 rows (2 frame, 1 video); 0 invalid; 3 labels parsed, 0 reused" in res.output
    res = CliRunner().invoke(main, ["index", str(tmp_path / "absent"), "--out", "x.parquet"])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_suite_files_are_left_out_but_counted(nia_tree, tmp_path):
    tree = nia_tree(1, videos_per_subject=1, frames_per_video=2)
    (tree.root / "device_profiles.json").write_text('{"S": {"image_size_px": [640, 360]}}', encoding="utf-8")
    (tree.root / ".nia-synth").mkdir()
    (tree.root / ".nia-synth" / "params.json").write_text("{}", encoding="utf-8")
    (tree.root / ".nia-synth" / "truth.csv").write_text("sample_id\n", encoding="utf-8")
    (tree.root / "sub" / ".nia-prepare" / "done").mkdir(parents=True)
    (tree.root / "sub" / ".nia-prepare" / "done" / "a.png").write_bytes(b"")
    (tree.root / ".git").mkdir()
    (tree.root / ".git" / "x.json").write_text("{}", encoding="utf-8")
    (tree.root / "sub" / "device_profiles.json").write_text("{}", encoding="utf-8")  # not at the root: a label
    result, df, _ = index(tree.root, tmp_path)
    assert (result.n_suite_files, result.n_hidden_dirs) == (4, 1)
    assert df["json_path"].dropna().str.contains("nia-|params|\\.git").sum() == 0
    assert df.loc["device_profiles", "json_path"] == "sub/device_profiles.json"
    assert result.kinds == {"frame": 2, "video": 1, "label_only": 1}
    res = CliRunner().invoke(main, ["index", str(tree.root), "--out", str(tmp_path / "c.parquet"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "ignored suite files: 4 (device_profiles.json at the root, .nia* folders)" in res.output
    assert "skipped hidden folders: 1" in res.output


def test_reindex_reparses_a_json_whose_role_changed(nia_tree, tmp_path):
    tree = nia_tree(1, videos_per_subject=1, frames_per_video=2, with_mp4=False)
    out = tmp_path / "m.parquet"
    build_index(tree.root, out, workers=1)
    video_json = next(tree.root.rglob(f"{tree.videos[0]}.json"))
    assert read_manifest(out)[0].set_index("sample_id").loc[tree.videos[0], "kind"] == "label_only"
    (video_json.parent / f"{tree.videos[0]}.mp4").write_bytes(b"")  # now it labels a video
    result = build_index(tree.root, out, workers=1)
    assert (result.n_parsed, result.n_reused) == (1, 2)
    row = read_manifest(out)[0].set_index("sample_id").loc[tree.videos[0]]
    assert row["kind"] == "video" and row["valid"] and row["error"] == ""


def test_unchanged_tree_reuses_every_label_and_writes_the_same_manifest(nia_tree, tmp_path):
    tree = nia_tree(2, videos_per_subject=2, frames_per_video=2)
    out = tmp_path / "m.parquet"
    build_index(tree.root, out, workers=2, chunk=3)
    first = read_manifest(out)[0]
    result = build_index(tree.root, out, workers=2, chunk=3)
    assert (result.n_parsed, result.n_reused) == (0, 12)
    assert set(result.seconds) == {"walk", "reuse", "pair", "parse", "assemble", "write"}
    pd.testing.assert_frame_equal(first, read_manifest(out)[0])
