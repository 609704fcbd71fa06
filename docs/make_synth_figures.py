"""Make the figures of docs/synthetic.md from a fixed seed (rerun after changing the renderer).

    .venv/bin/python docs/make_synth_figures.py

Writes docs/img/synth_frame.png (a 1920x1080 frame, shown at half size),
docs/img/synth_mask_overlay.png (its eye region with the class map of
``common.targets.masks`` over it: eye region green, iris red, labelled centre points
and eyelid vertices) and docs/img/synth_states.png (two-eye crops of one clip
per observer state, every third frame).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from common.targets.crop_geometry import crop_box, cut_and_resize
from common.targets.masks import EYE_REGION, IRIS, class_map
from common.targets.profiles import load_profiles
from common.synth import render_clip
from common.synth.labels import mask_shapes, shapes_by_label as _shapes
from common.synth.scene import make_subject, make_videos

OUT = Path(__file__).parent / "img"
SEED = 2024
STRIP_FRAMES = 8
CROP_SIZE = (192, 96)


def _bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


def _first_video(index: int, **only) -> object:
    return make_videos(make_subject(index, SEED), SEED, 1, 24, **only)[0]


def sample_frame_and_overlay(profiles) -> None:
    video = _first_video(0, devices=("L",), directions=("T",), postures=("D",))
    frame = next(f for f in render_clip(video, profiles) if f.index == 5)
    image = _bgr(frame.image)
    cv2.imwrite(str(OUT / "synth_frame.png"), cv2.resize(image, (960, 540), interpolation=cv2.INTER_AREA))
    shapes = _shapes(frame.label)
    classes = class_map(mask_shapes(frame.label), image.shape[1], image.shape[0])
    overlay = image.copy()
    overlay[classes == EYE_REGION] = (0.5 * overlay[classes == EYE_REGION] + (0, 110, 0)).astype(np.uint8)
    overlay[classes == IRIS] = (0.5 * overlay[classes == IRIS] + (0, 0, 120)).astype(np.uint8)
    points = np.concatenate([np.array(shapes[f"{s}_eyelid"]["points"]) for s in "rl"])
    box = crop_box(points, (640, 320), 0.3)
    crop = cut_and_resize(overlay, box)
    for point in box.to_crop(points):
        cv2.circle(crop, tuple(int(v) for v in np.round(point)), 2, (255, 255, 0), -1, cv2.LINE_AA)
    for side in "rl":
        centre = box.to_crop(np.array(shapes[f"{side}_center"]["points"][0]))
        cv2.drawMarker(crop, tuple(int(v) for v in np.round(centre)), (255, 255, 255), cv2.MARKER_CROSS, 14, 2)
    cv2.imwrite(str(OUT / "synth_mask_overlay.png"), crop)


def state_strips(profiles) -> None:
    rows = []
    for k, state in enumerate("FSDAN"):
        video = next(v for i in range(50) for v in [_first_video(10 + 7 * k + i, devices=("M",), postures=("D",))]
                     if v.state == state)
        frames = [f for f in render_clip(video, profiles) if f.index % 3 == 0][:STRIP_FRAMES]
        tiles = []
        for f in frames:
            points = np.concatenate([np.array(_shapes(f.label)[f"{s}_eyelid"]["points"]) for s in "rl"])
            tiles.append(cut_and_resize(_bgr(f.image), crop_box(points, CROP_SIZE, 0.3)))
        strip = np.hstack(tiles)
        label = np.full((CROP_SIZE[1], 60, 3), 255, np.uint8)
        cv2.putText(label, state, (15, 62), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (0, 0, 0), 2, cv2.LINE_AA)
        rows.append(np.hstack([label, strip]))
    cv2.imwrite(str(OUT / "synth_states.png"), np.vstack(rows))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    profiles = load_profiles()
    sample_frame_and_overlay(profiles)
    state_strips(profiles)
    print(f"wrote {sorted(p.name for p in OUT.glob('synth_*.png'))} in {OUT}")


if __name__ == "__main__":
    main()
