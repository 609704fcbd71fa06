"""`nia report --compare OLD NEW`: verdicts side by side, the change by group, samples, provenance, one sentence."""
import json
import shutil

import numpy as np
import pytest

from tests import report_fakes as fakes
from common.cli import main
from common.metrics import angular_errors_deg
from tests.click_runner import separate_streams_runner

FLIPPED = (3, 8, 15, 22)


def _invoke(*args):
    return separate_streams_runner().invoke(main, ["report", *map(str, args)])


def _compare(old, new, out):
    run = _invoke("--compare", old, new, "--out", out)
    assert run.exit_code == 0, run.stdout + run.stderr
    return run.stdout, json.loads((out / "compare.json").read_text())


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    """Two runs on the same data and code: new dfer weights flip 4 clips; new l2cs weights move the gaze."""
    monkeypatch.setenv("NIA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NIA_CODE_VERSION", "v-test")  # no git describe per result written
    old, new = fakes.write_all(tmp_path / "old"), fakes.write_all(tmp_path / "new")
    fakes.write_state(old["dfer"], fakes.state_frame(), weights_sha256="a" * 64)
    fakes.write_state(new["dfer"], fakes.state_frame(flip=FLIPPED), weights_sha256="b" * 64)
    fakes.write_gaze(old["l2cs"], fakes.gaze_frame(), weights_sha256="c" * 64)
    fakes.write_gaze(new["l2cs"], fakes.gaze_frame(off_screen_bias=30.0), weights_sha256="d" * 64)
    return tmp_path / "old", tmp_path / "new"


def _test(result, name):
    return next(t for t in result["tests"] if t["test"] == name)


def test_different_weights_name_the_flipped_clips_in_one_sentence(runs, tmp_path):
    output, result = _compare(*runs, tmp_path / "cmp")
    old, new = fakes.state_frame(), fakes.state_frame(flip=FLIPPED)
    flipped = sorted(old["name"][old["pred"] != new["pred"]])
    dfer = _test(result, "dfer")
    assert sorted(c["name"] for c in dfer["samples"]["flipped"]["clips"]) == flipped and len(flipped) == 4
    assert result["summary"].startswith("same data, code and machine, different weights: ")
    assert "4 clips changed class" in result["summary"] and flipped[0] in result["summary"]
    assert dfer["old"]["verdict"] == "PASS" and [r["key"] for r in dfer["provenance"]] == ["weights_sha256"]
    assert output.splitlines()[-2].startswith("in short: same data, code and machine, different weights")
    for name in ("compare.md", "compare.html"):
        assert "4 clips changed class" in (tmp_path / "cmp" / name).read_text()


def test_the_change_splits_exactly_over_each_grouping(runs, tmp_path):
    _, result = _compare(*runs, tmp_path / "cmp")
    for test in result["tests"]:
        assert test["groups"], test["test"]
        for grouping in test["groups"]:
            assert sum(g["change"] for g in grouping["groups"]) == pytest.approx(test["change"], abs=1e-9)
    l2cs = _test(result, "l2cs")
    state = next(g for g in l2cs["groups"] if g["key"] == "state")
    assert state["groups"][0]["group"] == "N"  # only the off-screen crops in state N moved
    assert state["groups"][0]["change"] == pytest.approx(l2cs["change"])


def test_the_predictions_that_moved_most_come_first(runs, tmp_path):
    _, result = _compare(*runs, tmp_path / "cmp")
    old, new = fakes.gaze_frame(), fakes.gaze_frame(off_screen_bias=30.0)
    moved = angular_errors_deg(old[["pred_pitch", "pred_yaw"]].to_numpy(), new[["pred_pitch", "pred_yaw"]].to_numpy())
    samples = _test(result, "l2cs")["samples"]
    assert samples["prediction_moved"]["n_moved"] == fakes.N_OFF_SCREEN
    assert samples["prediction_moved"]["largest"][0]["moved_deg"] == pytest.approx(moved.max())
    assert samples["prediction_moved"]["largest"][0]["name"] == old["name"].iloc[int(np.argmax(moved))]


def test_samples_in_one_run_only_mean_different_data(tmp_path, monkeypatch):
    monkeypatch.setenv("NIA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NIA_CODE_VERSION", "v-test")
    frame = fakes.gaze_frame()
    fakes.write_gaze(tmp_path / "old", frame.iloc[5:])
    fakes.write_gaze(tmp_path / "new", frame)
    _, result = _compare(tmp_path / "old", tmp_path / "new", tmp_path / "cmp")
    samples = _test(result, "l2cs")["samples"]
    assert samples["only_in_new"]["n"] == 5 and samples["only_in_old"]["n"] == 0
    assert samples["only_in_new"]["names"] == sorted(frame["name"].iloc[:5])
    assert result["summary"].startswith("same code, weights and machine, different data")


def test_merged_reports_compare_with_or_without_their_result_folders(runs, tmp_path):
    reports = []
    for run in runs:
        folders = [run / test for test in ("l2cs", "rit", "dfer")]
        assert _invoke(*folders, "--out", run.parent / f"report_{run.name}").exit_code in (0, 1)
        reports.append(run.parent / f"report_{run.name}")
    _, result = _compare(*reports, tmp_path / "cmp_reports")
    assert _test(result, "dfer")["samples"]["flipped"]["n"] == 4
    shutil.rmtree(runs[0])  # the old run's result folders are gone: its report.json still holds the groups
    _, result = _compare(reports[0] / "report.json", reports[1], tmp_path / "cmp_gone")
    dfer = _test(result, "dfer")
    assert dfer["samples"] is None and "not found" in dfer["samples_note"]
    assert dfer["groups"] and dfer["old"]["verdict"] == "PASS" and dfer["new"]["verdict"] == "FAIL"


def test_an_input_that_is_no_run_exits_2_with_one_line(runs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = _invoke("--compare", runs[0], empty, "--out", tmp_path / "cmp")
    assert run.exit_code == 2 and "neither a result folder" in run.stderr and str(empty) in run.stderr
    run = _invoke(runs[0] / "l2cs", "--compare", *runs, "--out", tmp_path / "cmp")
    assert run.exit_code == 2 and "not both" in run.stderr
