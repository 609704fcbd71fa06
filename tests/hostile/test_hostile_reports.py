"""Hostile result folders and reports (tests/hostile_corpus.py, area ``reports``): `nia report` follows no
per-sample file or overlay out of its folder, files the tests of a run beside a stale folder, recomputes the
split, the skips and the truth from the data where it is at hand (and says so where it is not); `nia suite
table` checks report.json's verdicts; `nia suite run` goes on past a result it cannot remove.

The results are real runs of the three entry points in score-only mode over tiny datasets, then edited as a
forger would: rows, columns and counts changed together, the per-sample SHA-256 recomputed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from common.verdicts.thresholds import decide, passed_of, skips_by_kind, threshold_for
from tests.hostile_corpus import REPORTS, Case, by_id
from tests.hostile_env import Outcome, read_only, run_click, run_nia
from tests.click_runner import separate_streams_runner

CASES = by_id(REPORTS)
FORGERIES = [c for c in REPORTS if c.id.startswith("forged_")]


def holds(outcome: Outcome, case: Case, file: str | Path = "") -> None:
    """The case's exit code, and one line of stdout or stderr that holds every part of its line."""
    assert outcome.code == case.code, (outcome.code, outcome.out[-2000:], outcome.err[-2000:])
    assert "Traceback" not in outcome.err, outcome.err[-3000:]
    parts = case.expected(str(file))
    lines = (outcome.out + "\n" + outcome.err).splitlines()
    assert any(all(p in line for p in parts) for line in lines), (parts, "\n".join(lines[-12:]))


def _entry_point(module: str, args: list) -> Outcome:
    import importlib

    return run_click(importlib.import_module(module).cli, [*args, "--device", "cpu", "--workers", "0"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """One honest score-only run per test, with its data, each a FAIL: l2cs (half the crops 30 deg off), rit
    (no iris), dfer (half the clips wrong)."""
    from tests.dfer_fakes import balanced_clips, write_clip_set
    from tests.l2cs_fakes import make_fake_crops
    from tests.rit_fakes import make_seg_crops

    base = tmp_path_factory.mktemp("runs")
    made: dict[str, dict[str, Path]] = {}
    crops = make_fake_crops(base / "crops", {"test": 16}, width=64, height=32)
    truth = _split_rows(crops)
    pitch = truth["gaze_pitch_deg"] + np.where(np.arange(len(truth)) % 2 == 0, 30.0, 0.0)
    pd.DataFrame({"name": truth["crop_id"], "pitch": pitch, "yaw": truth["gaze_yaw_deg"]}).to_csv(
        base / "gaze.csv", index=False)
    made["l2cs"] = {"data": crops, "predictions": base / "gaze.csv"}
    seg = make_seg_crops(base / "seg", {"test": 4})
    (base / "maps").mkdir()
    for row in _split_rows(seg).itertuples():  # the iris drawn as eye region: a FAIL
        class_map = cv2.imread(str(seg / row.png_path), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(base / "maps" / f"{row.crop_id}.png"), np.where(class_map == 2, 1, class_map).astype(np.uint8))
    made["rit"] = {"data": seg, "predictions": base / "maps"}
    clips = write_clip_set(base / "dfer", balanced_clips({"test": 10}))
    states = _split_rows(clips)
    wrong = [s if i % 2 else ("N" if s != "N" else "F") for i, s in enumerate(states["state"])]
    pd.DataFrame({"name": states["clip_id"], "label": wrong}).to_csv(base / "states.csv", index=False)
    made["dfer"] = {"data": clips, "predictions": base / "states.csv"}
    modules = {"l2cs": "l2cs.run_valid_l2cs", "rit": "ritnet.test", "dfer": "dfer.valid_nia"}
    for test, inputs in made.items():
        inputs["out"] = base / "results" / test
        outcome = _entry_point(modules[test], ["--data", inputs["data"], "--predictions", inputs["predictions"],
                                               "--out", inputs["out"]])
        assert outcome.code in (0, 1), outcome.err[-2000:]
    return made


def _split_rows(dataset: Path) -> pd.DataFrame:
    index = pd.read_parquet(dataset / "index.parquet")
    return index[index["split"] == "test"].reset_index(drop=True)


@pytest.fixture()
def results(runs, tmp_path: Path) -> dict[str, Path]:
    """A fresh copy of the three result folders, under tmp/results/<test>."""
    return {test: Path(shutil.copytree(inputs["out"], tmp_path / "results" / test)) for test, inputs in runs.items()}


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _write_metrics(folder: Path, metrics: dict) -> None:
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))


def refile(folder: Path, per_sample: pd.DataFrame, value: float, skipped: dict[str, int] | None = None,
           **changes) -> dict:
    """Write a forged per_sample.csv and a metrics.json that agrees with it in every field the report checks
    on its own: value, counts, skips, verdict, SHA-256."""
    metrics = _metrics(folder)
    per_sample.to_csv(folder / "per_sample.csv", index=False)
    skipped = metrics["skipped"] if skipped is None else skipped
    verdict = decide(threshold_for(metrics["test"]), value, skipped, allow_partial=False)
    metrics.update(value=value, n_samples=len(per_sample), n_skipped=sum(skipped.values()), skipped=skipped,
                   skipped_by_kind=skips_by_kind(skipped), verdict=verdict, passed=passed_of(verdict),
                   per_sample_sha256=hashlib.sha256((folder / "per_sample.csv").read_bytes()).hexdigest(), **changes)
    _write_metrics(folder, metrics)
    return metrics


def _per_sample(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "per_sample.csv", dtype={"name": str, "subject": str, "inst": str})


def _iou_value(per_sample: pd.DataFrame, classes: list[str]) -> float:
    inter = per_sample[[f"inter_{c}" for c in classes]].to_numpy(float).sum(axis=0)
    union = per_sample[[f"union_{c}" for c in classes]].to_numpy(float).sum(axis=0)
    return float(np.mean(inter / union))


def forge(case_id: str, results: dict[str, Path]) -> tuple[str, dict]:
    """Apply the forgery of ``case_id``; returns (the test it forged, its new metrics.json)."""
    l2cs, rit, dfer = results["l2cs"], results["rit"], results["dfer"]
    gaze = _per_sample(l2cs)
    honest = gaze[gaze["error_deg"] < 10].reset_index(drop=True)
    if case_id in ("forged_rows_booked_missing", "forged_without_data"):
        return "l2cs", refile(l2cs, honest, float(honest["error_deg"].mean()),
                              {"missing_image": len(gaze) - len(honest)})
    if case_id == "forged_rows_booked_unreadable":
        return "l2cs", refile(l2cs, honest, float(honest["error_deg"].mean()),
                              {"unreadable_image": len(gaze) - len(honest)})
    if case_id == "forged_gaze_truth":
        gaze[["true_pitch", "true_yaw"]] = gaze[["pred_pitch", "pred_yaw"]].to_numpy()
        gaze["error_deg"] = 0.0
        return "l2cs", refile(l2cs, gaze, 0.0)
    if case_id == "forged_state_truth":
        states = _per_sample(dfer)
        states["truth"] = states["pred"]
        return "dfer", refile(dfer, states, 1.0)
    maps = _per_sample(rit)
    if case_id == "forged_iris_dropped":
        kept = maps.drop(columns=["inter_iris", "union_iris"])
        return "rit", refile(rit, kept, _iou_value(kept, ["background", "eye_region"]))
    assert case_id == "forged_class_map_counts"
    for name in ("background", "eye_region", "iris"):  # every pixel right: inter = union = the union's count
        maps[f"inter_{name}"] = maps[f"union_{name}"]
    return "rit", refile(rit, maps, 1.0)


# --- the per-sample file and the overlays stay inside the folder ----------------------------------------------

@pytest.mark.parametrize("how", ["absolute", "dotdot", "link"])
def test_a_per_sample_file_outside_the_folder_is_refused(results, tmp_path: Path, how: str) -> None:
    """Issue 19 item 4: a folder whose own per_sample.csv FAILs was filed PASS from another run's file."""
    l2cs = results["l2cs"]
    other = tmp_path / "other"
    other.mkdir()
    passing = _per_sample(l2cs)
    passing = passing[passing["error_deg"] < 10]
    passing.to_csv(other / "per_sample.csv", index=False)
    metrics = _metrics(l2cs)
    metrics.update(n_samples=len(passing), value=float(passing["error_deg"].mean()), verdict="PASS", passed=True,
                   per_sample_sha256=hashlib.sha256((other / "per_sample.csv").read_bytes()).hexdigest())
    if how == "absolute":
        metrics["per_sample_file"] = str(other / "per_sample.csv")
    elif how == "dotdot":
        metrics["per_sample_file"] = "../../other/per_sample.csv"
    else:
        (l2cs / "per_sample.csv").unlink()
        os.symlink(other / "per_sample.csv", l2cs / "per_sample.csv")
    _write_metrics(l2cs, metrics)
    outcome = run_nia("report", l2cs, "--out", tmp_path / "report")
    holds(outcome, CASES[f"report_per_sample_{how}"], l2cs / "metrics.json")
    assert not (tmp_path / "report" / "report.json").exists()


def test_an_overlay_outside_the_folder_is_not_embedded(results, tmp_path: Path) -> None:
    rit = results["rit"]
    secret = tmp_path / "elsewhere.png"
    shutil.copy(next((rit / "overlays").iterdir()), secret)
    per_sample = _per_sample(rit)
    per_sample["overlay"] = str(secret)
    refile(rit, per_sample, _metrics(rit)["value"])
    outcome = run_nia("report", rit, "--out", tmp_path / "report")
    html = (tmp_path / "report" / "report.html").read_text()
    assert "data:image/png;base64" not in html.split("Example overlays")[-1]  # the file was not read
    line = next(line for line in html.split("<p>") if str(secret) in line)
    holds(Outcome(outcome.code, line, ""), CASES["report_overlay_outside"], secret)


def test_a_folder_of_an_unknown_test_is_refused_not_scored_as_another(tmp_path: Path) -> None:
    """The report used to score any test it did not know as Former-DFER's observer state."""
    from tests.report_fakes import state_frame, write_state

    folder = tmp_path / "blink"
    write_state(folder, state_frame())
    _write_metrics(folder, {**_metrics(folder), "test": "blink"})
    outcome = run_nia("report", folder, "--out", tmp_path / "report")
    holds(outcome, CASES["report_unknown_test"], folder)
    assert not (tmp_path / "report" / "report.json").exists()
    table = run_nia("suite", "table", tmp_path, "--tests", "blink")
    assert table.code == 2 and "unknown test blink; expected l2cs, rit, dfer" in table.err


# --- a stale folder, an edited report.json, a result that cannot be removed -------------------------------------

def test_a_stale_folder_is_named_and_the_others_are_filed(results, tmp_path: Path) -> None:
    """Issue 19 item 6: one stale folder made `nia report --run-id` file nothing, and the table said
    `dfer NO RESULT` although dfer had passed."""
    run_id = _metrics(results["l2cs"])["run_id"]
    for test in ("rit", "dfer"):
        _write_metrics(results[test], {**_metrics(results[test]), "run_id": run_id})
    stale = {**_metrics(results["rit"]), "run_id": "an-earlier-run"}
    _write_metrics(results["rit"], stale)
    out = tmp_path / "results" / "report"
    outcome = run_nia("report", *results.values(), "--out", out, "--run-id", run_id)
    holds(outcome, CASES["report_stale_folder"], results["rit"])
    report = json.loads((out / "report.json").read_text())
    assert [e["test"] for e in report["tests"]] == ["l2cs", "dfer"]
    assert [item["test"] for item in report["not_filed"]] == ["rit"] and report["exit_code"] == 2
    table = run_nia("suite", "table", tmp_path / "results", "--tests", "l2cs rit dfer")
    rows = {line.split()[0]: line for line in table.out.splitlines()[1:4]}
    assert rows["dfer"].split()[1] == "FAIL" and rows["l2cs"].split()[1] == "FAIL"
    assert "NO RESULT" in rows["rit"] and "stale results, not filed" in rows["rit"] and table.code == 2


def _table_over(results: dict[str, Path], tmp_path: Path, edit) -> Outcome:
    out = tmp_path / "results" / "report"
    assert run_nia("report", results["l2cs"], "--out", out).code == 1  # the honest FAIL
    report = json.loads((out / "report.json").read_text())
    edit(report["tests"][0])
    (out / "report.json").write_text(json.dumps(report))
    return run_nia("suite", "table", tmp_path / "results", "--tests", "l2cs")


def test_the_table_refuses_an_edited_verdict(results, tmp_path: Path) -> None:
    """Issue 19 item 5: `rit PASS 77.79 % >= 80 %` was printed from an edited report.json."""
    outcome = _table_over(results, tmp_path, lambda entry: entry.update(verdict="PASS", passed=True))
    holds(outcome, CASES["table_edited_verdict"], tmp_path / "results" / "report" / "report.json")
    assert outcome.out.splitlines()[1].split()[1:3] == ["NO", "RESULT"]


def test_the_table_refuses_a_report_that_is_not_its_folder_s(results, tmp_path: Path) -> None:
    outcome = _table_over(results, tmp_path, lambda entry: entry.update(verdict="PASS", passed=True, value=4.2))
    holds(outcome, CASES["table_report_not_its_folder"], tmp_path / "results" / "report" / "report.json")
    assert "NO RESULT" in outcome.out.splitlines()[1]


def test_suite_run_goes_on_past_a_result_it_cannot_remove(tmp_path: Path, monkeypatch) -> None:
    """Issue 19 item 6: an undeletable metrics.json stopped the whole suite; an earlier run's overlays/ and
    report/ were left in place."""
    from common.cli import suite_cmds
    from common.suite import containers
    from tests.fake_docker import passing_l2cs_result
    from tests.unit.suite.test_suite import FakeClient

    monkeypatch.setattr(containers, "connect", lambda: FakeClient())
    monkeypatch.delenv("NIA_RUN_ID", raising=False)
    data, weights, res = tmp_path / "data", tmp_path / "w", tmp_path / "res"
    data.mkdir(), weights.mkdir()
    for name in ("l2cs.pt", "ritnet.pt"):
        (weights / name).write_bytes(b"w")
    passing_l2cs_result(res / "rit", "an-earlier-run")   # what the read-only folder keeps
    for leftover in (res / "l2cs" / "overlays", res / "l2cs" / "report"):
        leftover.mkdir(parents=True)
        (leftover / "old.png").write_bytes(b"old")
    with read_only(res / "rit"):
        result = separate_streams_runner().invoke(
            suite_cmds.suite, ["run", "--tests", "rit l2cs", "--data", str(data), "--weights-dir", str(weights),
                               "--results", str(res), "--gpus", "none"])
    outcome = Outcome(result.exit_code, result.stdout, result.stderr)
    holds(outcome, CASES["suite_undeletable_result"], res / "rit")
    table = result.stdout[result.stdout.index("test  verdict"):].splitlines()
    assert table[1].split()[:3] == ["rit", "NO", "RESULT"] and table[2].split()[:2] == ["l2cs", "PASS"]
    assert not (res / "l2cs" / "overlays").exists() and not (res / "l2cs" / "report").exists()


# --- consistent forgeries: the data decides ---------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in FORGERIES if c.id != "forged_without_data"], ids=lambda c: c.id)
def test_a_consistent_forgery_is_caught_by_the_data(runs, results, tmp_path: Path, case: Case) -> None:
    """Issue 19 item 8: each of these was filed PASS (the folder agrees with itself)."""
    test, metrics = forge(case.id, results)
    assert metrics["verdict"] == "PASS"
    out = tmp_path / "report"
    outcome = run_nia("report", results[test], "--out", out, "--data", runs[test]["data"])
    holds(outcome, case)
    entry = json.loads((out / "report.json").read_text())["tests"][0]
    assert entry["verdict"] == "FAIL" and entry["data_check"]["checked"] is True
    if case.id.startswith(("forged_rows", "forged_gaze", "forged_state")):  # the provenance finds the data too
        assert run_nia("report", results[test], "--out", tmp_path / "again").code == 1


def test_without_the_data_the_report_says_it_trusts_the_run(results, tmp_path: Path) -> None:
    test, metrics = forge("forged_without_data", results)
    metrics["provenance"]["manifest_path"] = "/data/index.parquet"   # where it was inside the container
    _write_metrics(results[test], metrics)
    out = tmp_path / "report"
    outcome = run_nia("report", results[test], "--out", out)
    holds(outcome, CASES["forged_without_data"])
    assert json.loads((out / "report.json").read_text())["tests"][0]["data_check"]["checked"] is False
    for name in ("report.md", "report.html"):
        assert "not checked against the data" in (out / name).read_text()
    given = run_nia("report", results[test], "--out", out, "--data", results["rit"])  # not the data it was run on
    assert given.code == 1 and "none of --data" in given.err


def test_honest_runs_are_consistent_with_their_data(runs, results, tmp_path: Path) -> None:
    """The control: the three real runs, checked against their data, disagree with nothing."""
    out = tmp_path / "report"
    data = [a for test in ("l2cs", "rit", "dfer") for a in ("--data", runs[test]["data"])]
    outcome = run_nia("report", *results.values(), "--out", out, *data)
    report = json.loads((out / "report.json").read_text())
    assert all(e["consistent"] and e["data_check"]["checked"] for e in report["tests"]), [
        e["problems"] for e in report["tests"]]
    assert {e["test"]: e["verdict"] for e in report["tests"]} == {"l2cs": "FAIL", "rit": "FAIL", "dfer": "FAIL"}
    assert outcome.code == 1
