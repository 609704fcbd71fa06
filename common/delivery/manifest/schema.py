"""The manifest's contract: its columns and their Arrow types, its metadata keys, and its error.

Also the record batches that the index workers send back
(:mod:`common.delivery.manifest.workers`), which re-indexing
(:mod:`common.delivery.manifest.reuse`) also makes from a previous manifest.
"""
from __future__ import annotations

import pyarrow as pa

from common.delivery.walk import NO_JSON, NO_PNG

ROOT_KEY = b"nia.root"
ROW_GROUP = 1 << 20  # rows per parquet row group: pyarrow's default, so chunked and whole writes are alike
VERSION_KEY = b"nia.version"
PAIRING_ERRORS = (NO_JSON, NO_PNG)

STR, FLOAT, INT, BOOL, FLOAT_LIST = pa.string(), pa.float64(), pa.int64(), pa.bool_(), pa.list_(pa.float64())
_ELLIPSE = ("cx", "cy", "rx", "ry", "rotate")
# columns filled from the JSON (plus the name/JSON mismatch, also decided per JSON file)
LABEL_FIELDS: list[tuple[str, pa.DataType]] = (
    [(c, STR) for c in ("inst", "image", "condition", "posture", "metaid")]
    + [(f"{p}_{a}", FLOAT) for p in ("head", "cam") for a in ("roll", "pitch", "yaw")]
    + [("point_x", FLOAT), ("point_y", FLOAT), ("distance_cam", FLOAT), ("distance_display", FLOAT)]
    + [(f"{e}_iris_{k}", FLOAT) for e in "rl" for k in _ELLIPSE]
    + [(f"{e}_center_{k}", FLOAT) for e in "rl" for k in "xy"]
    + [("r_eyelid", FLOAT_LIST), ("l_eyelid", FLOAT_LIST)]
)
# what a parse worker sends back per chunk: the JSON's path, label columns, mismatch, label error
LABEL_BATCH = pa.schema([("json_path", STR), ("json_size", INT), ("json_mtime_ns", INT)] + LABEL_FIELDS
                        + [("mismatch", STR), ("label_error", STR)])
STAT_BATCH = pa.schema([("path", STR), ("size", INT), ("mtime_ns", INT)])
# what a header worker sends back per chunk of PNGs (common.delivery.png_header)
PNG_BATCH = pa.schema([("path", STR), ("size", INT), ("mtime_ns", INT), ("width", INT), ("height", INT),
                       ("png_error", STR)])
NAME_FIELDS = ("site", "subject", "attempt", "scenario", "device", "image_type", "state", "posture_code", "direction")
SAMPLE_FIELDS: list[tuple[str, pa.DataType]] = (
    [("sample_id", STR), ("kind", STR), ("png_path", STR), ("json_path", STR), ("video_path", STR),
     ("video_stem", STR)]
    + [(c, INT) for c in ("png_size", "png_mtime_ns", "png_width", "png_height", "json_size", "json_mtime_ns")]
    + [(c, STR) for c in NAME_FIELDS] + [("frame", INT)]
)
INDEX_SCHEMA = pa.schema(SAMPLE_FIELDS + LABEL_FIELDS + [("valid", BOOL), ("error", STR), ("mismatch", STR),
                                                         ("image_error", STR)])
# columns other commands add (docs/architecture.md); typed here so that all-null columns keep their type
ADDED_TYPES = {"split": STR, "gaze_method": STR, "gaze_profile_sha256": STR,
               **{c: FLOAT for c in ("gaze_pitch_deg", "gaze_yaw_deg", "gaze_x", "gaze_y", "gaze_z", "eye_x_mm",
                                     "eye_y_mm", "eye_z_mm", "target_x_mm", "target_y_mm", "target_z_mm")}}
KNOWN_TYPES = {f.name: f.type for f in INDEX_SCHEMA} | ADDED_TYPES


class ManifestError(Exception):
    """A manifest that cannot be read or written; names the file."""
