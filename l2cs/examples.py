"""L2CS-Net examples for the report: an eye crop with the true and the predicted gaze drawn as arrows.

An arrow starts at the crop's centre and points along the gaze's projection
on the image plane: with the suite's convention (common.metrics.angular,
OpenCV camera frame, x right, y down) a unit gaze ``g`` has image-plane part
``(-cos(pitch) sin(yaw), -sin(pitch))``, so a look straight into the camera
is a dot and a look far to the side is an arrow of the full length.
`draw_gaze_examples` is the per-test drawer `common.report.examples` calls.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from common.imread import ImageReadError, read_image

TRUTH_BGR = (60, 180, 60)       # green
PREDICTION_BGR = (40, 40, 230)  # red
SCALE = 3                       # the crop is drawn this many times its size (60x36 crops are small)
CAPTION_HEIGHT = 16


def arrow_end(centre: tuple[float, float], length: float, pitch_deg: float, yaw_deg: float) -> tuple[float, float]:
    """The image point (x right, y down) an arrow of ``length`` px from ``centre`` reaches for a gaze."""
    pitch, yaw = math.radians(pitch_deg), math.radians(yaw_deg)
    return centre[0] - length * math.cos(pitch) * math.sin(yaw), centre[1] - length * math.sin(pitch)


def draw_gaze(image_bgr: np.ndarray, truth: tuple[float, float], pred: tuple[float, float],
              caption: str) -> np.ndarray:
    """BGR uint8: the crop enlarged ``SCALE`` times with the truth (green) and the prediction (red) arrows
    from its centre, arrow length half the shorter side, and a caption strip below."""
    big = cv2.resize(image_bgr, (image_bgr.shape[1] * SCALE, image_bgr.shape[0] * SCALE),
                     interpolation=cv2.INTER_NEAREST)
    height, width = big.shape[:2]
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    length = min(width, height) / 2.0
    for (pitch, yaw), colour in ((truth, TRUTH_BGR), (pred, PREDICTION_BGR)):
        end = arrow_end(centre, length, pitch, yaw)
        cv2.arrowedLine(big, _pixel(centre), _pixel(end), colour, 2, cv2.LINE_AA, tipLength=0.2)
    strip = np.full((CAPTION_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(strip, caption, (2, CAPTION_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([big, strip])


def draw_gaze_examples(chosen: list[dict[str, Any]], rows: pd.DataFrame, data_root: Path,
                       provenance: dict[str, Any] | None = None) -> list[np.ndarray | str]:
    """Per chosen example (``common.report.examples``), its drawn crop, or why none could be drawn.
    ``rows`` are the crop index's rows of the chosen samples in the same order (``jpg_path`` relative to
    ``data_root``, already checked to stay inside it)."""
    drawn: list[np.ndarray | str] = []
    for example, jpg in zip(chosen, rows["jpg_path"]):
        try:
            image = read_image(data_root / str(jpg), cv2.IMREAD_COLOR)
        except ImageReadError:  # a header declaring more pixels than OpenCV decodes
            image = None
        if image is None:
            drawn.append("the crop's image does not decode")
            continue
        caption = f"{example['kind']}: {example['error_deg']:.1f} deg"
        drawn.append(draw_gaze(image, tuple(example["truth"]), tuple(example["pred"]), caption))
    return drawn


def _pixel(point: tuple[float, float]) -> tuple[int, int]:
    return int(round(point[0])), int(round(point[1]))
