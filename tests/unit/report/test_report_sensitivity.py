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


def test_region_variants_keep_the_centre_stay_inside_and_fall_back_to_the_centred_square():
    from dfer.regions import variant_rows

    rows = pd.DataFrame({"x0": [100, 0], "y0": [50, 0], "x1": [200, 100], "y1": [150, 100],
                         "width": [640, 640], "height": [360, 360]})
    boxes = {name: variant_rows(rows, name)[["x0", "y0", "x1", "y1"]].values.tolist()
             for name in ("fixed", "scale_0.8", "scale_1.25", "shift_up", "shift_down")}
    assert boxes["fixed"] == [[140, 0, 500, 360]] * 2
    assert boxes["scale_0.8"][0] == [110, 60, 190, 140] and boxes["scale_1.25"][0] == [88, 38, 213, 163]
    assert boxes["shift_down"][0] == [100, 65, 200, 165] and boxes["shift_up"][0] == [100, 35, 200, 135]
    assert boxes["scale_1.25"][1] == [0, 0, 125, 125] and boxes["shift_up"][1] == [0, 0, 100, 100]  # moved inside
    with pytest.raises(ValueError, match="expected one of fixed"):
        variant_rows(rows, "bigger")


def test_the_dfer_verdict_under_each_region(tmp_path, monkeypatch):
    monkeypatch.setenv("NIA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NIA_CODE_VERSION", "v-test")
    frame = report_fakes.state_frame()
    right = frame["pred"] == frame["truth"]
    frame["pred_region_fixed"] = np.where(np.arange(len(frame)) % 2 == 0, frame["truth"], "N")
    frame["pred_region_scale_0.8"] = frame["pred"]
    frame.loc[:2, "pred_region_scale_0.8"] = ""          # 3 clips that variant's run could not read
    report_fakes.write_state(tmp_path / "dfer", frame)
    run = separate_streams_runner().invoke(main, ["report", str(tmp_path / "dfer"), "--out", str(tmp_path / "r")])
    assert run.exit_code in (0, 1), run.stdout + run.stderr
    entry = json.loads((tmp_path / "r" / "report.json").read_text())["tests"][0]
    rows = {r["method"]: r for r in entry["sensitivity"]["rows"]}
    fixed_right = (frame["pred_region_fixed"] == frame["truth"]).mean()
    assert rows["as indexed"]["used"] and rows["as indexed"]["value"] == pytest.approx(right.mean())
    assert rows["fixed"]["value"] == pytest.approx(fixed_right) and rows["fixed"]["n"] == len(frame)
    assert rows["scale_0.8"]["n"] == len(frame) - 3 and rows["scale_0.8"]["unlabelled"] == 3
    assert rows["scale_0.8"]["value"] == pytest.approx(right[3:].mean())
    assert entry["value"] == pytest.approx(right.mean())   # the verdict is still the test's own
    verdicts = {r["verdict"] for r in rows.values()}
    assert entry["sensitivity"]["verdicts_agree"] == (len(verdicts) == 1)
    assert "clip region" in (tmp_path / "r" / "report.md").read_text()
