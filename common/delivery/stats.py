"""`nia stats`: the published composition beside the measured one, and data-quality flags.

Shares are measured over valid frames (``kind == "frame"`` and ``valid``);
frame and video counts per display/image type over all frame/video rows.
Quality flags: invalid rows by JSON path, unpaired and duplicate files,
name/JSON mismatches by field, synthetic-looking eye-tracker tracks (per
video, :mod:`common.delivery.synthetic_tracks`), head pose outside a physical range, gaze points
off the 1920x1080 screen, valid labels with a missing iris or eyelid, images
invalid by check (damaged PNG, not the delivery's size, labels outside the
image: :mod:`common.delivery.image_checks`) and the PNG sizes of every display and
image type (the last two only for manifests that have the PNG header columns).

A manifest has millions of rows and about 80 columns: every function here
picks the few columns it needs before filtering rows (``df[cols][mask]``;
``df.loc[mask, cols]`` filters all columns first), so that no filter copies
the whole frame (0.6 kB a row each time).
"""
from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from common.delivery.synthetic_tracks import classify_track

# physical head-pose range (degrees). pose.head is documented as relative and
# uncalibrated (x3600 in the builder's scripts), so values past this are flagged.
HEAD_LIMITS = {"head_roll": 180.0, "head_pitch": 90.0, "head_yaw": 90.0}
SCREEN = (1920.0, 1080.0)
EYE_COLUMNS = {"r_iris": "r_iris_cx", "l_iris": "l_iris_cx", "r_eyelid": "r_eyelid", "l_eyelid": "l_eyelid"}
SHARE_COLUMNS = {"display": "inst", "image": "image", "state": "condition", "posture": "posture"}
_INDEX = re.compile(r"\[[^\]]*\]")  # an array index in a JSON path


def points_on_screen(point_x: pd.Series, point_y: pd.Series) -> pd.Series:
    """True where ``pose.point`` lies on the 1920x1080 screen (edges included); False off it or unknown."""
    return point_x.between(0, SCREEN[0]) & point_y.between(0, SCREEN[1])


def published() -> dict[str, Any]:
    """The published composition (``common/data/published_composition.json``)."""
    text = resources.files("common").joinpath("data/published_composition.json").read_text(encoding="utf-8")
    return json.loads(text)


def _share(series: pd.Series) -> dict[str, float]:
    counts = series.value_counts()
    total = counts.sum()
    return {str(k): 100.0 * v / total for k, v in counts.items()} if total else {}


def _valid_frames(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` of the valid frame rows."""
    return df[columns][(df["kind"] == "frame") & df["valid"]]


def composition_table(df: pd.DataFrame, pub: dict[str, Any]) -> pd.DataFrame:
    """Rows ``(group, key, published, measured)``; shares in %, the rest counts."""
    good = _valid_frames(df, [*SHARE_COLUMNS.values(), "metaid"])
    rows = []
    for group, column in SHARE_COLUMNS.items():
        measured = _share(good[column].dropna())
        for key in dict.fromkeys([*pub["shares_percent"][group], *measured]):
            rows.append((f"{group} %", key, pub["shares_percent"][group].get(key), measured.get(key, 0.0)))
    for group, kind in (("frames", "frame"), ("videos", "video")):
        sub = df[["device", "image_type"]][df["kind"] == kind]
        counts = (sub["device"].fillna("?") + "/" + sub["image_type"].fillna("?")).value_counts()
        for key in dict.fromkeys([*pub[group], *counts.index]):
            rows.append((group, key, pub[group].get(key), int(counts.get(key, 0))))
        rows.append((group, "total", pub[f"{group}_total"], len(sub)))
    people = good.groupby("inst")["metaid"].nunique()
    for key in dict.fromkeys([*pub["people_per_display"], *people.index]):
        rows.append(("people", key, pub["people_per_display"].get(key), int(people.get(key, 0))))
    rows.append(("people", "total", None, int(good["metaid"].nunique())))
    return pd.DataFrame(rows, columns=["group", "key", "published", "measured"])


def synthetic_tracks(df: pd.DataFrame) -> pd.DataFrame:
    """One row per video whose frames' gaze points look synthetic: video_stem, n_frames, pattern, reason."""
    usable = (df["kind"] == "frame") & df["video_stem"].notna() & df["point_x"].notna()
    frames = df[["video_stem", "frame", "point_x", "point_y"]][usable].sort_values(["video_stem", "frame"])
    stems = frames["video_stem"].to_numpy()
    points = frames[["point_x", "point_y"]].to_numpy(dtype=float)
    starts = np.flatnonzero(np.r_[True, stems[1:] != stems[:-1]]) if len(stems) else np.array([], dtype=int)
    rows = []
    for start, end in zip(starts, [*starts[1:], len(stems)]):  # one video's frames, in frame order
        track = classify_track(points[start:end])
        if track:
            rows.append((stems[start], end - start, track.pattern, track.message))
    return pd.DataFrame(rows, columns=["video_stem", "n_frames", "pattern", "reason"])


def _error_path(error: str) -> str:
    """``file: Annotations.inst: message`` -> ``Annotations.inst`` (indices folded to [])."""
    parts = error.split(": ", 2)
    path = parts[1] if len(parts) == 3 else error
    return _INDEX.sub("[]", path)


def image_flags(df: pd.DataFrame) -> dict[str, Any]:
    """Rows with an image error by check, and ``{device/type: {WxH: n}}`` over the readable PNGs."""
    if "image_error" not in df.columns or "png_width" not in df.columns:
        return {}  # indexed before nia index read PNG headers
    errors = df["image_error"][df["image_error"].fillna("") != ""]
    sizes = df[["device", "image_type", "inst", "image", "png_width", "png_height"]][df["png_width"].notna()]
    # the groups of common.delivery.image_checks: the name's display and type, else the JSON's
    group = (sizes["device"].fillna(sizes["inst"]).fillna("?") + "/"
             + sizes["image_type"].fillna(sizes["image"]).fillna("?"))
    size = sizes["png_width"].astype(str) + "x" + sizes["png_height"].astype(str)
    table: dict[str, dict[str, int]] = {}
    for key, n in (group + "\t" + size).value_counts().sort_index().items():
        g, wxh = key.split("\t")
        table.setdefault(g, {})[wxh] = int(n)
    return {"image_errors_by_check": {str(k): int(v) for k, v in errors.map(_error_path).value_counts().items()},
            "image_sizes": table}


def quality_flags(df: pd.DataFrame, tracks: pd.DataFrame) -> dict[str, Any]:
    """Counts of every data-quality problem (see the module docstring)."""
    good = _valid_frames(df, [*HEAD_LIMITS, "point_x", "point_y", *EYE_COLUMNS.values()])
    invalid_errors = df.loc[~df["valid"], "error"]
    mismatch = df.loc[df["mismatch"].fillna("") != "", "mismatch"]
    fields: dict[str, int] = {}
    for text in mismatch:
        for item in text.split(";"):
            key = item.split(":", 1)[0]
            fields[key] = fields.get(key, 0) + 1
    head = {c: int((good[c].abs() > limit).sum()) for c, limit in HEAD_LIMITS.items()}
    off_screen = ~points_on_screen(good["point_x"], good["point_y"]) & good["point_x"].notna() \
        & good["point_y"].notna()
    missing = {eye: int(good[col].isna().sum()) for eye, col in EYE_COLUMNS.items()}
    any_missing = good[list(EYE_COLUMNS.values())].isna().any(axis=1)
    return {
        "rows": len(df),
        "kinds": {str(k): int(v) for k, v in df["kind"].value_counts().items()},
        "invalid_rows": len(invalid_errors),
        "invalid_by_path": {str(k): int(v) for k, v in
                            invalid_errors.fillna("").map(_error_path).value_counts().head(30).items()},
        "duplicate_files": int(df["sample_id"].str.contains("#dup", regex=False).sum()),
        "name_json_mismatch_rows": len(mismatch),
        "name_json_mismatch_by_field": fields,
        "synthetic_track_videos": len(tracks),
        "synthetic_track_by_pattern": {str(k): int(v) for k, v in tracks["pattern"].value_counts().items()},
        "head_pose_out_of_range": head,
        "head_pose_limits_deg": HEAD_LIMITS,
        "gaze_point_off_screen": int(off_screen.sum()),
        "missing_eye_frames": int(any_missing.sum()),
        "missing_eye_by_label": missing,
        **image_flags(df),
    }


def compute_stats(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """(composition table, quality flags, synthetic-track list) for a manifest DataFrame."""
    tracks = synthetic_tracks(df)
    return composition_table(df, published()), quality_flags(df, tracks), tracks


def _fmt(value: Any, share: bool) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    return f"{value:.2f}" if share else f"{int(value):,}"


def format_table(table: pd.DataFrame) -> str:
    """The side-by-side text table printed by `nia stats`."""
    lines = [f"{'group':10s} {'key':8s} {'published':>12s} {'measured':>12s}"]
    for row in table.itertuples(index=False):
        share = row.group.endswith("%")
        lines.append(f"{row.group:10s} {row.key:8s} {_fmt(row.published, share):>12s} {_fmt(row.measured, share):>12s}")
    return "\n".join(lines)


def format_flags(flags: dict[str, Any]) -> str:
    """One line per quality flag."""
    return "\n".join(f"{k}: {json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v}"
                     for k, v in flags.items())
