"""A tiny crop dataset in the exact `nia crops` format (docs/architecture.md,
"Crop dataset"), whose two-eye images encode the gaze so that a network can
learn it in seconds: each eye is a grey patch with a dark iris disc moved
left for positive yaw (looking to the camera's left, x right in the image)
and up for positive pitch. The two eyes sit symmetrically about the crop's
centre, so mirroring a crop gives exactly the crop of the negated yaw.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

PITCH_RANGE = (-20.0, 20.0)
YAW_RANGE = (-30.0, 30.0)


def render_eyes(pitch_deg: float, yaw_deg: float, width: int, height: int,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB two-eye image for one gaze (anti-aliased disc, slight noise)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.full((height, width), 200.0, dtype=np.float32)
    radius = height * 0.18
    dx = -yaw_deg / YAW_RANGE[1] * width * 0.12
    dy = -pitch_deg / PITCH_RANGE[1] * height * 0.22
    for centre_x in (width * 0.25, width * 0.75):
        distance = np.hypot(xs - (centre_x + dx), ys - (height * 0.5 + dy))
        image -= 150.0 * np.clip(radius + 0.5 - distance, 0.0, 1.0)
    if rng is not None:
        image += rng.normal(0.0, 4.0, image.shape)
    grey = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def make_fake_crops(root: Path, counts: dict[str, int] | None = None, *, width: int = 64, height: int = 32,
                    seed: int = 0, n_subjects: int = 6) -> Path:
    """Write ROOT/index.parquet and ROOT/{split}/eyes/{sample_id}.jpg; return ROOT.

    Only `eyes` crops are written (png/json paths are recorded but not made).
    """
    counts = counts or {"train": 64, "val": 16, "test": 16}
    rng = np.random.default_rng(seed)
    rows = []
    for split, count in counts.items():
        (root / split / "eyes").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pitch, yaw = rng.uniform(*PITCH_RANGE), rng.uniform(*YAW_RANGE)
            subject = f"{(i % n_subjects) + (0 if split == 'train' else 100 if split == 'val' else 200):03d}"
            sample_id = f"NIA22EYE_S1_{subject}_T1_S01_S_rgb_F_D_T_{len(rows):05d}"
            stem = f"{split}/eyes/{sample_id}"
            image = render_eyes(pitch, yaw, width, height, rng)
            cv2.imwrite(str(root / f"{stem}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            rows.append({"crop_id": f"{sample_id}_eyes", "sample_id": sample_id, "crop": "eyes", "split": split,
                         "jpg_path": f"{stem}.jpg", "png_path": f"{stem}.png", "json_path": f"{stem}.json",
                         "subject": subject, "inst": "STLVM"[i % 5], "image": "rgb", "condition": "F",
                         "gaze_pitch_deg": pitch, "gaze_yaw_deg": yaw, "x0": 0.0, "y0": 0.0,
                         "scale_x": 1.0, "scale_y": 1.0})
    pd.DataFrame(rows).to_parquet(root / "index.parquet", index=False)
    return root
