"""`nia report`: merged tables, recomputation, CLI exit codes, HTML in a headless browser."""
import hashlib
import json
import shutil
import subprocess

import cv2
import numpy as np
import pandas as pd
import pytest

from common.cli import main
from common.metrics import ConfusionMatrix, angular_errors_deg, confusion_matrix, mean_ci, war
from common.verdicts.provenance import collect_provenance
from common.verdicts.results import EXIT_FAIL, exit_code_for, write_results
from tests.click_runner import separate_streams_runner

RNG_SEED = 0
STATES = ["F", "S", "D", "A", "N"]
SEG_CLASSES = ["background", "eye_region", "iris"]


def write_gaze_result(out, noise_deg):
    rng = np.random.default_rng(RNG_SEED)
    n = 40
    true = rng.uniform(-20, 20, size=(n, 2))
    pred = true + rng.normal(0, noise_deg, size=(n, 2))
    errors = angular_errors_deg(pred, true)
    frame = pd.DataFrame({
        "name": [f"s{i:03d}_eyes" for i in range(n)], "subject": [f"{i % 4:03d}" for i in range(n)],
        "inst": [["S", "T", "L", "V", "M"][i % 5] for i in range(n)],
        "pred_pitch": pred[:, 0], "pred_yaw": pred[:, 1], "true_pitch": true[:, 0], "true_yaw": true[:, 1],
        "error_deg": errors,
    })
    return write_results(
        out, test="l2cs", metric="mean_angular_error_deg", value=float(errors.mean()), per_sample=frame,
        n_skipped=0, skipped={}, ci95=mean_ci(errors, frame["subject"], n_boot=200),
        provenance=collect_provenance(extra={"gaze_method": "geometric"}), n_in_split=n,
    )


def write_segmentation_result(out):
    rng = np.random.default_rng(RNG_SEED)
    rows, total = [], ConfusionMatrix(3)
    for i in range(6):
        truth = np.zeros((12, 16), dtype=np.int64)
        truth[3:9, 2:14] = 1
        truth[4:8, 6:10] = 2
        pred = np.where(rng.random(truth.shape) < 0.9, truth, rng.integers(0, 3, truth.shape))
        one = ConfusionMatrix(3)
        one.update(pred, truth)
        total.update(pred, truth)
        row = {"name": f"s{i}_r_eye", "subject": f"{i % 3:03d}", "inst": "M", "overlay": f"overlays/s{i}.png"}
        for c, inter, union, iou in zip(SEG_CLASSES, one.intersections(), one.unions(), one.iou_per_class()):
            row.update({f"iou_{c}": iou, f"inter_{c}": inter, f"union_{c}": union})
        rows.append(row)
        (out / "overlays").mkdir(parents=True, exist_ok=True)
        colours = np.array([[0, 0, 0], [0, 160, 0], [0, 0, 220]], dtype=np.uint8)
        cv2.imwrite(str(out / "overlays" / f"s{i}.png"), cv2.resize(colours[pred], (64, 48), interpolation=0))
    return write_results(
        out, test="rit", metric="miou", value=total.miou(), per_sample=pd.DataFrame(rows), n_skipped=0,
        skipped={}, ci95=None, provenance=collect_provenance(extra={"classes": SEG_CLASSES}),
        extra={"include_background": True}, n_in_split=6,
    )


def write_state_result(out, accuracy, skipped=None, allow_partial=False):
    rng = np.random.default_rng(RNG_SEED)
    truth = rng.integers(0, 5, 60)
    pred = np.where(rng.random(60) < accuracy, truth, (truth + 1) % 5)
    frame = pd.DataFrame({
        "name": [f"v{i}" for i in range(60)], "subject": [f"{i % 6:03d}" for i in range(60)], "inst": "T",
        "pred": [STATES[p] for p in pred], "truth": [STATES[t] for t in truth],
    })
    value = war(confusion_matrix(pred, truth, 5))
    skipped = skipped or {"unreadable_image": 2}
    return write_results(
        out, test="dfer", metric="war", value=value, per_sample=frame, n_skipped=sum(skipped.values()),
        skipped=skipped, ci95=mean_ci(pred == truth, frame["subject"], n_boot=200),
        provenance=collect_provenance(extra={"classes": STATES}), extra={"classes": STATES},
        n_in_split=60 + sum(skipped.values()), allow_partial=allow_partial,
    )


@pytest.fixture()
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("NIA_CACHE_DIR", str(tmp_path / "cache"))
    dirs = {name: tmp_path / name for name in ("l2cs", "rit", "dfer")}
    write_gaze_result(dirs["l2cs"], noise_deg=3.0)
    write_segmentation_result(dirs["rit"])
    failing = write_state_result(dirs["dfer"], accuracy=0.4)  # deliberately below 70 %
    assert exit_code_for(failing) == EXIT_FAIL
    return dirs


def _run_report(dirs, out, *options):
    return separate_streams_runner().invoke(main, ["report", *map(str, dirs), "--out", str(out), *options])


def _edit_metrics(folder, **changes):
    path = folder / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics.update(changes)
    path.write_text(json.dumps(metrics, indent=2))
    return metrics


def _entry(out, test):
    return next(t for t in json.loads((out / "report.json").read_text())["tests"] if t["test"] == test)


def test_report_merges_tables_and_fails_on_one_fail(results, tmp_path):
    out = tmp_path / "report"
    run = _run_report(results.values(), out)
    assert run.exit_code == EXIT_FAIL, run.stdout + run.stderr
    assert "dfer: WAR" in run.stdout and "-> FAIL" in run.stdout and "l2cs: mean angular error" in run.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["overall_verdict"] == "FAIL" and report["exit_code"] == 1
    verdicts = {t["test"]: t["verdict"] for t in report["tests"]}
    assert verdicts == {"l2cs": "PASS", "rit": "PASS", "dfer": "FAIL"}
    assert all(t["consistent"] for t in report["tests"])  # per_sample.csv reproduces every headline
    dfer = next(t for t in report["tests"] if t["test"] == "dfer")
    assert dfer["details"]["classes"] == STATES and sum(map(sum, dfer["details"]["confusion_matrix"])) == 60
    markdown = (out / "report.md").read_text()
    assert "| dfer | WAR |" in markdown and "| FAIL |" in markdown and "| >= 70 % | 71.32 % |" in markdown
    html = (out / "report.html").read_text()
    assert "<td class='FAIL'>FAIL</td>" in html and html.count("data:image/png;base64,") == 2 + 1 + 6 + 2
    assert "http://" not in html and "https://" not in html  # self-contained


def test_report_with_a_subset_passes(results, tmp_path):
    run = _run_report([results["l2cs"]], tmp_path / "r")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert json.loads((tmp_path / "r" / "report.json").read_text())["overall_verdict"] == "PASS"


def test_report_flags_a_per_sample_file_that_disagrees(results, tmp_path):
    per_sample = results["l2cs"] / "per_sample.csv"
    frame = pd.read_csv(per_sample)
    frame.loc[0, "error_deg"] += 10
    frame.to_csv(per_sample, index=False)
    run = _run_report([results["l2cs"]], tmp_path / "r")
    assert run.exit_code == EXIT_FAIL and "inconsistent" in run.stderr
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "NO: per_sample.csv sha256" in markdown and "| FAIL |" in markdown


def test_report_refuses_bad_folders(results, tmp_path):
    run = _run_report([tmp_path], tmp_path / "r")
    assert run.exit_code == 2 and "no metrics.json" in run.stderr
    run = _run_report([results["l2cs"], results["l2cs"]], tmp_path / "r")
    assert run.exit_code == 2 and "both hold test l2cs" in run.stderr


def test_html_renders_in_headless_chromium(results, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    out = tmp_path / "report"
    _run_report(results.values(), out)
    screenshot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={screenshot}", "--window-size=1200,2000", (out / "report.html").as_uri()],
        check=True, capture_output=True, timeout=90,
    )
    image = cv2.imread(str(screenshot))
    assert image is not None and image.shape[:2] == (2000, 1200)
    assert image.std() > 20  # not blank: text, tables and plots
    # the FAIL cell (#ffcdd2) and the PASS cells (#c8e6c9) are painted
    assert np.all(image == (0xD2, 0xCD, 0xFF), axis=2).sum() > 200
    assert np.all(image == (0xC9, 0xE6, 0xC8), axis=2).sum() > 200


def test_report_recomputes_an_edited_pass(tmp_path, monkeypatch):
    """Issue 10 case 4: a FAIL whose metrics.json was edited to passed: true used to be filed as a PASS."""
    monkeypatch.setenv("NIA_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "l2cs"
    honest = write_gaze_result(folder, noise_deg=25.0)
    assert honest["verdict"] == "FAIL" and honest["value"] > 10
    _edit_metrics(folder, passed=True, verdict="PASS")
    run = _run_report([folder], tmp_path / "r")
    assert run.exit_code == EXIT_FAIL, run.stdout + run.stderr
    assert f"{honest['value']:.2f} deg > 10 deg -> FAIL" in run.stdout and "-> PASS" not in run.stdout
    entry = _entry(tmp_path / "r", "l2cs")
    assert entry["verdict"] == "FAIL" and entry["consistent"] is False
    assert entry["problems"] == ["metrics.json says PASS; its value against the suite's threshold gives FAIL"]
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "NO: metrics.json says PASS" in markdown and "| yes |" not in markdown
    assert "<td class='FAIL'>FAIL</td>" in (tmp_path / "r" / "report.html").read_text()


def test_report_uses_the_suite_thresholds_not_the_file_s(results, tmp_path):
    metrics = _edit_metrics(results["dfer"], threshold=0.3, passed=True, verdict="PASS")
    run = _run_report([results["dfer"]], tmp_path / "r")
    assert run.exit_code == EXIT_FAIL and f"{100 * metrics['value']:.2f} % < 70 % -> FAIL" in run.stdout
    problems = _entry(tmp_path / "r", "dfer")["problems"]
    assert "threshold is 0.3 in metrics.json; the suite's (common/data/thresholds.json) is 0.7" in problems


@pytest.mark.parametrize("case", ["value", "error_deg", "coverage", "hidden_submission_skip", "no_per_sample",
                                  "duplicate_row"])
def test_report_fails_a_folder_that_disagrees_with_itself(results, tmp_path, case):
    folder = results["l2cs"]
    metrics = json.loads((folder / "metrics.json").read_text())
    frame = pd.read_csv(folder / "per_sample.csv", dtype={"subject": str})
    if case == "value":
        _edit_metrics(folder, value=metrics["value"] - 1.0)
        expected = "value in metrics.json is"
    elif case == "error_deg":  # error column lowered and the file's hash updated to match
        frame["error_deg"] *= 0.5
        frame.to_csv(folder / "per_sample.csv", index=False)
        _edit_metrics(folder, value=float(frame["error_deg"].mean()),
                      per_sample_sha256=hashlib.sha256((folder / "per_sample.csv").read_bytes()).hexdigest())
        expected = "error_deg of 40 rows differs from the angle between pred_ and true_"
    elif case == "coverage":
        _edit_metrics(folder, n_in_split=50)
        expected = "coverage: 40 scored + 0 skipped = 40 samples; n_in_split is 50"
    elif case == "hidden_submission_skip":
        _edit_metrics(folder, n_in_split=45, n_skipped=5, skipped={"missing_prediction": 5},
                      skipped_by_kind={"data": 0, "submission": 5})
        expected = "metrics.json says PASS; 5 samples skipped because of the submission give ERROR"
    elif case == "no_per_sample":
        (folder / "per_sample.csv").unlink()
        expected = "per_sample.csv is missing"
    else:
        frame = pd.concat([frame, frame.iloc[[0]]])
        frame.to_csv(folder / "per_sample.csv", index=False)
        _edit_metrics(folder, n_samples=41, n_in_split=41, value=float(frame["error_deg"].mean()),
                      per_sample_sha256=hashlib.sha256((folder / "per_sample.csv").read_bytes()).hexdigest())
        expected = "per_sample.csv names 1 sample more than once"
    run = _run_report([folder], tmp_path / "r")
    entry = _entry(tmp_path / "r", "l2cs")
    assert run.exit_code == EXIT_FAIL and entry["verdict"] == "FAIL" and entry["consistent"] is False
    assert any(p.startswith(expected) for p in entry["problems"]), entry["problems"]


def test_partial_and_error_results_are_filed_without_a_verdict(results, tmp_path):
    write_state_result(results["dfer"], accuracy=0.9, skipped={"missing_prediction": 3}, allow_partial=True)
    run = _run_report([results["l2cs"], results["dfer"]], tmp_path / "r")
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert run.exit_code == 2 and report["overall_verdict"] == "INCOMPLETE" and report["exit_code"] == 2
    assert _entry(tmp_path / "r", "dfer")["verdict"] == "PARTIAL" and _entry(tmp_path / "r", "dfer")["consistent"]
    assert "-> PARTIAL, no verdict" in run.stdout
    write_state_result(results["dfer"], accuracy=0.9, skipped={"missing_prediction": 3})
    run = _run_report([results["dfer"]], tmp_path / "r")
    assert run.exit_code == 2 and _entry(tmp_path / "r", "dfer")["verdict"] == "ERROR"
    assert "no verdict: 3 of the 63 samples" in run.stdout


def test_report_files_only_the_run_it_is_told(results, tmp_path):
    run_id = json.loads((results["l2cs"] / "metrics.json").read_text())["run_id"]
    assert _run_report([results["l2cs"]], tmp_path / "r", "--run-id", run_id).exit_code == 0
    run = _run_report([results["l2cs"]], tmp_path / "r", "--run-id", "another-run")
    assert run.exit_code == 2 and f"is from run {run_id}, not from run another-run" in run.stderr
    assert not (tmp_path / "r" / "report.html").exists()  # the earlier report is gone, not left to be filed


def test_report_of_a_folder_from_an_old_writer_is_refused(results, tmp_path):
    metrics = json.loads((results["l2cs"] / "metrics.json").read_text())
    for key in ("n_in_split", "skipped_by_kind", "run_id", "verdict"):
        del metrics[key]
    (results["l2cs"] / "metrics.json").write_text(json.dumps({**metrics, "schema_version": 1}))
    run = _run_report([results["l2cs"]], tmp_path / "r")
    assert run.exit_code == EXIT_FAIL
    problems = _entry(tmp_path / "r", "l2cs")["problems"]
    assert "metrics.json has schema_version 1; expected 2 (rerun the test)" in problems
