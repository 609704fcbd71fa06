"""common.targets.crop_rows through L2CS-Net's read_eye_crops: hand-counted set-asides, each row counted once."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2cs.dataset import read_eye_crops


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


def test_l2cs_selection_counts_each_row_once_under_its_first_reason(eyes_dir: Path) -> None:
    selected = read_eye_crops(eyes_dir, "test")
    assert selected.skipped == {"no_gaze_label": 2, "missing_image": 1}  # s3 lacks both: counted as no label
    assert selected.rows["sample_id"].tolist() == ["s0", "s1", "s4", "s6", "s7"]
    assert selected.n_in_split == 8  # the r_eye row is not of this test
