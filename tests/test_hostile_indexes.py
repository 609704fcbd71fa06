"""Hostile prepared datasets given as --data (issue 19): an index whose paths leave its folder, a video
changed after `nia clips`, a rotated video (tests/hostile_corpus.py, the ``indexes`` area).

Each case exits 2 with one ``error:`` line naming the index file, the row and the field, and writes no
metrics.json: the file outside the folder is never read.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hostile_corpus import INDEXES, Case
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
    from importlib import import_module

    out = tmp_path / "res"
    predictions = tmp_path / "pred.csv"
    predictions.write_text("name,label\n")
    outcome = run_click(import_module(ENTRY_POINTS[kind]).cli, ["--data", data, "--predictions", predictions,
                                                                "--out", out, "--device", "cpu", "--workers", "0"])
    assert_one_error(outcome, case.code, *case.expected(str(index)))
    assert not (out / "metrics.json").exists()
