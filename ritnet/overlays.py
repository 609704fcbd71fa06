"""Example overlays of a validation run: a few crops from the worst, the
middle and the best of the per-crop mIoU, each drawn as crop | truth |
prediction, saved under OUT/overlays/ and named in per_sample.csv's
`overlay` column (`nia report` shows them; `clear_results` removes them with
the rest of an earlier run).

Which crops is a pure function of the scored rows (`pick_overlays`), so the
prediction step that draws them and the per-sample table that names them
agree without passing state.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from common.atomic import write_bytes_atomic
from common.metrics.segmentation import miou_from_counts
from common.verdicts.results import OVERLAYS_DIR
from ritnet.scoring import intersections_unions

PER_KIND = 2                                               # crops per kind: 6 in all, as `nia report` shows
COLOURS_BGR = {1: (60, 200, 60), 2: (40, 40, 230)}         # eye region green, iris red
ALPHA = 0.45
CAPTION_HEIGHT = 14


def crop_miou(confusion: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) mIoU of each crop over the classes present in its truth or prediction."""
    return np.asarray(miou_from_counts(*intersections_unions(confusion, num_classes)), dtype=np.float64).reshape(-1)


def pick_overlays(names: Sequence[str], confusion: np.ndarray, num_classes: int,
                  per_kind: int = PER_KIND) -> dict[int, str]:
    """Row -> relative overlay path (`overlays/<kind>_<name>.png`) for the `per_kind` worst, median and best
    crops by per-crop mIoU (ties broken by name). `confusion` holds only scored rows (finite)."""
    if len(names) != len(confusion):
        raise ValueError(f"pick_overlays: {len(names)} names for {len(confusion)} rows")
    n = len(names)
    if n == 0:
        return {}
    order = np.lexsort((np.asarray(names, dtype=object).astype(str), crop_miou(confusion, num_classes)))
    middle = max(0, n // 2 - per_kind // 2)
    kinds = (("worst", range(min(per_kind, n))), ("median", range(middle, min(n, middle + per_kind))),
             ("best", range(n - 1, max(-1, n - 1 - per_kind), -1)))
    chosen: dict[int, str] = {}
    for kind, positions in kinds:
        for position in positions:
            row = int(order[position])
            chosen.setdefault(row, f"{OVERLAYS_DIR}/{kind}_{safe_name(str(names[row]))}.png")
    return chosen


def safe_name(name: str) -> str:
    """A crop id as a file name: anything but letters, digits, '.', '_' and '-' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def tint(image_bgr: np.ndarray, class_map: np.ndarray) -> np.ndarray:
    """The crop with each non-background class blended in its colour."""
    out = image_bgr.astype(np.float32)
    for value, colour in COLOURS_BGR.items():
        mask = class_map == value
        out[mask] = (1.0 - ALPHA) * out[mask] + ALPHA * np.asarray(colour, np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def render_overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, caption: str) -> np.ndarray:
    """BGR uint8: [crop | truth tinted | prediction tinted] with a caption strip below."""
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3]
    if bgr.shape[:2] != truth.shape:
        bgr = cv2.resize(bgr, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_AREA)
    gap = np.full((truth.shape[0], 2, 3), 255, np.uint8)
    panels = np.hstack([bgr, gap, tint(bgr, truth), gap, tint(bgr, pred)])
    strip = np.full((CAPTION_HEIGHT, panels.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, caption, (2, CAPTION_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([panels, strip])


def save_overlay(out_dir: Path, relative: str, image: np.ndarray, truth: np.ndarray, pred: np.ndarray,
                 miou: float) -> None:
    """Write one overlay PNG (atomically) at OUT/`relative`."""
    kind = Path(relative).name.split("_", 1)[0]
    caption = f"{kind}: mIoU {100 * miou:.1f} %   crop | truth | prediction"
    ok, encoded = cv2.imencode(".png", render_overlay(image, truth, pred, caption))
    if not ok:
        raise ValueError(f"{out_dir / relative}: overlay could not be encoded")
    path = out_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, encoded.tobytes())
