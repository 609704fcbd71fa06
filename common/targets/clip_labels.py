"""What each clip is given besides its frames: its state (the video JSON's, else the file name's)
and the face region the model sees (from the eye labels, else a fixed square); see :mod:`common.targets.clips`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.delivery.filenames import STATES


@dataclass(frozen=True)
class ClipOptions:
    """What the index depends on besides the manifest and the videos."""

    min_frames: int = 16
    face_scale: float = 2.5
    face_shift: float = 0.15

    def as_dict(self) -> dict[str, Any]:
        return {"min_frames": self.min_frames, "face_scale": self.face_scale, "face_shift": self.face_shift}


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name].astype(object) if name in df.columns else pd.Series(None, index=df.index, dtype=object)


def resolve_states(videos: pd.DataFrame) -> pd.DataFrame:
    """``state``, ``label_source`` and ``label_mismatch`` per video row.

    The JSON's ``condition`` (a video label exists and gives a known state)
    wins over the name's ``state``; a disagreement is kept as ``name X, json Y``.
    """
    json_state = _column(videos, "condition").where(_column(videos, "json_path").notna())
    json_state = json_state.where(json_state.isin(STATES))
    name_state = _column(videos, "state").where(lambda s: s.isin(STATES))
    state = json_state.where(json_state.notna(), name_state)
    state = state.astype(object).where(state.notna(), None)
    source = np.where(json_state.notna(), "json", np.where(name_state.notna(), "name", ""))
    both = json_state.notna() & name_state.notna() & (json_state != name_state)
    mismatch = pd.Series("", index=videos.index, dtype=object)
    mismatch[both] = "name " + name_state[both].astype(str) + ", json " + json_state[both].astype(str)
    return pd.DataFrame({"state": state, "label_source": source, "label_mismatch": mismatch}, index=videos.index)


def eye_boxes(df: pd.DataFrame) -> pd.DataFrame:
    """Per ``video_stem``: the box around both eye centres over its valid frame labels
    (``xmin, xmax, ymin, ymax``), the median eye distance ``iod`` and the number of frames used."""
    needed = ["r_center_x", "r_center_y", "l_center_x", "l_center_y"]
    if any(c not in df.columns for c in needed + ["video_stem"]):
        return pd.DataFrame(columns=["xmin", "xmax", "ymin", "ymax", "iod", "label_frames"])
    frames = (df["kind"] == "frame") & df["valid"].fillna(False).astype(bool) & df["video_stem"].notna()
    part = df.loc[frames, ["video_stem", *needed]]
    part = part[part[needed].notna().all(axis=1)]
    rx, ry, lx, ly = (part[c].astype("float64") for c in needed)
    per_frame = pd.DataFrame({
        "video_stem": part["video_stem"].astype(str),
        "xmin": np.minimum(rx, lx), "xmax": np.maximum(rx, lx),
        "ymin": np.minimum(ry, ly), "ymax": np.maximum(ry, ly),
        "iod": np.hypot(rx - lx, ry - ly),
    })
    grouped = per_frame.groupby("video_stem", sort=False)
    return grouped.agg(xmin=("xmin", "min"), xmax=("xmax", "max"), ymin=("ymin", "min"), ymax=("ymax", "max"),
                       iod=("iod", "median"), label_frames=("iod", "size"))


def fixed_region(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square of a ``width`` x ``height`` frame."""
    side = min(width, height)
    x0, y0 = (width - side) // 2, (height - side) // 2
    return x0, y0, x0 + side, y0 + side


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def label_region(box: dict[str, float], width: int, height: int,
                 options: ClipOptions) -> tuple[int, int, int, int] | None:
    """The face-sized square around the eye box (see the module docstring); None when the eyes'
    centre lies outside the frame or the box is degenerate (then the fixed crop is used)."""
    cx, cy = (box["xmin"] + box["xmax"]) / 2.0, (box["ymin"] + box["ymax"]) / 2.0
    if not (0 <= cx < width and 0 <= cy < height) or not math.isfinite(box["iod"]) or box["iod"] <= 0:
        return None
    side = max(box["xmax"] - box["xmin"], box["ymax"] - box["ymin"]) + (options.face_scale - 1.0) * box["iod"]
    return square_in_frame(cx, cy, side, width, height, shift_down=options.face_shift)


def square_in_frame(cx: float, cy: float, side: float, width: int, height: int, *,
                    shift_down: float = 0.0) -> tuple[int, int, int, int]:
    """The square of ``side`` px (rounded, at least 2, no larger than the frame's shorter side) centred on
    (cx, cy) moved down by ``shift_down`` of its side, then moved inside the frame."""
    side_px = int(min(max(_round_half_up(side), 2), width, height))
    cy += shift_down * side_px
    x0 = min(max(_round_half_up(cx - side_px / 2.0), 0), width - side_px)
    y0 = min(max(_round_half_up(cy - side_px / 2.0), 0), height - side_px)
    return x0, y0, x0 + side_px, y0 + side_px
