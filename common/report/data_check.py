"""Recomputing a result's split, skip counts and truth from the data it was scored on.

metrics.json and per_sample.csv agree with each other whatever a forger does
to both (rows deleted and booked as skips, truth set equal to the
prediction, hashes recomputed). What they cannot fake is the data. When the
index the run was scored on is at hand (`nia report --data DIR`, else the
`manifest_path` of the result's provenance, else RESULTS/<test>/prepared),
and its SHA-256 is the `manifest_sha256` the run recorded, `check_against_data`
reads the split again with the test's own reader and checks:

* `n_in_split` is the split's size;
* each skip reason found in the index (labels, files) has the count the
  index gives; the reasons only a run finds (`unreadable_image`,
  `unreadable_video`) count at least that many, and every usable sample of
  the split is either in per_sample.csv or one of those run-time or
  submission skips; per_sample.csv names only usable samples of the split;
* an image a run says it could not decode does not decode (L2CS-Net,
  RIT-Net; a video's decoding is trusted, and said so);
* the truth of every scored sample is the data's: the gaze angles (L2CS-Net),
  the state (Former-DFER), the pixels of each class in the class map, which
  every intersection must not exceed and every union must reach (RIT-Net).

Where no such index is at hand, the entry says plainly that these numbers
are the run's own (`DataCheck.checked` False).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pandas as pd

from common.suite.registry import get_test, hook
from common.targets.crop_rows import CropRows
from common.verdicts.results import sha256_fresh
from common.verdicts.thresholds import SUBMISSION, skip_kind

INDEX_NAME = "index.parquet"   # a crop dataset's and a clip dataset's (common.targets.crops / clips)
#: Data skips only a run finds (decoding); the index gives a lower bound for them.
RUN_TIME_REASONS = ("unreadable_image", "unreadable_video")
TRUTH_TOLERANCE = 1e-6
NOT_CHECKED = ("not checked against the data (the index it was scored on is not at hand; give nia report --data): "
               "n_in_split, the data's skip counts and the truth are the run's own")


@dataclass(frozen=True)
class DataCheck:
    """Whether a result was checked against its data, against which index, and what disagreed."""

    checked: bool
    index: str | None
    note: str
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "index": self.index, "note": self.note}


def find_index(result: dict[str, Any], folder: Path, given: tuple[Path, ...]) -> tuple[Path | None, str | None]:
    """(the index file whose SHA-256 is the run's manifest_sha256, None) or (None, why none is)."""
    provenance = result.get("provenance") if isinstance(result.get("provenance"), dict) else {}
    wanted = provenance.get("manifest_sha256")
    recorded = provenance.get("manifest_path")
    candidates = [p / INDEX_NAME if p.is_dir() else p for p in given]
    if not given:
        candidates += [Path(recorded)] if isinstance(recorded, str) and recorded else []
        candidates += [folder / "prepared" / INDEX_NAME]
    for path in candidates:
        if path.is_file() and isinstance(wanted, str) and sha256_fresh(path) == wanted:
            return path, None
    if given:
        return None, (f"none of --data {', '.join(map(str, given))} is the index this result was scored on "
                      f"(its manifest_sha256 is {wanted}; give the crop or clip folder the run scored: the output "
                      "of nia crops / nia clips, or RESULTS_DIR/prepared for a dataset root)")
    return None, None


def check_against_data(test: str, result: dict[str, Any], per_sample: pd.DataFrame | None, folder: Path,
                       given: tuple[Path, ...] = ()) -> DataCheck:
    """The data check of one result folder (see the module docstring)."""
    index, refused = find_index(result, folder, given)
    if refused:
        return DataCheck(False, None, NOT_CHECKED, [refused])
    if index is None or per_sample is None:
        return DataCheck(False, None, NOT_CHECKED)
    declared = get_test(test).data_check
    if declared is None:
        return DataCheck(False, None, f"{NOT_CHECKED} (test {test} declares no data check)")
    spec = hook(declared)
    split = str((result.get("extra") or {}).get("split") or (result.get("provenance") or {}).get("split") or "test")
    try:
        rows = spec.read(index.parent, split)
    except (OSError, ValueError, KeyError) as exc:  # e.g. the index is here, its videos are not
        why = f"{index}: cannot read split {split!r}: {exc}"
        return DataCheck(False, str(index), f"{NOT_CHECKED} ({why})", [why] if given else [])
    problems = _count_problems(result, per_sample, rows, spec, index.parent)
    problems += spec.truth(per_sample, rows, index.parent) if "name" in per_sample.columns else []
    trusted = "; the decoding of the videos it says were unreadable is trusted" if spec.trusts_video_decoding else ""
    note = (f"checked against the data ({index}, split {split!r}): n_in_split, the data's skip counts and the "
            f"truth of every scored sample recomputed{trusted}")
    return DataCheck(True, str(index), note, problems)


@dataclass(frozen=True)
class _Spec:
    read: Callable[[Path, str], CropRows]
    key: str                                                       # the index column per_sample's name is
    truth: Callable[[pd.DataFrame, CropRows, Path], list[str]]
    undecodable: Callable[[pd.DataFrame, Path], int] | None        # how many of these rows' files do not decode
    trusts_video_decoding: bool = False                            # the run's unreadable-video skips are trusted


def _count_problems(result: dict[str, Any], per_sample: pd.DataFrame, rows: CropRows, spec: _Spec,
                    data: Path) -> list[str]:
    problems = []
    if result.get("n_in_split") != rows.n_in_split:
        problems.append(f"n_in_split is {result.get('n_in_split')}; the data's split has {rows.n_in_split}")
    claimed = {str(k): int(v) for k, v in (result.get("skipped") or {}).items() if isinstance(v, int)}
    for reason in sorted(set(claimed) | set(rows.skipped)):
        found, said = rows.skipped.get(reason, 0), claimed.get(reason, 0)
        if reason in RUN_TIME_REASONS and said >= found:
            continue
        if said != found:
            problems.append(f"skipped {reason} is {said}; the data gives {found}")
    usable = set(rows.rows[spec.key].astype(str))
    scored = set(per_sample["name"].astype(str)) if "name" in per_sample.columns else set()
    foreign = sorted(scored - usable)
    if foreign:
        problems.append(f"per_sample.csv scores {len(foreign)} sample(s) that are not usable samples of the split "
                        f"in the data (e.g. {foreign[0]!r})")
    run_time = {r: max(0, claimed.get(r, 0) - rows.skipped.get(r, 0)) for r in RUN_TIME_REASONS}
    submission = sum(v for r, v in claimed.items() if _is_submission(r))
    unscored = usable - scored
    if len(unscored) != sum(run_time.values()) + submission:
        problems.append(f"{len(unscored)} usable samples of the split are not in per_sample.csv, but the run "
                        f"books {sum(run_time.values())} as unreadable and {submission} as the submission's")
    elif spec.undecodable is not None and sum(run_time.values()):
        missing = rows.rows[rows.rows[spec.key].astype(str).isin(unscored)]
        bad = spec.undecodable(missing, data)
        if bad < sum(run_time.values()):
            problems.append(f"the run books {sum(run_time.values())} samples as unreadable, but only {bad} of the "
                            "unscored samples' files fail to decode")
    return problems


def _is_submission(reason: str) -> bool:
    try:
        return skip_kind(reason) == SUBMISSION
    except ValueError:
        return False


def _by_name(per_sample: pd.DataFrame, rows: CropRows, key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """per_sample's rows that name usable samples, and the data's rows in the same order."""
    table = rows.rows.assign(_key=rows.rows[key].astype(str)).drop_duplicates("_key").set_index("_key")
    mine = per_sample[per_sample["name"].astype(str).isin(table.index)]
    return mine, table.loc[mine["name"].astype(str)]


def _gaze_truth(per_sample: pd.DataFrame, rows: CropRows, data: Path) -> list[str]:
    mine, theirs = _by_name(per_sample, rows, "crop_id")
    if not {"true_pitch", "true_yaw"} <= set(mine.columns):
        return []
    ours = mine[["true_pitch", "true_yaw"]].to_numpy(dtype=np.float64)
    truth = theirs[["gaze_pitch_deg", "gaze_yaw_deg"]].to_numpy(dtype=np.float64)
    off = int((~(np.abs(ours - truth) <= TRUTH_TOLERANCE)).any(axis=1).sum())
    return [f"true_pitch/true_yaw of {off} rows differ from the data's gaze labels"] if off else []


def _state_truth(per_sample: pd.DataFrame, rows: CropRows, data: Path) -> list[str]:
    mine, theirs = _by_name(per_sample, rows, "clip_id")
    if "truth" not in mine.columns:
        return []
    off = int((mine["truth"].astype(str).to_numpy() != theirs["state"].astype(str).to_numpy()).sum())
    return [f"truth of {off} rows differs from the data's observer state"] if off else []


def _class_map_truth(per_sample: pd.DataFrame, rows: CropRows, data: Path) -> list[str]:
    """Each class's truth pixels t (from the class-map PNG): inter <= t <= union, and sum(inter + union) is
    twice the map's pixels (the prediction's pixels per class are union + inter - t)."""
    from ritnet.scoring import CLASS_NAMES

    columns = [f"inter_{c}" for c in CLASS_NAMES] + [f"union_{c}" for c in CLASS_NAMES]
    mine, theirs = _by_name(per_sample, rows, "crop_id")
    if any(c not in mine.columns for c in columns):
        return []
    counts = mine[columns].to_numpy(dtype=np.float64)
    inter, union = counts[:, :len(CLASS_NAMES)], counts[:, len(CLASS_NAMES):]
    off = 0
    for i, png in enumerate(theirs["png_path"]):
        class_map = cv2.imread(str(data / png), cv2.IMREAD_UNCHANGED)
        if class_map is None:
            off += 1
            continue
        truth = np.array([(class_map == k).sum() for k in range(len(CLASS_NAMES))], dtype=np.float64)
        if (inter[i] > truth).any() or (union[i] < truth).any() or (inter[i] + union[i]).sum() != 2 * class_map.size:
            off += 1
    return [f"inter_/union_ of {off} rows do not fit the data's class maps"] if off else []


def _images_that_do_not_decode(columns: tuple[str, ...]) -> Callable[[pd.DataFrame, Path], int]:
    def count(rows: pd.DataFrame, data: Path) -> int:
        return sum(any(cv2.imread(str(data / row[c]), cv2.IMREAD_UNCHANGED) is None for c in columns)
                   for _, row in rows.iterrows())
    return count


def _read_eye_crops(data: Path, split: str) -> CropRows:
    from l2cs.dataset import read_eye_crops

    return read_eye_crops(data, split)


def _read_seg_crops(data: Path, split: str) -> CropRows:
    from ritnet.dataset import read_seg_crops

    return read_seg_crops(data, split)


def _read_state_clips(data: Path, split: str) -> CropRows:
    from dfer.dataset import read_state_clips

    return read_state_clips(data, split)


#: Each test's data check, as the registry names them (common.suite.registry, ``data_check``).
GAZE_CROPS = _Spec(_read_eye_crops, "crop_id", _gaze_truth, _images_that_do_not_decode(("jpg_path",)))
SEGMENTATION_CROPS = _Spec(_read_seg_crops, "crop_id", _class_map_truth,
                           _images_that_do_not_decode(("jpg_path", "png_path")))
STATE_CLIPS = _Spec(_read_state_clips, "clip_id", _state_truth, None, trusts_video_decoding=True)
