"""Score-only readers: predictions made elsewhere, aligned to the test names.

Three formats (names are the crop ids / sample ids of the per-sample CSVs):
- gaze: CSV with header ``name,pitch,yaw`` (degrees, our gaze convention);
- segmentation: a folder of PNG class maps ``{key}.png`` (0, 1, 2, ...);
- state: CSV with header ``name,label`` (label = class name, e.g. F/S/D/A/N).

Keys: a prediction's name may be what an auditor has, not only our id
(``normalise_key`` then ``ExpectedNames.resolve``): a path is cut to its file
name and one extension of ``KEY_EXTENSIONS`` is taken off, so the NIA file
name ``X.png``, its stem ``X`` and ``some/dir/X.png`` are one key. It then
names an expected sample directly (our crop id ``X_eyes``; the per-eye crop
id ``X_r_eye`` / ``X_l_eye``, the NIA stem plus the eye, which is also how a
segmentation folder names its PNGs; the video stem for clips), or through an
alias: the NIA stem of a test with one sample per image (the two-eye crop).
A stem shared by two expected samples (the two eyes) is no alias.

Each reader returns the predictions of the expected samples predicted exactly
once with a usable value, in the order of ``names``, and an ``Alignment``
that lists missing samples (not predicted), duplicated samples (predicted
more than once, under any of their keys: ambiguous, so not scored),
non-finite ones (NaN or infinity given) and extra keys (naming no expected
sample). Nothing is ignored silently: ``Alignment.skipped()`` is what goes
into metrics.json's ``skipped`` (all three are the submission's skips;
extra keys skip no sample of the split). A malformed file raises
``PredictionFileError`` naming the file, the line and the field (exit 2).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path, PureWindowsPath
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from common.delivery.png_header import ihdr_size
from common.imread import read_image
from common.verdicts.results import RunError

#: How many names of each list go into metrics.json (the counts are always complete).
MAX_LISTED_NAMES = 20
#: Extensions a key may carry (case-insensitive): NIA frames and labels, our crops, NIA videos.
KEY_EXTENSIONS = (".png", ".jpg", ".jpeg", ".json", ".mp4")
#: For a --predictions help text: which keys name a sample.
KEYS_HELP = ("rows keyed by our crop id, or by the NIA image's file name or stem (X.png or X; a path is cut "
             "to its file name); per-eye tests add the eye: X_r_eye / X_l_eye")


class PredictionFileError(RunError):
    """A prediction file or folder cannot be read as the documented format."""


def normalise_key(key: str) -> str:
    """A prediction key as a name: surrounding blanks, folders (/ or \\) and one extension of KEY_EXTENSIONS off."""
    name = PureWindowsPath(str(key).strip()).name  # splits on both / and \
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and stem and f".{suffix.lower()}" in KEY_EXTENSIONS else name


@dataclass(frozen=True)
class ExpectedNames:
    """The expected sample names (unique, in scoring order) and the other keys that name one of them."""

    names: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)
    _lookup: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", frozenset(self.names))

    @classmethod
    def of(cls, names: Sequence[str], stems: Sequence[str] | None = None) -> "ExpectedNames":
        """``names`` (our ids); ``stems[i]``, the NIA file stem of ``names[i]``, becomes its alias
        when no other expected sample has that stem and it is not itself an expected name."""
        ordered = tuple(str(n) for n in names)
        repeats = [n for n, c in Counter(ordered).items() if c > 1]
        if repeats:
            raise ValueError(f"expected names contain duplicates, e.g. {repeats[0]!r}; expected unique crop ids")
        aliases: dict[str, str] = {}
        if stems is not None:
            stems = [str(s) for s in stems]
            if len(stems) != len(ordered):
                raise ValueError(f"{len(stems)} stems for {len(ordered)} names; expected one stem per name")
            shared = {s for s, c in Counter(stems).items() if c > 1} | set(ordered)
            aliases = {s: n for s, n in zip(stems, ordered) if s not in shared and s != n}
        return cls(ordered, aliases)

    def resolve(self, key: str) -> str | None:
        """The expected name a key stands for, or None when it names none."""
        name = normalise_key(key)
        return name if name in self._lookup else self.aliases.get(name)


@dataclass(frozen=True)
class Alignment:
    """How a prediction source matches the expected names."""

    source: str
    n_expected: int
    n_scored: int
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    duplicated: tuple[str, ...]
    nonfinite: tuple[str, ...] = ()

    def skipped(self) -> dict[str, int]:
        """Expected samples that could not be scored, by reason (all the submission's)."""
        return {"missing_prediction": len(self.missing), "duplicated_prediction": len(self.duplicated),
                "nonfinite_prediction": len(self.nonfinite)}

    def summary(self) -> dict[str, Any]:
        """Counts plus the first names of each list, for metrics.json ``extra``."""
        lists = ("missing", "extra", "duplicated", "nonfinite")
        return {
            "source": self.source,
            "n_expected": self.n_expected,
            "n_scored": self.n_scored,
            **{f"n_{k}": len(getattr(self, k)) for k in lists},
            **{k: list(getattr(self, k)[:MAX_LISTED_NAMES]) for k in lists},
        }


def as_expected(names: Sequence[str] | ExpectedNames) -> ExpectedNames:
    """``names`` as ExpectedNames (a plain list accepts its names, with or without an extension)."""
    return names if isinstance(names, ExpectedNames) else ExpectedNames.of(names)


def align_names(source: str, found: Sequence[str], names: Sequence[str] | ExpectedNames,
                unusable: Sequence[bool] | None = None) -> tuple[list[str], list[str | None], Alignment]:
    """Match predicted keys (with repeats) to the expected names.

    Returns the expected names to score (predicted once, usable) in order,
    the name each key resolved to (None for an extra key), and the
    Alignment. ``unusable[i]`` marks the i-th prediction's value as
    non-finite: its sample is counted as ``nonfinite`` unless it is also
    duplicated.
    """
    expected = as_expected(names)
    resolved = [expected.resolve(k) for k in found]
    counts = Counter(r for r in resolved if r is not None)
    bad = {r for r, u in zip(resolved, unusable or [False] * len(resolved)) if r is not None and u}
    duplicated = tuple(n for n in expected.names if counts.get(n, 0) > 1)
    nonfinite = tuple(n for n in expected.names if counts.get(n, 0) == 1 and n in bad)
    scored = [n for n in expected.names if counts.get(n, 0) == 1 and n not in bad]
    alignment = Alignment(
        source=source,
        n_expected=len(expected.names),
        n_scored=len(scored),
        missing=tuple(n for n in expected.names if n not in counts),
        extra=tuple(sorted({str(k).strip() for k, r in zip(found, resolved) if r is None})),
        duplicated=duplicated,
        nonfinite=nonfinite,
    )
    return scored, resolved, alignment


def read_gaze_predictions(path: Path | str, names: Sequence[str] | ExpectedNames) -> tuple[pd.DataFrame, Alignment]:
    """Read ``name,pitch,yaw`` (degrees); return rows ``name, pitch, yaw`` aligned to ``names``.

    ``name`` in the result is the expected name (e.g. our crop id) whatever
    key the file used. A value that is a number but not finite (nan, inf) is
    the submission's skip ``nonfinite_prediction``; text that is no number
    (or an empty field) is a malformed file.
    """
    table = _read_csv(Path(path), ("name", "pitch", "yaw"))
    for column in ("pitch", "yaw"):
        table[column] = _numbers(Path(path), table, column)
    unusable = ~np.isfinite(table[["pitch", "yaw"]].to_numpy(dtype=np.float64)).all(axis=1)
    return _aligned(Path(path), table, names, ["name", "pitch", "yaw"], unusable)


def read_state_predictions(
    path: Path | str, names: Sequence[str] | ExpectedNames, classes: Sequence[str]
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


def find_segmentation_predictions(
    folder: Path | str, names: Sequence[str] | ExpectedNames
) -> tuple[pd.DataFrame, Alignment]:
    """List ``{key}.png`` in ``folder``; return rows ``name, path`` aligned to ``names``.

    The PNG extension is matched case-insensitively, so ``a.png`` and ``a.PNG``
    count as a duplicated ``a``. Other files and subfolders are reported as
    extra (``other:<file name>``, ``other:<folder>/``). A symbolic link that
    leads out of the folder is refused: a submission's maps are its own files,
    not, say, the ground truth's class maps linked in. Load each map with
    ``load_class_map``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise PredictionFileError(f"{root}: not a folder; expected a folder of {{crop_id}}.png class maps")
    entries = sorted(root.iterdir())
    inside = root.resolve()
    for entry in entries:
        if not entry.is_symlink():
            continue
        try:
            target = entry.resolve()
        except RuntimeError:  # Python < 3.13 raises this for a loop, and names no file
            raise PredictionFileError(f"{entry}: a symbolic link that loops; expected the class maps as files in "
                                      "the predictions folder") from None
        if not target.is_relative_to(inside):
            raise PredictionFileError(f"{entry}: a symbolic link out of the predictions folder (to {target}); "
                                      "expected the class maps as files in it")
    # a dangling link inside counts as a file (one that cannot be read); a FIFO or socket is never opened
    files = [p for p in entries if p.is_file() or (p.is_symlink() and not p.exists())]
    pngs = [p for p in files if p.suffix.lower() == ".png"]
    table = pd.DataFrame({"name": [p.stem for p in pngs], "path": [str(p) for p in pngs]}, dtype=object)
    others = [f"other:{p.name}" for p in files if p.suffix.lower() != ".png"]
    others += [f"other:{p.name}/" for p in entries if p.is_dir()]
    aligned, alignment = _aligned(root, table, names, ["name", "path"])
    if others:
        alignment = replace(alignment, extra=tuple(sorted([*alignment.extra, *others])))
    return aligned, alignment


def load_class_map(path: Path | str, num_classes: int, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read one PNG class map as a 2D uint8 array; check its values and shape.

    The size its PNG header declares is checked before anything is decoded: a
    small file declaring 20000 x 20000 pixels is refused, not inflated (issue 19)."""
    import cv2

    try:
        declared = ihdr_size(path)
    except OSError as exc:
        raise PredictionFileError(f"{path}: cannot be read as a PNG: {exc.strerror}") from None
    if declared is None:
        raise PredictionFileError(f"{path}: cannot be read as a PNG (no PNG signature and sound IHDR header)")
    if shape is not None and (declared[1], declared[0]) != tuple(shape):
        raise PredictionFileError(f"{path}: has size {(declared[1], declared[0])} (H, W) in its PNG header; "
                                  f"expected {tuple(shape)} like the crop (not decoded)")
    image = read_image(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise PredictionFileError(f"{path}: cannot be read as a PNG")
    if image.ndim != 2:
        raise PredictionFileError(f"{path}: has shape {image.shape}; expected a single-channel class map")
    if shape is not None and image.shape != tuple(shape):
        raise PredictionFileError(f"{path}: has size {image.shape} (H, W); expected {tuple(shape)} like the crop")
    if image.size and int(image.max()) >= num_classes:
        raise PredictionFileError(f"{path}: holds class id {int(image.max())}; expected 0..{num_classes - 1}")
    return image.astype(np.uint8, copy=False)  # a 16-bit PNG of class ids 0..2 is a class map too


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


def _numbers(path: Path, table: pd.DataFrame, column: str) -> pd.Series:
    """The column as float64; text that is no number (nan and inf are numbers) names its line."""
    text = table[column].str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna().to_numpy() & ~text.str.lower().isin(("nan", "+nan", "-nan")).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise PredictionFileError(
            f"{path}: line {row + 2}, field {column} is {table[column].iloc[row]!r}; expected a number of degrees"
        )
    return values.astype(np.float64)


def _aligned(
    source: Path, table: pd.DataFrame, names: Sequence[str] | ExpectedNames, columns: list[str],
    unusable: np.ndarray | None = None,
) -> tuple[pd.DataFrame, Alignment]:
    scored, resolved, alignment = align_names(
        str(source), table["name"].tolist(), names, None if unusable is None else unusable.tolist())
    table = table.assign(name=resolved)
    by_name = table[table["name"].isin(set(scored))].set_index("name")
    aligned = by_name.loc[scored].reset_index()[columns] if scored else pd.DataFrame(columns=columns)
    return aligned.reset_index(drop=True), alignment
