"""The three files of one crop: the image (JPEG), its class map (PNG) and its labels in crop coordinates (JSON).

Images are encoded in memory (``cv2.imencode``) and written by Python through
:func:`common.atomic.write_bytes_atomic`, not by ``cv2.imwrite``: OpenCV does
not report a short write, so a full disk left zero-byte PNGs under their final
names; Python's write raises ENOSPC, and the temporary file is removed.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import write_bytes_atomic
from common.targets.crop_geometry import CropBox, CropOptions, cut_and_resize
from common.targets.masks import EyeShapes, class_map


def _num(value: float) -> float:
    return round(float(value), 4)


def shapes_json(moved_eyes: dict[str, EyeShapes], centres: dict[str, tuple[float, float] | None],
                box: CropBox) -> list[dict]:
    """Labels in crop coordinates, in the NIA annotation layout (Polygon, Ellipse, Point).

    ``moved_eyes`` are already in crop coordinates; ``centres`` are frame pixels.
    """
    shapes: list[dict] = []
    for side in "rl":
        moved = moved_eyes[side]
        if moved.iris is not None:
            e = moved.iris
            shapes.append({
                "label": f"{side}_iris", "shape": "Ellipse",
                "cx": _num(e.cx), "cy": _num(e.cy), "rx": _num(e.rx), "ry": _num(e.ry), "rotate": _num(e.rotate_deg),
                "points": [[_num(e.cx - e.rx), _num(e.cy - e.ry)], [_num(e.cx + e.rx), _num(e.cy + e.ry)]],
            })
        if moved.eyelid is not None:
            shapes.append({"label": f"{side}_eyelid", "shape": "Polygon",
                           "points": [[_num(x), _num(y)] for x, y in moved.eyelid]})
        if centres.get(side) is not None:
            x, y = box.to_crop(np.array(centres[side]))
            shapes.append({"label": f"{side}_center", "shape": "Point", "points": [[_num(x), _num(y)]]})
    return shapes


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _gaze_json(row: dict) -> dict | None:
    pitch, yaw = _finite(row.get("gaze_pitch_deg")), _finite(row.get("gaze_yaw_deg"))
    if pitch is None or yaw is None:
        return None
    return {
        "pitch_deg": pitch, "yaw_deg": yaw,
        "vector": [_finite(row.get(k)) for k in ("gaze_x", "gaze_y", "gaze_z")],
        "method": row.get("gaze_method"), "profile_sha256": row.get("gaze_profile_sha256"),
    }


def _centre(row: dict, side: str) -> tuple[float, float] | None:
    x, y = _finite(row.get(f"{side}_center_x")), _finite(row.get(f"{side}_center_y"))
    return None if x is None or y is None else (x, y)


def read_frame(path: Path, image_type: str | None) -> np.ndarray | None:
    """The frame as uint8 BGR, or single-channel grey for IR; None when unreadable."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    if image.dtype == np.uint16:  # 16-bit PNG: keep the high byte's range
        image = np.round(image / 257.0).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image_type == "ir" and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


def _encoded(path: Path, image: np.ndarray, params: list[int] | tuple = ()) -> bytes:
    import cv2

    ok, buffer = cv2.imencode(path.suffix, image, list(params))
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image")
    return buffer.tobytes()


def crop_paths(out: Path, split: str, crop: str, sample_id: str) -> dict[str, Path]:
    folder = out / split / crop
    return {ext: folder / f"{sample_id}.{ext}" for ext in ("jpg", "png", "json")}


def write_crop(image: np.ndarray, row: dict, crop: str, box: CropBox, split: str,
                eyes: dict[str, EyeShapes], paths: dict[str, Path], options: CropOptions) -> None:
    """The crop's class map, labels and image under ``paths``, each written atomically."""
    import cv2

    moved = {s: eyes[s].transformed(box.x0, box.y0, box.scale_x, box.scale_y) for s in "rl"}
    classes = class_map(list(moved.values()), box.out_width, box.out_height)
    pixels = cut_and_resize(image, box)
    label = {
        "sample_id": row["sample_id"], "crop": crop, "crop_id": f"{row['sample_id']}_{crop}", "split": split,
        "source_png": row.get("png_path"), "inst": row.get("inst"), "image": row.get("image"),
        "condition": row.get("condition"), "posture": row.get("posture"), "subject": row.get("subject"),
        "size": [box.out_width, box.out_height],
        "transform": {
            "x0": box.x0, "y0": box.y0, "scale_x": box.scale_x, "scale_y": box.scale_y,
            "box_px": [box.left, box.top, box.width_px, box.height_px],
            "rule": "crop = (frame - x0) * scale; integer coordinates are pixel centres",
        },
        "shapes": shapes_json(moved, {s: _centre(row, s) for s in "rl"}, box),
        "gaze": _gaze_json(row),
    }
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(paths["png"], _encoded(paths["png"], classes))
    write_bytes_atomic(paths["json"], json.dumps(label, indent=1).encode("utf-8"))
    quality = [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality]
    write_bytes_atomic(paths["jpg"], _encoded(paths["jpg"], pixels, quality))
