"""The crop dataset's tables: ``index.parquet`` (one row per crop, with its provenance) and
``crops_skipped.csv`` (every crop or frame sample not made, with its reason)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from common.atomic import atomic_path
from common.targets.crop_geometry import CropOptions
from common.targets.gaze import DERIVATION_COLUMNS
from common.targets.masks import CLASS_NAMES


SKIPPED_COLUMNS = ["sample_id", "crop", "split", "png_path", "reason", "skip_reason"]
UNREADABLE = "unreadable image"
INVALID_IMAGE = "invalid image"
INDEX_COLUMNS = [
    "crop_id", "sample_id", "crop", "split", "jpg_path", "png_path", "json_path",
    "subject", "inst", "image", "condition", "gaze_pitch_deg", "gaze_yaw_deg",
    "x0", "y0", "scale_x", "scale_y",
    "width", "height", "video_stem", "frame", "device", "direction", "input_sha256", "point_x", "point_y",
    *DERIVATION_COLUMNS,
]
#: The manifest fields a crop is made from (fingerprinted, common.targets.crop_resume).
ROW_FIELDS = [
    "sample_id", "png_path", "subject", "inst", "image", "image_type", "condition", "posture",
    "video_stem", "frame", "device", "direction",
    "gaze_pitch_deg", "gaze_yaw_deg", "gaze_x", "gaze_y", "gaze_z", "gaze_method", "gaze_profile_sha256",
    *(f"{s}_{k}" for s in "rl" for k in ("eyelid", "iris_cx", "iris_cy", "iris_rx", "iris_ry", "iris_rotate",
                                         "center_x", "center_y")),
]
#: Carried into the index (the report's on/off-screen split, the label under every gaze derivation) but no
#: input of a crop: not fingerprinted.
INDEX_ONLY_FIELDS = ["point_x", "point_y", *DERIVATION_COLUMNS]


def provenance_metadata(rows: pd.DataFrame, manifest_sha256: str, options: "CropOptions") -> dict[str, str]:
    """What a crop dataset was made from, stored as ``nia.*`` keys of ``index.parquet``.

    The manifest hash, the gaze derivation(s) and profile hash(es) behind the
    gaze labels, the class list of the class maps and the crop options, so a
    score computed on these crops can be traced to its labels.
    """
    def distinct(column: str) -> str:
        return ",".join(sorted(set(rows[column].dropna().astype(str)))) if column in rows.columns else ""

    return {
        "nia.manifest_sha256": manifest_sha256,
        "nia.gaze_method": distinct("gaze_method"),
        "nia.gaze_profile_sha256": distinct("gaze_profile_sha256"),
        "nia.classes": json.dumps(list(CLASS_NAMES)),
        "nia.crop_options": json.dumps(options.as_dict()),
    }


def write_index(parts: list[pd.DataFrame], path: Path, provenance: dict[str, str]) -> pd.DataFrame:
    """``OUT/index.parquet``: one row per crop, sorted by crop_id, with ``nia.*`` provenance metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=INDEX_COLUMNS)
    index = index.sort_values("crop_id", kind="stable").reset_index(drop=True)
    for column in ("gaze_pitch_deg", "gaze_yaw_deg", "x0", "y0", "scale_x", "scale_y", *INDEX_ONLY_FIELDS):
        index[column] = index[column].astype("float64")
    index["frame"] = index["frame"].astype("Int64")
    index[["width", "height"]] = index[["width", "height"]].astype("int64")
    table = pa.Table.from_pandas(index, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata.update({key.encode(): value.encode() for key, value in provenance.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
    return index


def write_skipped(invalid_images: pd.DataFrame, skipped_rows: list[tuple], path: Path) -> pd.DataFrame:
    """``OUT/crops_skipped.csv``: the frames invalid for their image, then every crop not made, sorted."""
    crops = pd.DataFrame(skipped_rows, columns=SKIPPED_COLUMNS)
    listed = pd.concat([invalid_images, crops], ignore_index=True) if len(invalid_images) else crops
    listed = listed.sort_values(["sample_id", "crop"], kind="stable").reset_index(drop=True)
    with atomic_path(path) as tmp:
        listed.to_csv(tmp, index=False)
    return listed


def damaged_images(skipped: pd.DataFrame) -> list[dict]:
    """One entry per damaged or unusable image among the skips: ``png_path``, ``reason`` (UNREADABLE when
    the crop step found it, INVALID_IMAGE when nia index did), ``detail`` (the error, naming the file)."""
    of_image = skipped["skip_reason"].isin(["unreadable_image", "invalid_image"])
    rows = skipped[of_image & ((skipped["crop"] == "") | skipped["reason"].str.startswith(f"{UNREADABLE}: "))]
    rows = rows.drop_duplicates("png_path")
    return [{"png_path": r.png_path,
             "reason": UNREADABLE if r.crop else INVALID_IMAGE,
             "detail": r.reason.split(": ", 1)[1] if r.crop else r.reason} for r in rows.itertuples()]
