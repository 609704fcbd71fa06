"""NIA label dictionaries for synthetic frames and videos.

Frame labels follow the published example exactly (``{"Annotations": {...}}``
with ``pose`` and ``distance`` inside). Choices where the real data is silent
(docs/synthetic.md): ellipse ``points`` are the corners (cx -/+ rx, cy -/+ ry)
of the unrotated box, as in the published example; ``rotate`` is in degrees
(``common.targets.masks`` convention); coordinates are rounded to 0.01 px,
``distance.*`` to 0.001 cm; a closed eye keeps its iris and centre labels and
its eyelid polygon collapses onto the lower lid (zero area).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from common.synth.face import EyeGeometry, FrameGeometry
from common.synth.scene import VideoSpec

# Assumption: constant gyro readings per display (the builder copied one track to all videos of a device).
CAM_POSE = {"S": [-96.57, -1.45, 11.05], "T": [-92.4, 0.85, 3.2], "L": [-108.3, 2.1, -0.6],
            "V": [-101.7, -3.3, 1.9], "M": [-90.2, 0.4, 0.15]}


def _r(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def _eye_shapes(side: str, eye: EyeGeometry) -> list[dict[str, Any]]:
    cx, cy, rx, ry, rotate = eye.iris
    return [
        {"label": f"{side}_iris", "points": [[_r(cx - rx), _r(cy - ry)], [_r(cx + rx), _r(cy + ry)]],
         "shape": "Ellipse", "rotate": _r(rotate), "rx": _r(rx), "ry": _r(ry), "cx": _r(cx), "cy": _r(cy)},
        {"label": f"{side}_eyelid", "points": [[_r(x), _r(y)] for x, y in eye.eyelid_px], "shape": "Polygon"},
        {"label": f"{side}_center", "points": [[_r(cx), _r(cy)]], "shape": "Point"},
    ]


def _header(video: VideoSpec, name: str) -> dict[str, Any]:
    return {"name": name, "inst": video.device, "image": video.image_type, "condition": video.state,
            "posture": video.posture, "metaid": video.subject.metaid}


def frame_label(video: VideoSpec, frame: int, g: FrameGeometry, point_px: np.ndarray) -> dict[str, Any]:
    """The label of frame ``frame`` of ``video``, drawn with geometry ``g`` looking at ``point_px``."""
    annotations = _eye_shapes("r", g.right) + _eye_shapes("l", g.left)
    distance_display = g.distance_display_cm if video.device in ("V", "M") else g.distance_cam_cm
    return {"Annotations": {
        **_header(video, f"{video.frame_name(frame)}.png"),
        "annotations": annotations,
        "pose": {"head": [_r(v, 4) for v in g.head_rel_deg], "cam": list(CAM_POSE[video.device]),
                 "point": [_r(point_px[0]), _r(point_px[1])]},
        "distance": {"cam": _r(g.distance_cam_cm, 3), "display": _r(distance_display, 3)},
    }}


def video_label(video: VideoSpec) -> dict[str, Any]:
    """The video-level label (our schema; the real one is unpublished)."""
    return {"Annotations": {**_header(video, f"{video.stem}.mp4"), "fps": video.fps, "n_frames": video.n_frames}}


def shapes_by_label(label: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A frame label's annotations keyed by their ``label`` (``r_iris``, ``l_eyelid``, ...)."""
    return {a["label"]: a for a in label["Annotations"]["annotations"]}


def mask_shapes(label: dict[str, Any]) -> list:
    """Both eyes of a frame label as ``common.targets.masks.EyeShapes`` (right, left), for class maps."""
    from common.targets.masks import EyeShapes

    shapes = shapes_by_label(label)
    eyes = []
    for side in "rl":
        iris = shapes[f"{side}_iris"]
        row = {f"{side}_eyelid": [v for point in shapes[f"{side}_eyelid"]["points"] for v in point],
               f"{side}_iris_rotate": iris["rotate"], **{f"{side}_iris_{k}": iris[k] for k in ("cx", "cy", "rx", "ry")}}
        eyes.append(EyeShapes.from_row(row, side))
    return eyes
