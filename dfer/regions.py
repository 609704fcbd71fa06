"""Other regions to cut a clip from, for the report's assumption sensitivity (issue 21, item 4).

`nia clips` chooses each clip's region (common.targets.clips): a face-sized
square around the eye labels (`labels`: 2.5 eye distances wide, shifted down
0.15 of its side) or the frame's largest centred square (`fixed`). The
verdict rests on that choice, so `dfer/valid_nia.py --region-sensitivity`
runs the model again with each clip cut another way and writes the
predictions beside the test's own (per_sample.csv `pred_region_<variant>`);
`nia report` scores each (common.report.sensitivity). The variants:

* ``fixed``: the frame's largest centred square, what `nia clips` falls back to;
* ``scale_0.8``, ``scale_1.25``: the clip's square, its side times 0.8 / 1.25 about its centre;
* ``shift_up``, ``shift_down``: the clip's square moved by 0.15 of its side.

A variant square is moved inside the frame and kept no larger than its
shorter side, as `nia clips` does.
"""
from __future__ import annotations

from typing import Callable

import pandas as pd

from common.targets.clip_labels import fixed_region, square_in_frame

Box = tuple[int, int, int, int]
SHIFT = 0.15


def moved(scale: float = 1.0, shift_down: float = 0.0) -> Callable[[Box, int, int], Box]:
    """The variant that scales the clip's square about its centre and moves it down by ``shift_down`` of its
    side (a negative shift moves it up)."""
    def variant(box: Box, width: int, height: int) -> Box:
        x0, y0, x1, y1 = box
        return square_in_frame((x0 + x1) / 2.0, (y0 + y1) / 2.0, scale * max(x1 - x0, y1 - y0), width, height,
                               shift_down=shift_down)
    return variant


VARIANTS: dict[str, Callable[[Box, int, int], Box]] = {
    "fixed": lambda box, width, height: fixed_region(width, height),
    "scale_0.8": moved(scale=0.8),
    "scale_1.25": moved(scale=1.25),
    "shift_up": moved(shift_down=-SHIFT),
    "shift_down": moved(shift_down=SHIFT),
}


def variant_rows(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    """``rows`` (`dfer.dataset.read_state_clips`, with the frames' ``width`` and ``height``) with each
    clip's region ``x0, y0, x1, y1`` cut the ``name`` way."""
    if name not in VARIANTS:
        raise ValueError(f"region variant {name!r}; expected one of {', '.join(VARIANTS)}")
    missing = [c for c in ("width", "height") if c not in rows.columns]
    if missing:
        raise ValueError(f"clip rows lack {', '.join(missing)}: the clip index gives no frame size for "
                         "the region variants")
    boxes = [VARIANTS[name]((int(r.x0), int(r.y0), int(r.x1), int(r.y1)), int(r.width), int(r.height))
             for r in rows.itertuples()]
    out = rows.copy()
    out[["x0", "y0", "x1", "y1"]] = pd.DataFrame(boxes, index=rows.index, columns=["x0", "y0", "x1", "y1"])
    return out
