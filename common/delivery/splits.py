"""`nia split`: deterministic train/val/test splits.

Units: by default a person, as the FILE NAME says (``subject``), so no
person is in two splits; ``by="video"`` uses the video (``video_stem``, from
the name too) instead. Either way the frames of one video share its split:
the name's video stem holds its subject. Every sample is assigned, valid or
not: a damaged one (a broken label, a missing or undecodable PNG, a JSON whose
mp4 is missing) gets its person's split like its intact copy would, so a
test counts it as skipped under its data reason instead of it vanishing from
the split (issue 19). A sample is one row per stem (duplicate files and a PNG
named like a video are not samples) whose name gives a subject; its kind is
the name's (with a frame number a frame, else a video), its stratum the JSON's
display and state, or the name's where the row is invalid, so damage to a
sample never moves a person to another split. The name is the unit because
it is what ties a frame to its video and its person everywhere else (crop
folders, per-sample results); the JSON's ``metaid`` only confirms it:

* a row whose name and JSON disagree on the person (``subject`` !=
  ``metaid``) is not assigned: which person it shows is unknown, and either
  answer could put one person in two splits (issue 10);
* a row whose name gives no subject (a name that does not parse) is not
  assigned either.

Both are counted under their reason (``SplitResult.unassigned``), printed by
``nia split`` and written to its ``summary.json`` and ``unassigned.csv``.
Where names and JSON agree, the units are the same people as when units
were the ``metaid``, so such a dataset keeps its split.

Assignment: units in a seeded random order; each goes to the split that
most needs it, by its total target and by its display x state strata. Sizes count frames when the
manifest has frames (default ratios 80.5/9.8/9.8), else videos (80/10/10).
With exact ``counts`` a unit that fits no split's remaining room is left
unassigned, so counts are met exactly when units are single samples and
approached otherwise; the achieved counts are reported.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import write_csv_atomic, write_text_atomic
from common.delivery.filenames import stem_of

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
    unassigned: dict[str, int] = field(default_factory=dict)  # eligible rows with no split, by reason
    reasons: pd.Series | None = None  # per row (aligned with the manifest): why an eligible row has no split


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
_SPLIT_COLUMNS = ["kind", "sample_id", "metaid", "subject", "video_stem", "inst", "condition", "valid", "frame",
                  "device", "state"]


NO_SUBJECT = "file name gives no subject"
SUBJECT_MISMATCH = "subject: file name and JSON metaid disagree"
NO_ROOM = "no split has room for its unit (--counts)"


def _valid(df: pd.DataFrame) -> pd.Series:
    return df["valid"].fillna(False).astype(bool)


def damaged_samples(df: pd.DataFrame) -> pd.Series:
    """The invalid rows that are samples: the first row of a stem (not a duplicate file or a PNG named like
    a video) whose name gives a subject (a broken label, a missing or damaged image, a label whose mp4 is
    missing)."""
    if "subject" not in df.columns:
        return pd.Series(False, index=df.index)
    own_stem = ~df["sample_id"].astype(str).str.contains("#", regex=False)
    return ~_valid(df) & own_stem & df["subject"].notna()


def _eligible(df: pd.DataFrame) -> pd.Series:
    """The samples: valid frame and video rows, and the damaged ones."""
    return (_valid(df) & df["kind"].isin(["frame", "video"])) | damaged_samples(df)


def sample_kinds(rows: pd.DataFrame) -> pd.Series:
    """``frame`` or ``video`` per sample row: its pairing's, else its name's (a frame number makes a frame)."""
    by_name = pd.Series(np.where(rows["frame"].notna(), "frame", "video"), index=rows.index)
    return rows["kind"].where(rows["kind"].isin(["frame", "video"]), by_name)


def _strata(rows: pd.DataFrame) -> pd.Series:
    """Display x state per sample: the JSON's; the name's on an invalid row (its JSON may be what is damaged)."""
    valid = _valid(rows)
    inst = rows["inst"].where(valid, rows["device"])
    condition = rows["condition"].where(valid, rows["state"])
    return inst.fillna("?") + "/" + condition.fillna("?")


def _person_problems(rows: pd.DataFrame) -> pd.Series:
    """Per eligible row: why its person is unknown (NO_SUBJECT, SUBJECT_MISMATCH), else None."""
    reason = pd.Series([None] * len(rows), index=rows.index, dtype=object)
    no_subject = rows["subject"].isna()
    reason[no_subject] = NO_SUBJECT
    reason[~no_subject & rows["metaid"].notna() & (rows["subject"] != rows["metaid"])] = SUBJECT_MISMATCH
    return reason


def _units(df: pd.DataFrame, by: str) -> pd.Series:
    if by == "subject":
        return df["subject"]
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
    eligible = _eligible(df)
    columns = df[[c for c in _SPLIT_COLUMNS if c in df.columns]]
    columns = columns.reindex(columns=_SPLIT_COLUMNS)  # a manifest made by hand may lack the name's fields
    person = _person_problems(columns[eligible])
    ok = eligible.copy()
    ok[person.index[person.notna()]] = False
    rows = columns[ok]
    kinds = sample_kinds(rows)
    size_kind = "frame" if (kinds == "frame").any() else "video"
    if ratios is None and counts is None:
        ratios = FRAME_RATIOS if size_kind == "frame" else VIDEO_RATIOS
    units = _units(rows, by)
    counted = kinds == size_kind
    strata = _strata(rows)
    table = pd.crosstab(units[counted], strata[counted])
    all_units = sorted(units.unique())
    table = table.reindex(all_units, fill_value=0)
    sizes = np.column_stack([table.sum(axis=1).to_numpy(), table.to_numpy()]).astype(float)
    stratum_totals = sizes.sum(axis=0)
    if counts is not None:
        if sum(counts) > stratum_totals[0]:
            raise SplitError(f"--counts ask for {sum(counts)} {size_kind}s ({', '.join(f'{s} {c}' for s, c in zip(SPLITS, counts))}) "
                             f"but the manifest has {int(stratum_totals[0])} assignable {size_kind}s")
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
    reasons = pd.Series([None] * len(df), index=df.index, dtype=object)
    reasons[person.index] = person
    reasons[ok & split.isna()] = NO_ROOM
    unassigned = reasons[eligible].value_counts()
    got = {s: int(((split[ok] == s) & (kinds == size_kind)).sum()) for s in SPLITS}
    return SplitResult(split, assignment_sha256(df["sample_id"], split), got, len(all_units),
                       int(unassigned.sum()), {str(k): int(v) for k, v in unassigned.items()}, reasons)


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


def write_summary(df: pd.DataFrame, result: SplitResult, out: Path, **options) -> list[Path]:
    """``OUT/summary.json`` (counts, unassigned rows by reason, hash, options) and ``OUT/unassigned.csv``
    (``sample_id,reason`` of every eligible row left without a split)."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {"counts": result.counts, "n_units": result.n_units, "n_unassigned": result.n_unassigned,
               "unassigned": result.unassigned, "sha256": result.sha256, **options}
    paths = [out / "summary.json", out / "unassigned.csv"]
    write_text_atomic(paths[0], json.dumps(summary, indent=1) + "\n")
    reasons = result.reasons if result.reasons is not None else pd.Series(None, index=df.index, dtype=object)
    listed = pd.DataFrame({"sample_id": df["sample_id"], "reason": reasons})[reasons.notna()]
    write_csv_atomic(paths[1], listed.sort_values("sample_id"), index=False)
    return paths


def write_lists(df: pd.DataFrame, out: Path) -> list[Path]:
    """``OUT/{train,val,test}.txt``: the sorted sample_ids of each split."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in SPLITS:
        ids = sorted(df.loc[df["split"] == s, "sample_id"])
        path = out / f"{s}.txt"
        write_text_atomic(path, "".join(f"{i}\n" for i in ids))
        paths.append(path)
    return paths
