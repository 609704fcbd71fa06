"""Reading and writing the manifest file: parquet with the indexed root in its metadata."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from common import __version__, parquet_read
from common.atomic import atomic_path
from common.delivery.manifest.schema import KNOWN_TYPES, ROOT_KEY, ROW_GROUP, VERSION_KEY, ManifestError


def _schema_for(df) -> pa.Schema:
    """The Arrow schema of a manifest DataFrame: known columns get their manifest type, others
    an inferred one (inferred for those only: inference converts the whole column)."""
    unknown = [c for c in df.columns if c not in KNOWN_TYPES]
    inferred = pa.Schema.from_pandas(df[unknown], preserve_index=False)
    return pa.schema([(c, KNOWN_TYPES[c] if c in KNOWN_TYPES else inferred.field(c).type) for c in df.columns])


def _write_tables(tables: Iterable[pa.Table], path: str | Path, root: str | Path) -> None:
    """Write tables of one schema into one parquet file, with the indexed root in its metadata.

    The file is the one ``pq.write_table`` writes for them concatenated as long
    as every table but the last has ROW_GROUP rows.
    """
    path = Path(path)
    meta_root = {ROOT_KEY: str(Path(root).resolve()).encode(), VERSION_KEY: __version__.encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        writer = None
        try:
            for table in tables:
                table = table.replace_schema_metadata(dict(table.schema.metadata or {}) | meta_root)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
        except (OSError, pa.ArrowException) as exc:
            raise ManifestError(f"{path}: cannot write the manifest: {exc}") from None
        finally:
            if writer is not None:
                writer.close()


def write_table(table: pa.Table, path: str | Path, root: str | Path) -> None:
    _write_tables([table], path, root)


def write_manifest(df, path: str | Path, root: str | Path) -> None:
    """Write a manifest DataFrame (extra columns kept) with the indexed root in its metadata.

    Converted to Arrow one row group at a time: the Arrow copy of a whole
    manifest beside the DataFrame would take another 1 kB a row.
    """
    schema = _schema_for(df)

    def row_groups() -> Iterator[pa.Table]:
        for start in range(0, max(len(df), 1), ROW_GROUP):  # an empty frame still writes its schema
            try:
                yield pa.Table.from_pandas(df.iloc[start:start + ROW_GROUP], schema=schema, preserve_index=False)
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise ManifestError(f"{path}: a column does not have its manifest type: {exc}") from None

    _write_tables(row_groups(), path, root)


def read_table(path: str | Path, skip: frozenset[str] = frozenset()) -> tuple[pa.Table, Path]:
    """The manifest as an Arrow table (less the columns named in ``skip``) and its indexed root."""
    try:
        table = parquet_read.read_table(path, skip=skip)
    except parquet_read.UnreadableParquet as exc:
        raise ManifestError(f"{path}: not a readable parquet manifest: {exc.error}") from None
    meta = table.schema.metadata or {}
    if ROOT_KEY not in meta:
        raise ManifestError(f"{path}: parquet metadata lacks '{ROOT_KEY.decode()}': not written by `nia index`")
    return table, Path(meta[ROOT_KEY].decode())


def _return_freed_arrow_pages() -> None:
    """Make Arrow's allocator (jemalloc) give freed pages back to the OS at once, not after ~1 s.

    jemalloc applies this to the arenas it makes from now on: to the whole
    process when reading a manifest is its first Arrow work (nia stats, split,
    crops). Without it the Arrow table stays resident beside the DataFrame
    made from it, even freed column by column (250k rows: 821 MB peak instead
    of 537 MB). `nia index` takes the same time either way.
    """
    if pa.default_memory_pool().backend_name == "jemalloc":
        pa.jemalloc_set_decay_ms(0)


def read_manifest(path: str | Path):
    """``(DataFrame, root)``: int64 columns come back as nullable ``Int64``.

    Each Arrow column is freed as soon as pandas has it (``self_destruct``):
    the peak is the DataFrame, not the DataFrame plus the table (1 kB a row).
    """
    import pandas as pd

    _return_freed_arrow_pages()
    table, root = read_table(path)
    df = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get, self_destruct=True)
    del table  # unusable after self_destruct
    return df, root
