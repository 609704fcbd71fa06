"""`nia split`: deterministic train/val/test splits.

Units: by default a person (``metaid``, else the name's subject), so no
person is in two splits; ``by="video"`` uses the video (``video_stem``)
instead. Either way the frames of one video share its split. Only valid
``frame`` and ``video`` rows are assigned; the others get no split.

Assignment: units in a seeded random order; each goes to the split that
most needs it, by its total target and by its display x state strata. Sizes count frames when the
manifest has frames (default ratios 80.5/9.8/9.8), else videos (80/10/10).
With exact ``counts`` a unit that fits no split's remaining room is left
unassigned, so counts are met exactly when units are single samples and
approached otherwise; the achieved counts are reported.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.filenames import stem_of

SPLITS = ("train", "val", "test")
FRAME_RATIOS = (80.5, 9.8, 9.8)
VIDEO_RATIOS = (80.0, 10.0, 10.0)


class SplitError(ValueError):
    """Bad split options or lists; the message names what was wrong."""


@dataclass
class SplitResult:
    """The split column (aligned with the manifest) and a summary."""

    split: pd.Series
    sha256: str
    counts: dict[str, int]
    n_units: int
    n_unassigned: int


def assignment_sha256(sample_ids: pd.Series, split: pd.Series, block: int = 1 << 16) -> str:
    """SHA-256 of the sorted ``sample_id<TAB>split`` lines of assigned rows.

    Hashed ``block`` lines at a time: the joined text of millions of lines
    would be a second and third copy of them.
    """
    pairs = sorted(f"{s}\t{p}\n" for s, p in zip(sample_ids, split) if isinstance(p, str))
    digest = hashlib.sha256()
    for i in range(0, len(pairs), block):
        digest.update("".join(pairs[i:i + block]).encode("utf-8"))
    return digest.hexdigest()


# what make_splits reads: selected before the rows are filtered, so that the
# filter copies these columns and not the manifest's 80 (0.6 kB a row;
# df.loc[mask, cols] would filter all columns first)
_SPLIT_COLUMNS = ["kind", "sample_id", "metaid", "subject", "video_stem", "inst", "condition"]


def _eligible(df: pd.DataFrame) -> pd.Series:
    return df["valid"].fillna(False).astype(bool) & df["kind"].isin(["frame", "video"])


def _units(df: pd.DataFrame, by: str) -> pd.Series:
    if by == "subject":
        units = df["metaid"].fillna(df["subject"])
        return units.fillna("?" + df["sample_id"][units.isna()])  # new strings only where needed
    if by == "video":
        return df["video_stem"].fillna(df["sample_id"])
    raise SplitError(f"by must be 'subject' or 'video', got {by!r}")


def _greedy(sizes: np.ndarray, order: np.ndarray, targets: np.ndarray, caps: np.ndarray | None) -> np.ndarray:
    """Split index per unit (-1 = unassigned). sizes: (units, strata) with column 0 the total;
    targets: (3, strata).

    Each unit goes to the split with the largest need: the share of its total
    target still missing, plus half the same measure over the unit's strata
    (weighted by how much of the unit is in each stratum).
    """
    current = np.zeros_like(targets, dtype=float)
    safe = np.where(targets > 0, targets, np.inf)  # a zero target never asks for more
    out = np.full(len(sizes), -1)
    for u in order:
        unit = sizes[u]
        need = (targets - current) / safe
        mix = unit[1:] / unit[0] if unit[0] > 0 else np.zeros(len(unit) - 1)
        score = need[:, 0] + 0.5 * need[:, 1:] @ mix
        if caps is not None:
            score = np.where(current[:, 0] + unit[0] <= caps, score, -np.inf)
            if not np.isfinite(score).any():
                continue
        k = int(np.argmax(score))
        out[u] = k
        current[k] += unit
    return out


def make_splits(df: pd.DataFrame, seed: int = 0, ratios: tuple[float, ...] | None = None,
                counts: tuple[int, ...] | None = None, by: str = "subject") -> SplitResult:
    """Assign train/val/test to the valid frame and video rows of a manifest."""
    if ratios is not None and counts is not None:
        raise SplitError("give ratios or counts, not both")
    for name, values in (("ratios", ratios), ("counts", counts)):
        if values is not None and (len(values) != 3 or min(values) < 0 or sum(values) <= 0):
            raise SplitError(f"{name} must be three non-negative numbers (train, val, test), got {values}")
    ok = _eligible(df)
    rows = df[_SPLIT_COLUMNS][ok]
    size_kind = "frame" if (rows["kind"] == "frame").any() else "video"
    if ratios is None and counts is None:
        ratios = FRAME_RATIOS if size_kind == "frame" else VIDEO_RATIOS
    units = _units(rows, by)
    counted = rows["kind"] == size_kind
    strata = rows["inst"].fillna("?") + "/" + rows["condition"].fillna("?")
    table = pd.crosstab(units[counted], strata[counted])
    all_units = sorted(units.unique())
    table = table.reindex(all_units, fill_value=0)
    sizes = np.column_stack([table.sum(axis=1).to_numpy(), table.to_numpy()]).astype(float)
    stratum_totals = sizes.sum(axis=0)
    if counts is not None:
        share = np.asarray(counts, dtype=float) / max(stratum_totals[0], 1.0)
        caps = np.asarray(counts, dtype=float)
    else:
        share = np.asarray(ratios, dtype=float) / float(sum(ratios))
        caps = None
    targets = share[:, None] * stratum_totals[None, :]
    order = np.random.default_rng(seed).permutation(len(all_units))
    chosen = _greedy(sizes, order, targets, caps)
    unit_split = {u: (SPLITS[k] if k >= 0 else None) for u, k in zip(all_units, chosen)}
    split = pd.Series([None] * len(df), index=df.index, dtype=object)
    split[ok] = units.map(unit_split)
    assigned = split[ok].dropna()
    got = {s: int(((split == s) & (df["kind"] == size_kind)).sum()) for s in SPLITS}
    return SplitResult(split, assignment_sha256(df["sample_id"], split), got, len(all_units),
                       int(ok.sum() - len(assigned)))


def read_lists(paths: list[Path]) -> dict[str, str]:
    """Official lists -> {stem: split}: one name per line, the file name (train.txt) is the split."""
    files: list[Path] = []
    for p in paths:
        files += sorted(p.glob("*.txt")) if p.is_dir() else [p]
    mapping: dict[str, str] = {}
    for f in files:
        split = f.stem.lower()
        if split not in SPLITS:
            raise SplitError(f"{f}: list file name must be one of {', '.join(s + '.txt' for s in SPLITS)}")
        for n, line in enumerate(f.read_text(encoding="utf-8-sig").splitlines(), 1):
            name = stem_of(line.strip().replace("\\", "/").rsplit("/", 1)[-1])
            if not name:
                continue
            if mapping.get(name, split) != split:
                raise SplitError(f"{f}:{n}: {name} is already listed in {mapping[name]}.txt")
            mapping[name] = split
    if not mapping:
        raise SplitError(f"no names found in {', '.join(map(str, paths))}")
    return mapping


def splits_from_lists(df: pd.DataFrame, mapping: dict[str, str]) -> tuple[SplitResult, int]:
    """Apply imported lists; unlisted frames take their listed video's split.
    Returns the result and the number of listed names not in the manifest."""
    split = df["sample_id"].map(mapping)
    inherit = split.isna() & (df["kind"] == "frame") & df["video_stem"].isin(mapping.keys())
    split[inherit] = df.loc[inherit, "video_stem"].map(mapping)
    video_split = df.loc[df["video_stem"].notna(), ["video_stem"]].assign(split=split)
    conflicts = video_split.dropna().groupby("video_stem")["split"].nunique()
    if (conflicts > 1).any():
        raise SplitError(f"frames of video {conflicts[conflicts > 1].index[0]} are listed in different splits")
    split = split.astype(object).where(split.notna(), None)
    n_missing = len(set(mapping) - set(df["sample_id"]))
    counts = {s: int((split == s).sum()) for s in SPLITS}
    n_units = int(split.notna().sum())
    return SplitResult(split, assignment_sha256(df["sample_id"], split), counts, n_units,
                       int(len(df) - n_units)), n_missing


def write_lists(df: pd.DataFrame, out: Path) -> list[Path]:
    """``OUT/{train,val,test}.txt``: the sorted sample_ids of each split."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in SPLITS:
        ids = sorted(df.loc[df["split"] == s, "sample_id"])
        path = out / f"{s}.txt"
        path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        paths.append(path)
    return paths
