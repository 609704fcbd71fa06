"""The l2cs verdict under each gaze derivation: same predictions, each method's label, the verdict each gives."""
import json

import numpy as np
import pandas as pd
import pytest

from tests import report_fakes
from common.cli import main
from common.metrics import angular_errors_deg
from l2cs.run_valid_l2cs import per_sample_table
from tests.click_runner import separate_streams_runner


def test_the_verdict_under_each_derivation_names_the_one_used(tmp_path, monkeypatch):
    monkeypatch.setenv("NIA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NIA_CODE_VERSION", "v-test")
    frame = report_fakes.gaze_frame(off_screen_bias=0.0)
    frame["true_pitch_geometric"], frame["true_yaw_geometric"] = frame["true_pitch"], frame["true_yaw"]
    frame["true_pitch_normal"], frame["true_yaw_normal"] = frame["true_pitch"] + 12.0, frame["true_yaw"]
    frame.loc[:4, "true_pitch_normal"] = np.nan  # 5 crops the normal method cannot label
    report_fakes.write_gaze(tmp_path / "l2cs", frame)
    run = separate_streams_runner().invoke(main, ["report", str(tmp_path / "l2cs"), "--out", str(tmp_path / "r")])
    assert run.exit_code == 0, run.stdout + run.stderr
    entry = json.loads((tmp_path / "r" / "report.json").read_text())["tests"][0]
    rows = {r["method"]: r for r in entry["sensitivity"]["rows"]}
    pred = frame[["pred_pitch", "pred_yaw"]].to_numpy()
    normal = frame[["true_pitch_normal", "true_yaw_normal"]].to_numpy()[5:]
    assert rows["normal"]["value"] == pytest.approx(angular_errors_deg(pred[5:], normal).mean())
    assert rows["normal"]["n"] == len(frame) - 5 and rows["normal"]["unlabelled"] == 5
    assert rows["normal"]["verdict"] == "FAIL" and rows["geometric"]["verdict"] == "PASS"
    assert rows["geometric"]["used"] and not rows["normal"]["used"] and not entry["sensitivity"]["verdicts_agree"]
    assert "the verdict depends on the derivation" in (tmp_path / "r" / "report.md").read_text()
    assert "Assumption sensitivity" in (tmp_path / "r" / "report.html").read_text()


def test_l2cs_per_sample_carries_the_label_under_each_derivation():
    rows = pd.DataFrame({"crop_id": ["a_eyes", "b_eyes"], "subject": "1", "inst": "S",
                         "gaze_pitch_deg": [1.0, 2.0], "gaze_yaw_deg": [0.0, 0.0],
                         "gaze_pitch_deg_geometric": [1.0, 2.0], "gaze_yaw_deg_geometric": [0.0, 0.0],
                         "gaze_pitch_deg_normal": [3.0, np.nan], "gaze_yaw_deg_normal": [0.5, np.nan]})
    table = per_sample_table(rows, np.zeros((2, 2)))
    assert list(table["true_pitch_normal"].fillna(-1)) == [3.0, -1] and list(table["true_pitch_geometric"]) == [1, 2]
