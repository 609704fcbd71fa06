"""Reading one of our parquet files (a crop or clip index, a manifest) with errors that name it.

pyarrow's own errors ("Parquet magic bytes not found in footer", "Couldn't
deserialize thrift") name no file; a garbage or truncated index given as
`--data` must give one line that does. The one place that calls pyarrow's
parquet readers: a caller that words its own message (the manifest's, the
clip index's) finds pyarrow's error in ``UnreadableParquet.error``.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Collection, Iterator, Sequence

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


class UnreadableParquet(ValueError):
    """A parquet file that cannot be read: its path and pyarrow's reason, on one line."""

    def __init__(self, message: str, error: BaseException | None = None) -> None:
        super().__init__(message)
        self.error = error  # pyarrow's (or the OS's) own error


@contextmanager
def _naming(path: str | Path) -> Iterator[None]:
    """pyarrow's and the OS's errors inside the block become UnreadableParquet naming ``path``."""
    import pyarrow as pa

    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        raise UnreadableParquet(_reason(path, exc), exc) from None


def read_schema(path: str | Path) -> pa.Schema:
    """The file's Arrow schema (with its key-value metadata); UnreadableParquet naming the file."""
    import pyarrow.parquet as pq

    with _naming(path):
        return pq.read_schema(path)


def read_table(path: str | Path, columns: Sequence[str] | None = None,
               skip: Collection[str] = ()) -> pa.Table:
    """The file (its ``columns``, or all but those in ``skip``) as an Arrow table; UnreadableParquet naming
    the file."""
    import pyarrow.parquet as pq

    with _naming(path):
        if skip:
            columns = [name for name in pq.read_schema(path).names if name not in skip]
        return pq.read_table(path, columns=list(columns) if columns is not None else None)


def read_frame(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The file (or its `columns`) as a DataFrame; UnreadableParquet naming the file."""
    with _naming(path):
        return read_table(path, columns).to_pandas()


def _reason(path: str | Path, exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "strerror", None) or exc).split()) or type(exc).__name__
    return f"{path}: not a readable parquet file ({text})"
