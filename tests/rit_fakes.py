"""A tiny per-eye crop dataset in the exact `nia crops` format (docs/architecture.md,
"Crop dataset"): `r_eye`/`l_eye` JPGs with their class-map PNGs (0 background,
1 eye region, 2 iris), drawn so that a narrow DenseNet2D learns them in
seconds: skin-grey background, a bright eye-region ellipse, a dark iris disc,
each placed and sized at random, with noise.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def draw_eye(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(BGR uint8 image, class map uint8) of one random eye."""
    class_map = np.zeros((height, width), np.uint8)
    centre = (int(width * rng.uniform(0.4, 0.6)), int(height * rng.uniform(0.4, 0.6)))
    axes = (int(width * rng.uniform(0.28, 0.36)), int(height * rng.uniform(0.18, 0.3)))
    cv2.ellipse(class_map, centre, axes, 0, 0, 360, 1, -1)
    iris = np.zeros_like(class_map)
    cv2.circle(iris, (centre[0] + int(rng.integers(-axes[0] // 2, axes[0] // 2 + 1)), centre[1]),
               max(2, int(axes[1] * 0.9)), 1, -1)
    class_map[(iris == 1) & (class_map == 1)] = 2
    grey = np.choose(class_map, [150.0, 220.0, 50.0]) + rng.normal(0, 8, class_map.shape)
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    return cv2.merge([grey, (grey * 0.8).astype(np.uint8), grey]), class_map


def make_seg_crops(root: Path, counts: dict[str, int] | None = None, *, width: int = 32, height: int = 16,
                   seed: int = 0, n_subjects: int = 4, margin: float = 0.25) -> Path:
    """Write ROOT/index.parquet (with `nia.crop_options`) and ROOT/{split}/{r_eye,l_eye}/{sample_id}.jpg/.png.

    `counts[split]` is the number of samples (each gives an r_eye and an l_eye crop).
    """
    counts = counts or {"train": 32, "val": 8, "test": 8}
    rng = np.random.default_rng(seed)
    rows = []
    for split, count in counts.items():
        for i in range(count):
            subject = f"{(i % n_subjects) + {'train': 0, 'val': 100}.get(split, 200):03d}"
            sample_id = f"NIA22EYE_S1_{subject}_T1_S01_S_rgb_F_D_T_{len(rows):05d}"
            for crop in ("r_eye", "l_eye"):
                (root / split / crop).mkdir(parents=True, exist_ok=True)
                stem = f"{split}/{crop}/{sample_id}"
                image, class_map = draw_eye(rng, width, height)
                cv2.imwrite(str(root / f"{stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
                cv2.imwrite(str(root / f"{stem}.png"), class_map)
                rows.append({"crop_id": f"{sample_id}_{crop}", "sample_id": sample_id, "crop": crop, "split": split,
                             "jpg_path": f"{stem}.jpg", "png_path": f"{stem}.png", "subject": subject,
                             "inst": "STLVM"[i % 5]})
    table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    options = {"eyes_size": [2 * width, height], "eye_size": [width, height], "margin": margin, "jpeg_quality": 95}
    metadata = {**(table.schema.metadata or {}), b"nia.crop_options": json.dumps(options).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), root / "index.parquet")
    return root
