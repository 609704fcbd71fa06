"""How much `nia crops` costs per frame beyond decoding the frame's PNG.

Prints ratios measured in one run on a few synthetic 1920x1080 frames:
- crops / decode: time for all three crops of a frame (decode once, cut,
  resize, rasterise, encode JPG+PNG+JSON) over the time to decode the PNG
  alone. Close to 1 means the PNG decode dominates, as it should.
- read-thrice / read-once: what reading the frame once per crop would cost.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from common.targets.crop_files import read_frame
from common.targets.crop_geometry import CropOptions
from common.targets.crop_job import CropJob, process_rows

N_FRAMES = 12
LID = [865.0, 291, 869, 295, 880, 298, 899, 298, 915, 296, 918, 295, 907, 288, 886, 284, 871, 288]


def _rows(folder: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8), (5, 5), 0)
    rows = []
    for k in range(N_FRAMES):
        name = f"f{k}.png"
        cv2.imwrite(str(folder / name), frame)
        rows.append({"sample_id": f"f{k}", "png_path": name, "image": "rgb", "split": "train",
                     "l_eyelid": LID, "r_eyelid": [v + 130 if i % 2 == 0 else v for i, v in enumerate(LID)],
                     "r_iris_cx": 1021.5, "r_iris_cy": 292.5, "r_iris_rx": 12.5, "r_iris_ry": 10.5,
                     "r_iris_rotate": 0.0})
    return rows


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options: --help says what it prints
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = _rows(folder)
        start = time.perf_counter()
        for row in rows:
            read_frame(folder / row["png_path"], "rgb")
        decode = time.perf_counter() - start
        job = CropJob(root=tmp, out=str(folder / "out"), split_column="split", options=CropOptions())
        start = time.perf_counter()
        process_rows(rows, job)
        crops = time.perf_counter() - start
    print(f"frames: {N_FRAMES}, decode {1000 * decode / N_FRAMES:.1f} ms/frame, "
          f"crops {1000 * crops / N_FRAMES:.1f} ms/frame")
    print(f"crops / decode: {crops / decode:.2f}")
    print(f"read-thrice / read-once (estimated): {(crops + 2 * decode) / crops:.2f}")


if __name__ == "__main__":
    main()
