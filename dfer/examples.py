"""Former-DFER examples for the report: a strip of the frames the model saw of a clip.

The frames are those the test reads (`dfer.dataset.StateClips` at test time:
`dfer.sampling`'s centred frame numbers, cut to the clip's region, resized to
the model's input size), in order, side by side and shrunk to ``TILE`` px, so
a person sees what the model was given, not the raw video. The model's
frame count and input size come from the run's provenance (`model_config`),
the defaults of `DFERConfig` for a score-only run. `draw_clip_examples` is the
per-test drawer `common.report.examples` calls.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from dfer.config import DFERConfig

TILE = 56            # px per frame in the strip: 16 frames make 896 px, inside a 1280 px page
CAPTION_HEIGHT = 16


def clip_strip(frames: np.ndarray, caption: str, tile: int = TILE) -> np.ndarray:
    """uint8 RGB frames (T, 3, S, S) -> BGR uint8 (tile + caption, T * tile, 3): the frames left to right."""
    tiles = [cv2.resize(np.ascontiguousarray(f.transpose(1, 2, 0)), (tile, tile), interpolation=cv2.INTER_AREA)
             for f in frames]
    row = cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR)
    strip = np.full((CAPTION_HEIGHT, row.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, caption, (2, CAPTION_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([row, strip])


def model_config(provenance: dict[str, Any] | None) -> DFERConfig:
    """The run's model configuration (its provenance's `model_config`), the defaults where it has none."""
    stored = (provenance or {}).get("model_config")
    return DFERConfig.from_dict(stored) if isinstance(stored, dict) else DFERConfig()


def draw_clip_examples(chosen: list[dict[str, Any]], rows: pd.DataFrame, data_root: Path,
                       provenance: dict[str, Any] | None = None) -> list[np.ndarray | str]:
    """Per chosen example (``common.report.examples``), its strip, or why none could be drawn. ``rows``
    are the clip index's rows of the chosen clips in the same order (`dfer.dataset.read_state_clips`)."""
    from dfer.dataset import StateClips

    clips = StateClips(rows.reset_index(drop=True), model_config(provenance), train=False)
    drawn: list[np.ndarray | str] = []
    for i, example in enumerate(chosen):
        frames, _, _, ok = clips[i]
        if not ok:
            drawn.append("the clip's video does not decode")
            continue
        caption = f"{example['kind']}: truth {example['truth']}, predicted {example['pred']}"
        drawn.append(clip_strip(frames.numpy(), caption))
    return drawn
