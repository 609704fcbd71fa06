"""common.crop_rows: the shared row selection reproduces l2cs.dataset.read_eye_crops exactly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.crop_rows import file_missing, select_crop_rows, value_missing
from l2cs.dataset import INDEX_COLUMNS, read_eye_crops


@pytest.fixture()
def eyes_dir(tmp_path: Path) -> Path:
    rows = []
    for i in range(8):
        jpg = f"test/eyes/s{i}.jpg"
        if i not in (2, 3):          # 2: no JPG; 3: no JPG and no gaze label (counted once, as no label)
            (tmp_path / "test/eyes").mkdir(parents=True, exist_ok=True)
            (tmp_path / jpg).write_bytes(b"x")
        rows.append({"crop_id": f"s{i}_eyes", "sample_id": f"s{i}", "crop": "eyes", "split": "test",
                     "jpg_path": jpg, "subject": "001", "inst": "S",
                     "gaze_pitch_deg": np.nan if i in (3, 5) else 1.0, "gaze_yaw_deg": 2.0})
    rows.append({**rows[0], "crop_id": "s0_r_eye", "crop": "r_eye"})
    pd.DataFrame(rows).to_parquet(tmp_path / "index.parquet")
    return tmp_path


def test_l2cs_selection_through_the_shared_helper(eyes_dir: Path) -> None:
    theirs = read_eye_crops(eyes_dir, "test")
    ours = select_crop_rows(eyes_dir, "test", crops=("eyes",), columns=INDEX_COLUMNS,
                            checks=[("no_gaze_label", value_missing("gaze_pitch_deg", "gaze_yaw_deg")),
                                    ("missing_image", file_missing("jpg_path"))])
    assert ours.skipped == theirs.skipped == {"no_gaze_label": 2, "missing_image": 1}
    pd.testing.assert_frame_equal(ours.rows, theirs.rows)
