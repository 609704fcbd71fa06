"""dfer/valid_nia.py: a model run end to end, WAR/UAR/recall/confusion matrix, PASS/FAIL at 70 %,
score-only keys, missing and duplicated predictions (no verdict), the data's own skips, and the report."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.cli import main as nia
from common.cli.prepared_input import resolve_clips
from common.targets.clip_index import CLIP_INDEX_NAME
from common.verdicts.results import RunError
from dfer.train import main as train
from dfer.valid_nia import cli, state_metrics
from tests.click_runner import separate_streams_runner
from tests.dfer_fakes import STATES, FakeClip, balanced_clips, clip_name, write_clip_set
from tests.models.dfer.test_dfer_train import tiny

TEST_CLIPS = balanced_clips({"test": 10}, subjects_per_split=3, first_subject=20)
UNUSABLE = [FakeClip(clip_name(50, 1, "D"), "test", "D", "050", reason="unreadable"),
            FakeClip(clip_name(50, 2, "S"), "test", "S", "050", reason="too_short")]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    train_val = balanced_clips({"train": 40, "val": 10})
    return write_clip_set(tmp_path_factory.mktemp("dfer_valid"), train_val + TEST_CLIPS + UNUSABLE)


@pytest.fixture(scope="module")
def weights(clips: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dfer_weights")
    train(clips, out, tiny(5), device_name="cpu", pretrained=None, resume=False)
    return out / "best.pt"


def predictions(path: Path, rows: list[tuple[str, str]]) -> Path:
    pd.DataFrame(rows, columns=["name", "label"]).to_csv(path, index=False)
    return path


@pytest.mark.slow  # its `weights` fixture trains 5 epochs (44 s of the loaded fast tier)
def test_a_model_run_scores_every_usable_clip_and_counts_the_others(clips: Path, weights: Path, tmp_path: Path):
    out = tmp_path / "res"
    result = cli.main(["--data", str(clips), "--weights", str(weights), "--out", str(out), "--workers", "0",
                       "--device", "cpu"], standalone_mode=False)
    per_sample = pd.read_csv(out / "per_sample.csv", dtype=str)
    assert list(per_sample.columns) == ["name", "subject", "inst", "pred", "truth"]
    assert sorted(per_sample["name"]) == sorted(c.clip_id for c in TEST_CLIPS)
    assert result["n_in_split"] == 12 and result["skipped"] == {"unreadable_video": 1, "too_short_video": 1}
    assert result["skipped_by_kind"] == {"data": 2, "submission": 0} and result["verdict"] in ("PASS", "FAIL")
    war = float((per_sample["pred"] == per_sample["truth"]).mean())
    assert result["value"] == pytest.approx(war)
    extra = result["extra"]
    matrix = np.array(extra["confusion_matrix"])
    assert matrix.sum() == 10 and np.trace(matrix) == round(war * 10) and extra["classes"] == list(STATES)
    assert result["provenance"]["model"]["weights_format"] == "nia-dfer/1"


def test_state_metrics_by_hand() -> None:
    per_sample = pd.DataFrame({"pred": ["F", "F", "S", "D", "D", "N"], "truth": ["F", "S", "S", "D", "A", "A"]})
    metrics = state_metrics(per_sample)
    # recall: F 1/1, S 1/2, D 1/1, A 0/2, N absent -> UAR = (1 + 0.5 + 1 + 0) / 4
    assert metrics["recall_per_class"] == {"F": 1.0, "S": 0.5, "D": 1.0, "A": 0.0, "N": None}
    assert metrics["uar"] == pytest.approx(0.625)
    assert metrics["confusion_matrix"][3] == [0, 0, 1, 0, 1]  # truth A: one predicted D, one N


def test_pass_at_70_percent_and_fail_below(clips: Path, tmp_path: Path) -> None:
    """Score-only with 7 (then 6) of 10 right: WAR 70 % passes (>=), 60 % fails; keys as X.mp4 and paths."""
    def answers(right: int) -> list[tuple[str, str]]:
        wrong = {s: STATES[(i + 1) % 5] for i, s in enumerate(STATES)}
        return [(f"some/dir/{c.clip_id}.mp4" if k % 2 else c.clip_id, c.state if k < right else wrong[c.state])
                for k, c in enumerate(TEST_CLIPS)]
    passing = metrics_of_run(clips, predictions(tmp_path / "p7.csv", answers(7)), tmp_path / "r7")
    assert (passing["verdict"], passing["value"], passing["n_samples"]) == ("PASS", pytest.approx(0.7), 10)
    failing = metrics_of_run(clips, predictions(tmp_path / "p6.csv", answers(6)), tmp_path / "r6")
    assert (failing["verdict"], failing["value"]) == ("FAIL", pytest.approx(0.6))


def metrics_of_run(clips: Path, csv_path: Path, out: Path, *extra: str) -> dict:
    return cli.main(["--data", str(clips), "--predictions", str(csv_path), "--out", str(out), *extra],
                    standalone_mode=False)


def test_missing_or_duplicated_predictions_give_no_verdict(clips: Path, tmp_path: Path) -> None:
    rows = [(c.clip_id, c.state) for c in TEST_CLIPS]
    missing = metrics_of_run(clips, predictions(tmp_path / "m.csv", rows[1:]), tmp_path / "m")
    assert missing["verdict"] == "ERROR" and missing["value"] is None and missing["passed"] is None
    assert missing["skipped"]["missing_prediction"] == 1
    twice = rows + [(f"{TEST_CLIPS[0].clip_id}.mp4", "N")]  # the same clip under a second key
    duplicated = metrics_of_run(clips, predictions(tmp_path / "d.csv", twice), tmp_path / "d")
    assert duplicated["verdict"] == "ERROR" and duplicated["skipped"]["duplicated_prediction"] == 1
    partial = metrics_of_run(clips, predictions(tmp_path / "m2.csv", rows[1:]), tmp_path / "p", "--allow-partial")
    assert partial["verdict"] == "PARTIAL" and partial["value"] == pytest.approx(1.0) and partial["passed"] is None


def test_exit_codes_and_bad_labels(clips: Path, tmp_path: Path) -> None:
    from common.cli.entry import run_entry_point

    rows = [(c.clip_id, c.state) for c in TEST_CLIPS]
    for csv_rows, code in ((rows, 0), (rows[1:], 2), ([(rows[0][0], "X")] + rows[1:], 2)):
        path = predictions(tmp_path / "x.csv", csv_rows)
        with pytest.raises(SystemExit) as exited:
            run_entry_point(lambda: cli.main(["--data", str(clips), "--predictions", str(path), "--out",
                                              str(tmp_path / "x")], standalone_mode=False))
        assert exited.value.code == code
    assert not (tmp_path / "x" / "metrics.json").exists()  # the bad label left no verdict behind


def test_the_report_files_the_confusion_matrix(clips: Path, tmp_path: Path) -> None:
    rows = [(c.clip_id, c.state if k else "N") for k, c in enumerate(TEST_CLIPS)]  # the first (F) wrong
    metrics_of_run(clips, predictions(tmp_path / "p.csv", rows), tmp_path / "res")
    result = separate_streams_runner().invoke(nia, ["report", str(tmp_path / "res"), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    details = report["tests"][0]["details"]
    assert details["classes"] == list(STATES) and details["recomputed_value"] == pytest.approx(0.9)
    assert (tmp_path / "rep" / "report.html").read_text().count("<img") >= 2  # confusion matrix + recall bars


def test_resolve_clips_takes_a_clip_folder_and_refuses_a_root_without_videos(clips: Path, tmp_path: Path) -> None:
    assert resolve_clips(clips, tmp_path / "work") == clips
    with pytest.raises(RunError, match="no such file or folder"):
        resolve_clips(tmp_path / "absent", tmp_path / "work")


def test_region_sensitivity_runs_the_model_on_each_region_and_the_report_scores_them(clips: Path, weights: Path,
                                                                                   tmp_path: Path) -> None:
    from common.targets.clip_labels import fixed_region
    from common.report.sensitivity import REGION_PREFIX
    from dfer.regions import VARIANTS
    from tests.dfer_fakes import HEIGHT, WIDTH

    plain, out = tmp_path / "plain", tmp_path / "regions"
    cli.main(["--data", str(clips), "--weights", str(weights), "--out", str(plain), "--workers", "0",
              "--device", "cpu"], standalone_mode=False)
    result = cli.main(["--data", str(clips), "--weights", str(weights), "--out", str(out), "--workers", "0",
                       "--device", "cpu", "--region-sensitivity"], standalone_mode=False)
    per_sample = pd.read_csv(out / "per_sample.csv", dtype=str, keep_default_na=False)
    assert list(per_sample.columns) == ["name", "subject", "inst", "pred", "truth",
                                        *(REGION_PREFIX + v for v in VARIANTS)]
    # the test's own predictions do not change; `fixed` predicts what a clip set indexed with that region gives
    assert per_sample["pred"].tolist() == pd.read_csv(plain / "per_sample.csv", dtype=str)["pred"].tolist()
    centred = write_clip_set(tmp_path / "centred", TEST_CLIPS + UNUSABLE, region=fixed_region(WIDTH, HEIGHT))
    cli.main(["--data", str(centred), "--weights", str(weights), "--out", str(tmp_path / "centred_run"),
              "--workers", "0", "--device", "cpu"], standalone_mode=False)
    expected = pd.read_csv(tmp_path / "centred_run" / "per_sample.csv", dtype=str)["pred"].tolist()
    assert per_sample[REGION_PREFIX + "fixed"].tolist() == expected
    # and that is another input than the test's own: the centred set's regions differ from the indexed ones (the
    # predictions may not: a tiny model trained on another CPU can give one class for every crop)
    box = ["x0", "y0", "x1", "y1"]
    indexed, moved = (pd.read_parquet(f / CLIP_INDEX_NAME).set_index("clip_id")[box] for f in (clips, centred))
    assert len(moved) == len(TEST_CLIPS + UNUSABLE)
    assert (indexed.loc[moved.index].to_numpy() != moved.to_numpy()).any(axis=1).all()
    assert result["provenance"]["model"]["region_variants"] == list(VARIANTS)
    run = separate_streams_runner().invoke(nia, ["report", str(out), "--out", str(tmp_path / "r")])
    assert run.exit_code in (0, 1), run.stdout + run.stderr
    entry = json.loads((tmp_path / "r" / "report.json").read_text())["tests"][0]
    assert entry["consistent"], entry["problems"]          # the extra columns are no problem of the folder
    rows = entry["sensitivity"]["rows"]
    assert [r["method"] for r in rows] == ["as indexed", *VARIANTS] and all(r["n"] == 10 for r in rows)
    assert rows[0]["value"] == pytest.approx(result["value"])


def test_region_sensitivity_needs_a_model(clips: Path, tmp_path: Path) -> None:
    csv = predictions(tmp_path / "p.csv", [(c.clip_id, c.state) for c in TEST_CLIPS])
    run = separate_streams_runner().invoke(cli, ["--data", str(clips), "--predictions", str(csv), "--out",
                                                 str(tmp_path / "o"), "--region-sensitivity"])
    assert run.exit_code == 2 and "--region-sensitivity runs the model" in run.stderr
