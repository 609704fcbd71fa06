"""`nia report`'s "where the error lives": every test split by group, with n, value, CI and contribution."""
import json

import numpy as np
import pandas as pd
import pytest

from tests import report_fakes
from common.cli import main
from common.report.groups import UNPARSED, sample_fields
from l2cs.run_valid_l2cs import per_sample_table
from tests.click_runner import separate_streams_runner


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """report(*options) -> (entries by test, report.md, report.html); each set of options built once."""
    root = tmp_path_factory.mktemp("groups")
    made = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NIA_CACHE_DIR", str(root / "cache"))
        patch.setenv("NIA_CODE_VERSION", "v-test")
        dirs = report_fakes.write_all(root / "results")

    def make(*options):
        if options not in made:
            out = root / ("report" + "".join(options))
            run = separate_streams_runner().invoke(main, ["report", *map(str, dirs.values()), "--out", str(out),
                                                            *options])
            assert run.exit_code in (0, 1), run.stdout + run.stderr
            entries = {t["test"]: t for t in json.loads((out / "report.json").read_text())["tests"]}
            made[options] = entries, (out / "report.md").read_text(), (out / "report.html").read_text()
        return made[options]
    return make


def _grouping(entry, key):
    return next(g for g in entry["groups"]["groupings"] if g["key"] == key)


def _group(entry, key, label):
    return next(g for g in _grouping(entry, key)["groups"] if g["group"] == label)


def test_the_off_screen_crops_come_first_with_their_share_of_the_mean(report):
    entries, markdown, html = report()
    l2cs = entries["l2cs"]
    frame = report_fakes.gaze_frame()
    errors, off = frame["error_deg"].to_numpy(), ~frame["on_screen"].to_numpy()
    expected = off.sum() / len(errors) * (errors[off].mean() - errors.mean())
    top = l2cs["groups"]["top"][0]
    assert top["grouping"] in ("state", "gaze_target") and top["n"] == report_fakes.N_OFF_SCREEN
    assert top["contribution"] == pytest.approx(expected) and expected > 2.0
    off_group = _group(l2cs, "gaze_target", "off screen")
    assert off_group["value"] == pytest.approx(errors[off].mean())
    assert off_group["ci95"][0] <= off_group["value"] <= off_group["ci95"][1]
    assert f"{report_fakes.N_OFF_SCREEN} crops with gaze target off screen" in markdown
    assert "Where the error lives" in html and "By observer state" in html


@pytest.mark.parametrize("test", ["l2cs", "rit", "dfer"])
def test_every_grouping_splits_the_value_exactly(report, test):
    entry = report()[0][test]
    keys = {g["key"] for g in entry["groups"]["groupings"]}
    assert {"display", "image_type", "state", "posture", "direction", "subject"} <= keys
    for grouping in entry["groups"]["groupings"]:
        groups = grouping["groups"]
        assert sum(g["n"] for g in groups) == entry["n_samples"]
        assert sum(g["contribution"] for g in groups) == pytest.approx(0.0, abs=1e-9)
        assert sum(g["part"] for g in groups) == pytest.approx(entry["value"])
        sizes = [abs(g["contribution"]) for g in groups]
        assert sizes == sorted(sizes, reverse=True)


def test_rit_contribution_is_the_union_share_times_the_iou_gap_per_class(report):
    rit = report()[0]["rit"]
    frame = report_fakes.segmentation_frame()
    inter = frame[[f"inter_{c}" for c in report_fakes.SEG_CLASSES]].to_numpy()
    union = frame[[f"union_{c}" for c in report_fakes.SEG_CLASSES]].to_numpy()
    ir = frame["name"].str.split("_").str[6].to_numpy() == "ir"
    iou = inter.sum(0) / union.sum(0)
    expected = ((inter[ir].sum(0) - union[ir].sum(0) * iou) / union.sum(0)).mean()
    group = _group(rit, "image_type", "ir")
    assert group["contribution"] == pytest.approx(expected) and expected < 0
    assert group["value"] == pytest.approx((inter[ir].sum(0) / union[ir].sum(0)).mean())
    assert rit["groups"]["top"][0]["group"] in ("ir", "D")  # the worse half of the crops


def test_dfer_groups_are_accuracies_and_subjects_appear_by_id(report):
    entries, markdown, _ = report()
    frame = report_fakes.state_frame()
    correct = (frame["pred"] == frame["truth"]).to_numpy()
    posture = frame["name"].str.split("_").str[8].to_numpy()
    assert _group(entries["dfer"], "posture", "D")["value"] == pytest.approx(correct[posture == "D"].mean())
    subjects = {g["group"] for g in _grouping(entries["dfer"], "subject")["groups"]}
    assert subjects == set(report_fakes.SUBJECTS)
    assert _grouping(entries["dfer"], "subject")["ci_unit"] == "video"
    assert "| 101 |" in markdown


def test_anonymised_subjects_show_no_id(report):
    entries, markdown, html = report("--anonymise-subjects")
    for entry in entries.values():
        labels = {g["group"] for g in _grouping(entry, "subject")["groups"]}
        assert labels == {f"subject {i:02d}" for i in range(1, 7)}
        assert entry["groups"]["subjects_anonymised"] is True
    assert "| 101 |" not in markdown and "subject 101" not in html


def test_names_that_do_not_parse_are_grouped_as_such_not_dropped():
    frame = pd.DataFrame({"name": ["s001_eyes", "NIA22EYE_A_101_1_2_S_rgb_F_K_T_0001_eyes"],
                          "subject": ["1", "101"], "inst": [None, "S"]})
    fields = sample_fields(frame)
    assert list(fields["state"]) == [UNPARSED, "F"]
    assert list(fields["posture"]) == [UNPARSED, "T"]  # K is the old name of T
    assert list(fields["display"]) == [UNPARSED, "S"]


def test_l2cs_per_sample_says_whether_the_target_was_on_screen():
    rows = pd.DataFrame({"crop_id": ["a_eyes", "b_eyes", "c_eyes", "d_eyes"], "subject": "1", "inst": "S",
                         "gaze_pitch_deg": 0.0, "gaze_yaw_deg": 0.0,
                         "point_x": [960.0, -120.0, 1900.0, np.nan], "point_y": [540.0, 500.0, 1300.0, 10.0]})
    table = per_sample_table(rows, np.zeros((4, 2)))
    assert list(table["on_screen"]) == [True, False, False, None]
    assert "on_screen" not in per_sample_table(rows.drop(columns=["point_x", "point_y"]), np.zeros((4, 2)))
