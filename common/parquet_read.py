"""Reading one of our parquet files (a crop or clip index, a manifest) with errors that name it.

pyarrow's own errors ("Parquet magic bytes not found in footer", "Couldn't
deserialize thrift") name no file; a garbage or truncated index given as
`--data` must give one line that does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd


class UnreadableParquet(ValueError):
    """A parquet file that cannot be read: its path and pyarrow's reason, on one line."""


def read_schema(path: str | Path):
    """The file's Arrow schema (with its key-value metadata); UnreadableParquet naming the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise UnreadableParquet(_reason(path, exc)) from None


def read_frame(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The file (or its `columns`) as a DataFrame; UnreadableParquet naming the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=list(columns) if columns is not None else None).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise UnreadableParquet(_reason(path, exc)) from None


def _reason(path: str | Path, exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "strerror", None) or exc).split()) or type(exc).__name__
    return f"{path}: not a readable parquet file ({text})"
