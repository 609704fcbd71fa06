"""Gaze ground truth from labels and a device profile (the L2CS-Net test's label).

How the official gaze angles were derived is unpublished, so the derivation is
explicit and selectable by name (see docs/gaze.md):

- ``geometric`` (default): the eye is the back-projection of the midpoint of
  the two labelled eye centres (``r_center``/``l_center``, else the iris
  ellipse centres) at Euclidean distance ``distance.cam`` * 10 mm from the
  camera; the target is ``pose.point`` placed on the screen by the profile.
- ``normal``: the eye sits on the screen's normal through the screen centre
  at ``distance.display`` * 10 mm; the target is the same screen point.

Both give the unit vector eye -> target in the camera frame and its pitch/yaw
(``common.gaze_angles`` convention). Rows where a derivation is impossible get
NaN and a counted reason; nothing is dropped silently.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from common.gaze_angles import vector_to_pitchyaw_deg
from common.targets.geometry import backproject
from common.targets.profiles import DIRECTION_CODES, PROFILE_FILE_NAME, DeviceProfile, ProfileSet

CM_TO_MM = 10.0  # distance.* are taken to be centimetres (a guess: the unit is unpublished)
LABELLED_KINDS = ("frame", "label_only")  # rows with a per-frame label JSON

VECTOR_COLUMNS = [
    "gaze_x", "gaze_y", "gaze_z",
    "eye_x_mm", "eye_y_mm", "eye_z_mm",
    "target_x_mm", "target_y_mm", "target_z_mm",
]
GAZE_COLUMNS = ["gaze_pitch_deg", "gaze_yaw_deg", *VECTOR_COLUMNS, "gaze_method", "gaze_profile_sha256"]


@dataclass
class GazeResult:
    """Gaze columns aligned with the input rows, and why rows got NaN."""

    columns: pd.DataFrame
    skipped: Counter = field(default_factory=Counter)

    @property
    def n_derived(self) -> int:
        return int(self.columns["gaze_pitch_deg"].notna().sum())


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    """A float column, or all-NaN when the manifest lacks it."""
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)


def _text_column(df: pd.DataFrame, name: str) -> pd.Series:
    """A string column with '?' for nulls (and for a missing column), usable as a group key."""
    if name not in df.columns:
        return pd.Series("?", index=df.index)
    return df[name].astype(object).where(df[name].notna(), "?")


def _eye_pixel(df: pd.DataFrame, side: str) -> np.ndarray:
    """(n, 2) eye centre pixel of one eye: the labelled centre point, else the iris ellipse centre."""
    centre = np.stack([_column(df, f"{side}_center_x"), _column(df, f"{side}_center_y")], axis=-1)
    iris = np.stack([_column(df, f"{side}_iris_cx"), _column(df, f"{side}_iris_cy")], axis=-1)
    missing = np.isnan(centre).any(axis=-1)
    centre[missing] = iris[missing]
    return centre


def eyes_midpoint_px(df: pd.DataFrame) -> np.ndarray:
    """(n, 2) midpoint of the right and left eye centres; NaN where either eye is missing."""
    return (_eye_pixel(df, "r") + _eye_pixel(df, "l")) / 2.0


def _geometric(df: pd.DataFrame, profile: DeviceProfile, direction: str) -> tuple[np.ndarray, np.ndarray]:
    midpoint = eyes_midpoint_px(df)
    distance_mm = _column(df, "distance_cam") * CM_TO_MM
    eye = backproject(midpoint[:, 0], midpoint[:, 1], distance_mm, profile.camera_matrix)
    reasons = np.where(np.isnan(midpoint).any(axis=-1), "missing eye centre (r/l_center and iris)", "")
    reasons = np.where((reasons == "") & ~(distance_mm > 0), "missing or non-positive distance.cam", reasons)
    return eye, reasons


def _normal(df: pd.DataFrame, profile: DeviceProfile, direction: str) -> tuple[np.ndarray, np.ndarray]:
    distance_mm = _column(df, "distance_display") * CM_TO_MM
    centre_px = np.array(profile.point_space_px, dtype=np.float64) / 2.0
    # The screen centre as a camera-frame point, then the screen normal (+z of
    # the screen frame) expressed in the camera frame.
    centre = profile.screen_points_to_camera(centre_px[None, :], direction)[0]
    normal = profile.screen_vectors_to_camera(np.array([0.0, 0.0, 1.0]))
    eye = centre[None, :] + distance_mm[:, None] * normal[None, :]
    reasons = np.where(~(distance_mm > 0), "missing or non-positive distance.display", "")
    return eye, reasons


# A derivation gives the eye (n, 3) in the camera frame and a reason per row ('' when usable);
# the target, pose.point on the screen, is the same for every method.
Derivation = Callable[[pd.DataFrame, DeviceProfile, str], tuple[np.ndarray, np.ndarray]]
METHODS: dict[str, Derivation] = {"geometric": _geometric, "normal": _normal}


def _empty_columns(index: pd.Index, method: str, sha256: str) -> pd.DataFrame:
    out = pd.DataFrame(np.nan, index=index, columns=["gaze_pitch_deg", "gaze_yaw_deg", *VECTOR_COLUMNS])
    out["gaze_method"] = method
    out["gaze_profile_sha256"] = sha256
    return out


def derive_gaze(df: pd.DataFrame, profiles: ProfileSet, method: str = "geometric") -> GazeResult:
    """Gaze columns (``GAZE_COLUMNS``) for every row of a manifest DataFrame.

    Vectorised per (device, direction) group. Rows that are not ``valid``, are
    not labelled frames (``kind`` video or image_only), have
    an unknown display or direction, no ``pose.point``, or lack what the method
    needs get NaN angles and vectors and one counted reason each.
    """
    if method not in METHODS:
        raise ValueError(f"gaze method must be one of {sorted(METHODS)}, got {method!r}")
    out = _empty_columns(df.index, method, profiles.sha256)
    skipped: Counter = Counter()
    valid = df["valid"].fillna(False).astype(bool).to_numpy() if "valid" in df.columns else np.ones(len(df), bool)
    skipped["invalid label (see the error column)"] += int((~valid).sum())
    kind = _text_column(df, "kind") if "kind" in df.columns else pd.Series("frame", index=df.index)
    unlabelled = valid & ~kind.isin(LABELLED_KINDS).to_numpy()
    for value, count in kind[unlabelled].value_counts().items():
        skipped[f"not a labelled frame (kind={value})"] += int(count)
    usable = df[valid & ~unlabelled]
    keys = [_text_column(usable, "device"), _text_column(usable, "direction")]
    for (device, direction), group in usable.groupby(keys, sort=True):
        if device not in profiles.devices:
            skipped[f"no profile for display {device!r}"] += len(group)
            continue
        if direction not in DIRECTION_CODES:
            skipped[f"unknown direction {direction!r} (expected T, L or R)"] += len(group)
            continue
        profile = profiles[device]
        eye, reasons = METHODS[method](group, profile, direction)
        points = np.stack([_column(group, "point_x"), _column(group, "point_y")], axis=-1)
        target = profile.screen_points_to_camera(points, direction)
        reasons = np.where((reasons == "") & np.isnan(target).any(axis=-1), "missing pose.point", reasons)
        for reason, count in zip(*np.unique(reasons[reasons != ""], return_counts=True)):
            skipped[str(reason)] += int(count)
        ok = reasons == ""
        vector = target - eye
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = vector / np.linalg.norm(vector, axis=-1, keepdims=True)
        angles = vector_to_pitchyaw_deg(unit)
        block = np.concatenate([angles, unit, eye, target], axis=-1)
        block[~ok] = np.nan
        out.loc[group.index, ["gaze_pitch_deg", "gaze_yaw_deg", *VECTOR_COLUMNS]] = block
    return GazeResult(columns=out, skipped=Counter({k: v for k, v in skipped.items() if v}))


#: The label under each derivation, side by side (`nia crops` carries them into the crop index, so the
#: report can score the same predictions under every derivation: docs/report.md, "Assumption sensitivity").
DERIVATION_COLUMNS = [f"gaze_{angle}_deg_{method}" for method in METHODS for angle in ("pitch", "yaw")]


def every_derivation(df: pd.DataFrame, profiles: ProfileSet) -> pd.DataFrame:
    """``DERIVATION_COLUMNS`` for every row of a manifest: pitch and yaw (deg) under each method, NaN where
    a method cannot derive one."""
    columns = {}
    for method in METHODS:
        angles = derive_gaze(df, profiles, method).columns
        columns[f"gaze_pitch_deg_{method}"] = angles["gaze_pitch_deg"].astype("float64")
        columns[f"gaze_yaw_deg_{method}"] = angles["gaze_yaw_deg"].astype("float64")
    return pd.DataFrame(columns, index=df.index)


def add_gaze_columns(df: pd.DataFrame, profiles: ProfileSet, method: str = "geometric") -> tuple[pd.DataFrame, GazeResult]:
    """A copy of ``df`` with the gaze columns replaced or added."""
    result = derive_gaze(df, profiles, method)
    merged = df.drop(columns=[c for c in GAZE_COLUMNS if c in df.columns])
    return pd.concat([merged, result.columns], axis=1), result


def resolve_profile_path(explicit: str | Path | None, root: Path | None) -> tuple[Path | None, str]:
    """Which profile file to use and why: ``explicit``, else ``ROOT/device_profiles.json``, else bundled (None)."""
    if explicit is not None:
        return Path(explicit), "given with --profile"
    if root is not None and (Path(root) / PROFILE_FILE_NAME).is_file():
        return Path(root) / PROFILE_FILE_NAME, "found at the manifest's root"
    return None, "bundled default (common/data/device_profiles.json)"
