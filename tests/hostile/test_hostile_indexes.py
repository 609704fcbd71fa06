"""Hostile prepared datasets given as --data (issue 19): an index whose paths leave its folder, a video
changed after `nia clips`, a rotated video (tests/hostile_corpus.py, the ``indexes`` area).

Each case exits 2 with one ``error:`` line naming the index file, the row and the field, and writes no
metrics.json: the file outside the folder is never read.
"""
from __future__ import annotations

from pathlib import Path

import os
import zlib

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hostile_corpus import INDEX_FILES, INDEXES, Case, png
from tests.hostile_env import assert_one_error, run_click

ENTRY_POINTS = {"crop_jpg": "l2cs.run_valid_l2cs", "crop_png": "ritnet.test", "clip_video": "dfer.valid_nia"}


def edit_index(index: Path, column: str, row: int, value: str) -> None:
    """Set one cell of an index.parquet, keeping its schema and `nia.*` metadata."""
    table = pq.read_table(index)
    values = table.column(column).to_pylist()
    values[row] = value
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, pa.array(values, pa.string())),
                   index)


def _dataset(kind: str, folder: Path) -> tuple[Path, str, Path]:
    """A tiny prepared dataset of ``kind``; the path column a case edits; a truth file outside the folder."""
    if kind == "crop_jpg":
        from tests.l2cs_fakes import make_fake_crops

        data, column = make_fake_crops(folder / "data", {"test": 4}), "jpg_path"
    elif kind == "crop_png":
        from tests.rit_fakes import make_seg_crops

        data, column = make_seg_crops(folder / "data", {"test": 4}), "png_path"
    else:
        from tests.dfer_fakes import balanced_clips, write_clip_set

        data, column = write_clip_set(folder, balanced_clips({"test": 3})), "video_path"
    index = pd.read_parquet(data / "index.parquet")
    outside = folder / "outside" / Path(index[column].iloc[0]).name
    outside.parent.mkdir()
    source = data / index[column].iloc[0] if column != "video_path" else folder / "videos" / index[column].iloc[0]
    outside.write_bytes(source.read_bytes())
    return data, column, outside


@pytest.mark.parametrize("case", INDEXES, ids=lambda c: c.id)
def test_hostile_index_paths(tmp_path: Path, case: Case) -> None:
    kind = case.id[len("idx_"):].rsplit("_", 1)[0]
    data, column, outside = _dataset(kind, tmp_path)
    index = data / "index.parquet"
    # the same file both ways: the crops' folder (or the videos' root) and outside/ are siblings
    escaping = str(outside) if case.id.endswith("_absolute") else f"../outside/{outside.name}"
    edit_index(index, column, 1, escaping)
    assert_refused(tmp_path, ENTRY_POINTS[kind], data, case, index)


def assert_refused(folder: Path, module: str, data: Path, case: Case, file: Path,
                   predictions: Path | None = None) -> None:
    """The entry point, given ``data`` and predictions (an empty CSV by default), exits with the case's one
    line naming ``file`` and leaves no metrics.json."""
    from importlib import import_module

    out = folder / "res"
    if predictions is None:
        predictions = folder / "pred.csv"
        predictions.write_text("name,label\n")
    outcome = run_click(import_module(module).cli, ["--data", data, "--predictions", predictions,
                                                    "--out", out, "--device", "cpu", "--workers", "0"])
    assert_one_error(outcome, case.code, *case.expected(str(file)))
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize("case", INDEX_FILES, ids=lambda c: c.id)
def test_hostile_index_files(tmp_path: Path, case: Case) -> None:
    if case.id.startswith("idx_clip_"):
        from tests.dfer_fakes import balanced_clips, write_clip_set

        data = write_clip_set(tmp_path, balanced_clips({"test": 3}))
        videos = sorted((tmp_path / "videos").glob("*.mp4"))
        if case.id == "idx_clip_video_swapped":  # another clip of the set under its name: another state
            videos[0].write_bytes(videos[1].read_bytes())
        else:
            os.utime(videos[0], ns=(videos[0].stat().st_atime_ns, videos[0].stat().st_mtime_ns + 10**9))
        states = tmp_path / "states.csv"  # the truth: on the old code the swapped clip scored, PASS
        pd.read_parquet(data / "index.parquet").rename(columns={"clip_id": "name", "state": "label"})[
            ["name", "label"]].to_csv(states, index=False)
        assert_refused(tmp_path, "dfer.valid_nia", data, case, videos[0], states)
        return
    from tests.rit_fakes import make_seg_crops

    data = make_seg_crops(tmp_path / "data", {"test": 2})
    index = pd.read_parquet(data / "index.parquet")
    maps = tmp_path / "maps"  # the truth's own maps: every crop is predicted
    maps.mkdir()
    for row in index.itertuples():
        (maps / f"{row.crop_id}.png").write_bytes((data / row.png_path).read_bytes())
    truth = data / index["png_path"].iloc[0]
    truth.write_bytes(png(40000, 40000, idat=zlib.compress(b"\0" * 1000)))
    assert_refused(tmp_path, "ritnet.test", data, case, truth, maps)
