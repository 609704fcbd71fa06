"""What keeps `nia index`, `nia stats` and `nia split` within memory at 2.5 M labels
(bench/bench_index_scale.py) without changing their output: results placed on the
rows in order (no copy), re-index = fresh index, row-group writes, column-first filters."""
import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import common.delivery.manifest.columns as manifest_columns
import common.delivery.manifest.file as manifest_file
from tests.conftest import change_gaze_point
from common.delivery.manifest import build_index, read_manifest, write_manifest
from common.delivery.splits import NO_SUBJECT, SUBJECT_MISMATCH, _person_problems, _units, assignment_sha256
from common.delivery.stats import synthetic_tracks

SCHEMA = pa.schema([("key", pa.string()), ("value", pa.int64())])


def batch(keys, values):
    return pa.record_batch([pa.array(keys, pa.string()), pa.array(values, pa.int64())], schema=SCHEMA)


def test_place_puts_each_entry_on_its_row_and_nulls_on_the_rest():
    key = pa.array([None, "a", "b", None, None, "c", "d", None])
    placed = manifest_columns.place([batch(["a", "b"], [1, 2]), batch(["c"], [3]), batch(["d"], [4])], key, SCHEMA)
    assert placed.column("key").to_pylist() == key.to_pylist()
    assert placed.column("value").to_pylist() == [None, 1, 2, None, None, 3, 4, None]


def test_place_keeps_batches_of_consecutive_rows_without_a_copy():
    first, second = batch(["a", "b"], [1, 2]), batch(["c"], [3])
    placed = manifest_columns.place([first, second], pa.array(["a", "b", "c"]), SCHEMA)
    data = [chunk.buffers()[1].address for chunk in placed.column("value").chunks]
    assert data == [first.column(1).buffers()[1].address, second.column(1).buffers()[1].address]


def test_place_refuses_results_out_of_row_order():
    with pytest.raises(RuntimeError, match="out of row order"):
        manifest_columns.place([batch(["b"], [2]), batch(["a"], [1])], pa.array(["a", "b"]), SCHEMA)
    with pytest.raises(RuntimeError, match="1 key entries for 2 rows"):
        manifest_columns.place([batch(["a"], [1])], pa.array(["a", "b"]), SCHEMA)


def test_place_without_entries_gives_null_rows():
    placed = manifest_columns.place([], pa.array([None, None], pa.string()), SCHEMA)
    assert placed.num_rows == 2 and placed.column("value").null_count == 2


def messy_tree(nia_tree):
    """Rows without a JSON between rows with one: a video without its JSON, a lone PNG, a duplicate."""
    tree = nia_tree(2, videos_per_subject=2, frames_per_video=3)
    next(tree.root.rglob(f"{tree.videos[1]}.json")).unlink()
    next(tree.root.rglob(f"{tree.frames[4]}.json")).unlink()
    label = next(tree.root.rglob(f"{tree.frames[7]}.json"))
    (tree.root / "copy").mkdir()
    (tree.root / "copy" / label.name).write_text(label.read_text(encoding="utf-8"), encoding="utf-8")
    return tree


def test_rows_without_json_get_no_label_whatever_the_chunks(nia_tree, tmp_path):
    tree = messy_tree(nia_tree)
    build_index(tree.root, tmp_path / "serial.parquet", workers=1)
    build_index(tree.root, tmp_path / "chunks.parquet", workers=2, chunk=1)
    serial, chunks = pq.read_table(tmp_path / "serial.parquet"), pq.read_table(tmp_path / "chunks.parquet")
    assert serial.equals(chunks)
    df = read_manifest(tmp_path / "serial.parquet")[0].set_index("sample_id")
    assert df.loc[tree.frames[4], "kind"] == "image_only" and pd.isna(df.loc[tree.frames[4], "metaid"])
    assert df.loc[tree.videos[1], "kind"] == "video" and pd.isna(df.loc[tree.videos[1], "json_path"])
    assert df.loc[tree.frames[5], "r_iris_cx"] == 1021.5 + 2  # frame 2 of its video: the next row keeps its label
    assert df.loc[f"{tree.frames[7]}#dup1", "json_path"].startswith("copy/")


def test_reindex_of_a_changed_tree_equals_a_fresh_index(nia_tree, tmp_path):
    tree = messy_tree(nia_tree)
    out = tmp_path / "m.parquet"
    build_index(tree.root, out, workers=1)
    changed = next(tree.root.rglob(f"{tree.frames[9]}.json"))
    change_gaze_point(changed, [5, 6])
    next(tree.root.rglob(f"{tree.frames[2]}.json")).unlink()  # a frame becomes image_only
    result = build_index(tree.root, out, workers=2, chunk=2)
    build_index(tree.root, tmp_path / "fresh.parquet", workers=1, reuse=False)
    assert (result.n_parsed, result.n_reused) == (2, 12)  # the changed label and the duplicate (never reused)
    assert pq.read_table(out).equals(pq.read_table(tmp_path / "fresh.parquet"))


def test_write_manifest_in_row_groups_writes_the_same_content(nia_tree, tmp_path, monkeypatch):
    tree = messy_tree(nia_tree)
    build_index(tree.root, tmp_path / "m.parquet", workers=1)
    df, root = read_manifest(tmp_path / "m.parquet")
    df["split"] = ["train", None] * (len(df) // 2) + ["val"] * (len(df) % 2)
    write_manifest(df, tmp_path / "whole.parquet", root)
    monkeypatch.setattr(manifest_file, "ROW_GROUP", 4)
    write_manifest(df, tmp_path / "groups.parquet", root)
    assert pq.ParquetFile(tmp_path / "groups.parquet").num_row_groups == -(-len(df) // 4) > 1
    whole, groups = pq.read_table(tmp_path / "whole.parquet"), pq.read_table(tmp_path / "groups.parquet")
    assert whole.equals(groups, check_metadata=True)
    pd.testing.assert_frame_equal(read_manifest(tmp_path / "groups.parquet")[0], df)


def test_read_manifest_gives_what_to_pandas_gives(nia_tree, tmp_path):
    tree = messy_tree(nia_tree)
    build_index(tree.root, tmp_path / "m.parquet", workers=1)
    plain = pq.read_table(tmp_path / "m.parquet").to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    pd.testing.assert_frame_equal(read_manifest(tmp_path / "m.parquet")[0], plain)


def test_synthetic_tracks_group_each_videos_frames_in_frame_order():
    rows = []
    for frame in (3, 0, 2, 1, 4):  # frames out of order, the two videos interleaved
        rows.append(("v2", frame, 640.0, 360.0))  # a constant point
        rows.append(("v1", frame, 100.0 + 50 * (frame % 2), 100.0 + 40 * frame))  # zig-zag in frame order only
    rows.append(("v3", 0, np.nan, np.nan))
    df = pd.DataFrame(rows, columns=["video_stem", "frame", "point_x", "point_y"])
    df["kind"], df["frame"] = "frame", df["frame"].astype("Int64")
    tracks = synthetic_tracks(df)
    assert tracks["video_stem"].tolist() == ["v2"] and tracks["n_frames"].tolist() == [5]
    assert tracks["reason"].tolist() == ["constant point (640, 360) over 5 frames"]


def test_assignment_sha256_is_the_hash_of_all_lines_whatever_the_block():
    ids = pd.Series([f"s{i:03d}" for i in range(50)][::-1])
    split = pd.Series(["train", "val", None, "test", "train"] * 10)
    text = "".join(sorted(f"{s}\t{p}\n" for s, p in zip(ids, split) if p))
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert assignment_sha256(ids, split, block=3) == assignment_sha256(ids, split) == expected


def test_the_person_is_the_names_subject_and_rows_without_one_have_no_unit():
    df = pd.DataFrame({"metaid": ["001", None, None, "004"], "subject": [None, "002", None, "005"],
                       "sample_id": ["a", "b", "c", "d"]}, index=[7, 3, 5, 1])
    assert _units(df, "subject").to_dict() == {7: None, 3: "002", 5: None, 1: "005"}
    assert _person_problems(df).to_dict() == {7: NO_SUBJECT, 3: None, 5: NO_SUBJECT, 1: SUBJECT_MISMATCH}
