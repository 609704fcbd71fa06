"""One parquet reader (common/parquet_read.py) behind the manifest's and the clip index's own messages."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.delivery.manifest import ManifestError, read_table
from common.parquet_read import UnreadableParquet, read_frame
from common.parquet_read import read_table as read_parquet_table
from common.targets.clip_index import CLIP_INDEX_NAME, ClipIndexError, read_clip_index


def _pyarrow_error(path: Path) -> str:
    with pytest.raises((OSError, pa.ArrowException)) as caught:
        pq.read_table(path)
    return str(caught.value)


def _truncated(path: Path) -> Path:
    pq.write_table(pa.table({"a": list(range(100))}), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def test_a_damaged_manifest_is_named_with_pyarrows_reason(tmp_path: Path) -> None:
    path = _truncated(tmp_path / "m.parquet")
    with pytest.raises(ManifestError) as caught:
        read_table(path)
    assert str(caught.value) == f"{path}: not a readable parquet manifest: {_pyarrow_error(path)}"


def test_a_damaged_clip_index_is_named_with_pyarrows_reason(tmp_path: Path) -> None:
    path = tmp_path / CLIP_INDEX_NAME
    path.write_bytes(b"not parquet at all\n" * 20)
    with pytest.raises(ClipIndexError) as caught:
        read_clip_index(tmp_path, "test")
    assert str(caught.value) == f"{path}: not a readable parquet clip index: {_pyarrow_error(path)}"


def test_read_frame_names_the_file_on_one_line_and_keeps_pyarrows_error(tmp_path: Path) -> None:
    path = _truncated(tmp_path / "index.parquet")
    with pytest.raises(UnreadableParquet) as caught:
        read_frame(path)
    assert str(caught.value).startswith(f"{path}: not a readable parquet file (") and "\n" not in str(caught.value)
    assert str(caught.value.error) == _pyarrow_error(path)


def test_read_table_leaves_out_the_skipped_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1], "b": [2], "c": [3]}), path)
    assert read_parquet_table(path, skip={"b"}).column_names == ["a", "c"]
    assert read_parquet_table(path, columns=["c"]).column_names == ["c"]
