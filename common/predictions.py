"""Score-only readers: predictions made elsewhere, aligned to the test names.

Three formats (names are the crop ids / sample ids of the per-sample CSVs):
- gaze: CSV with header ``name,pitch,yaw`` (degrees, our gaze convention);
- segmentation: a folder of PNG class maps ``{crop_id}.png`` (0, 1, 2, ...);
- state: CSV with header ``name,label`` (label = class name, e.g. F/S/D/A/N).

Each reader returns the predictions of the expected names that occur exactly
once, in the order of ``names``, and an ``Alignment`` that lists missing
names (expected, not predicted), extra names (predicted, not expected) and
duplicated names (predicted more than once: ambiguous, so not scored).
Nothing is ignored silently: ``Alignment.skipped()`` is what goes into
metrics.json's ``skipped``. A malformed file raises ``PredictionFileError``
naming the file, the line and the field (exit 2).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from common.results import RunError

#: How many names of each list go into metrics.json (the counts are always complete).
MAX_LISTED_NAMES = 20


class PredictionFileError(RunError):
    """A prediction file or folder cannot be read as the documented format."""


@dataclass(frozen=True)
class Alignment:
    """How a prediction source matches the expected names."""

    source: str
    n_expected: int
    n_scored: int
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    duplicated: tuple[str, ...]

    def skipped(self) -> dict[str, int]:
        """Expected samples that could not be scored, by reason."""
        expected_dups = self.n_expected - self.n_scored - len(self.missing)
        return {"missing_prediction": len(self.missing), "duplicated_prediction": expected_dups}

    def summary(self) -> dict[str, Any]:
        """Counts plus the first names of each list, for metrics.json ``extra``."""
        return {
            "source": self.source,
            "n_expected": self.n_expected,
            "n_scored": self.n_scored,
            **{f"n_{k}": len(getattr(self, k)) for k in ("missing", "extra", "duplicated")},
            **{k: list(getattr(self, k)[:MAX_LISTED_NAMES]) for k in ("missing", "extra", "duplicated")},
        }


def align_names(source: str, found: Sequence[str], names: Sequence[str]) -> tuple[list[str], Alignment]:
    """Compare predicted names (with repeats) to expected names; return the scorable ones in order."""
    expected = list(names)
    repeats = [n for n, c in Counter(expected).items() if c > 1]
    if repeats:
        raise ValueError(f"expected names contain duplicates, e.g. {repeats[0]!r}; expected unique crop ids")
    counts = Counter(found)
    expected_set = set(expected)
    scored = [n for n in expected if counts.get(n, 0) == 1]
    alignment = Alignment(
        source=source,
        n_expected=len(expected),
        n_scored=len(scored),
        missing=tuple(n for n in expected if n not in counts),
        extra=tuple(sorted(n for n in counts if n not in expected_set)),
        duplicated=tuple(sorted(n for n, c in counts.items() if c > 1)),
    )
    return scored, alignment


def read_gaze_predictions(path: Path | str, names: Sequence[str]) -> tuple[pd.DataFrame, Alignment]:
    """Read ``name,pitch,yaw`` (degrees); return rows ``name, pitch, yaw`` aligned to ``names``."""
    table = _read_csv(Path(path), ("name", "pitch", "yaw"))
    for field in ("pitch", "yaw"):
        table[field] = _finite_numbers(Path(path), table, field)
    return _aligned(Path(path), table, names, ["name", "pitch", "yaw"])


def read_state_predictions(
    path: Path | str, names: Sequence[str], classes: Sequence[str]
) -> tuple[pd.DataFrame, Alignment]:
    """Read ``name,label``; return rows ``name, label, pred`` (pred = index in ``classes``)."""
    table = _read_csv(Path(path), ("name", "label"))
    table["label"] = table["label"].str.strip()
    index = {c: i for i, c in enumerate(classes)}
    unknown = ~table["label"].isin(index)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise PredictionFileError(
            f"{path}: line {row + 2}, field label is {table['label'].iloc[row]!r}; "
            f"expected one of {', '.join(classes)}"
        )
    table["pred"] = table["label"].map(index).astype(np.int64)
    return _aligned(Path(path), table, names, ["name", "label", "pred"])


def find_segmentation_predictions(folder: Path | str, names: Sequence[str]) -> tuple[pd.DataFrame, Alignment]:
    """List ``{name}.png`` in ``folder``; return rows ``name, path`` aligned to ``names``.

    The PNG extension is matched case-insensitively, so ``a.png`` and ``a.PNG``
    count as a duplicated ``a``. Other files are reported as extra
    (``other:<file name>``). Load each map with ``load_class_map``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise PredictionFileError(f"{root}: not a folder; expected a folder of {{crop_id}}.png class maps")
    files = sorted(p for p in root.iterdir() if p.is_file())
    pngs = [p for p in files if p.suffix.lower() == ".png"]
    table = pd.DataFrame({"name": [p.stem for p in pngs], "path": [str(p) for p in pngs]})
    others = [f"other:{p.name}" for p in files if p.suffix.lower() != ".png"]
    aligned, alignment = _aligned(root, table, names, ["name", "path"])
    if others:
        alignment = replace(alignment, extra=tuple(sorted([*alignment.extra, *others])))
    return aligned, alignment


def load_class_map(path: Path | str, num_classes: int, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read one PNG class map as a 2D uint8 array; check its values and shape."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise PredictionFileError(f"{path}: cannot be read as a PNG")
    if image.ndim != 2:
        raise PredictionFileError(f"{path}: has shape {image.shape}; expected a single-channel class map")
    if shape is not None and image.shape != tuple(shape):
        raise PredictionFileError(f"{path}: has size {image.shape} (H, W); expected {tuple(shape)} like the crop")
    if image.size and int(image.max()) >= num_classes:
        raise PredictionFileError(f"{path}: holds class id {int(image.max())}; expected 0..{num_classes - 1}")
    return image


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PredictionFileError(f"{path}: not a readable CSV ({' '.join(str(exc).split())})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise PredictionFileError(
            f"{path}: header lacks {', '.join(missing)}; expected columns {','.join(columns)}"
        )
    table["name"] = table["name"].str.strip()
    empty = table["name"] == ""
    if empty.any():
        raise PredictionFileError(f"{path}: line {int(np.flatnonzero(empty.to_numpy())[0]) + 2}, field name is empty")
    return table


def _finite_numbers(path: Path, table: pd.DataFrame, field: str) -> pd.Series:
    values = pd.to_numeric(table[field].str.strip(), errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise PredictionFileError(
            f"{path}: line {row + 2}, field {field} is {table[field].iloc[row]!r}; expected a finite number of degrees"
        )
    return values.astype(np.float64)


def _aligned(
    source: Path, table: pd.DataFrame, names: Sequence[str], columns: list[str]
) -> tuple[pd.DataFrame, Alignment]:
    scored, alignment = align_names(str(source), table["name"].tolist(), names)
    by_name = table.drop_duplicates("name", keep=False).set_index("name")
    aligned = by_name.loc[scored].reset_index()[columns] if scored else pd.DataFrame(columns=columns)
    return aligned.reset_index(drop=True), alignment
