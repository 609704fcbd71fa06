"""metrics.json / per_sample.csv, verdict line, exit codes, entry-point wrapper, provenance."""
import json
import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
import pytest

from common.cli.entry import run_entry_point
from common.verdicts import provenance
from common.verdicts.provenance import collect_provenance, sha256_file
from common.verdicts.results import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_PASS,
    RunError,
    clear_results,
    exit_code_for,
    verdict_line,
    write_results,
)
from common.verdicts.thresholds import SKIP_REASONS, skip_kind, skips_by_kind
from tests.paths import REPO

GAZE_ROWS = pd.DataFrame({
    "name": ["a_eyes", "b_eyes"], "subject": ["001", "002"], "inst": ["S", "T"],
    "pred_pitch": [0.0, 0.0], "pred_yaw": [0.0, 0.0], "true_pitch": [0.0, 0.0], "true_yaw": [4.0, 6.0],
    "error_deg": [4.0, 6.0],
})


def _write(tmp_path, value=5.0, **kwargs):
    args = dict(test="l2cs", metric="mean_angular_error_deg", value=value, per_sample=GAZE_ROWS,
                n_skipped=1, skipped={"unreadable_image": 1}, ci95=(4.0, 6.0),
                provenance={"code_version": "test"}, n_in_split=3)
    args.update(kwargs)
    return write_results(tmp_path, **args)


def test_passing_result_files_and_line(tmp_path):
    result = _write(tmp_path, 5.0)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("test", "metric", "value", "threshold", "passed", "n_samples", "n_skipped", "ci95", "official"):
        assert on_disk[key] == result[key]
    assert on_disk["passed"] is True and on_disk["n_samples"] == 2 and on_disk["official"] == 4.6
    assert on_disk["per_sample_sha256"] == sha256_file(tmp_path / "per_sample.csv")
    assert "end_time" in on_disk["provenance"]
    assert pd.read_csv(tmp_path / "per_sample.csv", dtype={"subject": str}).equals(GAZE_ROWS)
    assert exit_code_for(result) == EXIT_PASS
    assert verdict_line(result) == (
        "l2cs: mean angular error 5.00 deg <= 10 deg -> PASS (n=2, skipped 1, 95% CI 4.00 deg to 6.00 deg)"
    )


def test_failing_result_exits_1(tmp_path):
    result = _write(tmp_path, 12.5, ci95=None)
    assert result["passed"] is False and exit_code_for(result) == EXIT_FAIL
    assert verdict_line(result) == "l2cs: mean angular error 12.50 deg > 10 deg -> FAIL (n=2, skipped 1)"
    assert exit_code_for({}) == EXIT_ERROR


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"metric": "mae"}, ValueError, "expected 'mean_angular_error_deg'"),
        ({"n_skipped": 3}, ValueError, "sums to 1"),
        ({"n_in_split": 4}, ValueError, "2 scored \\+ 1 skipped = 3 samples; the split has 4"),
        ({"skipped": {"lost": 1}}, ValueError, "skip reason 'lost' is not in common.verdicts.thresholds.SKIP_REASONS"),
        ({"per_sample": pd.concat([GAZE_ROWS, GAZE_ROWS.iloc[[0]]]), "n_in_split": 4}, ValueError,
         "per_sample name 'a_eyes' occurs 2 times"),
        ({"per_sample": GAZE_ROWS.drop(columns=["error_deg"])}, ValueError, "lacks columns error_deg"),
        ({"value": float("nan")}, RunError, "no sample could be scored"),
        ({"test": "dfer", "metric": "war", "value": 71.3}, ValueError, "expected a fraction"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        _write(tmp_path, **{"value": 5.0, **kwargs})


def _exit_of(fn):
    with pytest.raises(SystemExit) as info:
        run_entry_point(fn)
    return info.value.code


def test_entry_point_exit_codes(tmp_path, capsys):
    assert _exit_of(lambda: _write(tmp_path, 5.0)) == EXIT_PASS
    assert "-> PASS" in capsys.readouterr().out
    assert _exit_of(lambda: _write(tmp_path, 50.0)) == EXIT_FAIL

    def missing():
        open(tmp_path / "nope.parquet")

    assert _exit_of(missing) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.parquet" in err and err.count("\n") == 1

    def crash():
        raise ZeroDivisionError("boom\nsecond line")

    assert _exit_of(crash) == EXIT_ERROR  # a crash is "could not run", never FAIL (1)
    assert capsys.readouterr().err == (
        "error: internal error: ZeroDivisionError: boom second line (NIA_DEBUG=1 shows the traceback)\n"
    )


def test_click_entry_point_bad_input_exits_2(capsys):
    @click.command()
    @click.option("--n", type=int, required=True)
    def cmd(n):
        raise click.ClickException(f"bad n {n}")

    sys_argv = sys.argv
    sys.argv = ["prog", "--n", "3"]
    try:
        assert _exit_of(cmd) == EXIT_ERROR
    finally:
        sys.argv = sys_argv
    assert capsys.readouterr().err == "error: bad n 3\n"


def test_provenance_hashes_versions_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NIA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NIA_CODE_VERSION", "v9-test")
    manifest = tmp_path / "manifest.parquet"
    manifest.write_bytes(b"abc")
    info = collect_provenance(manifest_path=manifest, extra={"gaze_method": "geometric"})
    # SHA-256 of b"abc" (FIPS 180-2 test vector)
    assert info["manifest_sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert info["code_version"] == "v9-test" and info["gaze_method"] == "geometric"
    assert info["weights_sha256"] is None and info["device_name"]
    assert set(info["libraries"]) >= {"python", "torch", "torchvision", "cv2", "numpy", "pandas", "pyarrow"}
    assert info["start_time"].endswith("+00:00")
    assert (tmp_path / "cache" / "sha256.json").is_file()


def test_sha256_cache_is_keyed_by_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("NIA_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    first = sha256_file(path)
    path.write_bytes(b"abcd")  # new size -> new key -> hashed again
    assert sha256_file(path) != first
    provenance._memory_cache.clear()
    assert sha256_file(path) == sha256_file(path)  # served from the disk cache


def test_code_version_falls_back_to_git_or_package(monkeypatch):
    monkeypatch.delenv("NIA_CODE_VERSION", raising=False)
    version = provenance.code_version()
    git = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                         cwd=provenance.Path(provenance.__file__).parents[1])
    assert version == (git.stdout.strip() if git.returncode == 0 else provenance.__version__)


def test_one_subject_gives_no_interval_and_says_why(tmp_path: Path) -> None:
    from common.metrics.bootstrap import mean_ci

    per_sample = pd.DataFrame({"name": ["a", "b"], "subject": ["001", "001"], "inst": ["S", "S"],
                               "pred_pitch": [0.0, 0.0], "pred_yaw": [0.0, 0.0], "true_pitch": [1.0, 2.0],
                               "true_yaw": [0.0, 0.0], "error_deg": [1.0, 2.0]})
    result = write_results(tmp_path, test="l2cs", metric="mean_angular_error_deg", value=1.5,
                           per_sample=per_sample, n_skipped=0, skipped={}, n_in_split=2,
                           ci95=mean_ci(per_sample["error_deg"], per_sample["subject"]), provenance={})
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["ci95"] is None and result["n_subjects"] == 1
    assert saved["ci95_note"] == "no interval: fewer than 2 subjects in the scored split"


def test_skip_reasons_are_the_data_s_or_the_submission_s() -> None:
    assert skip_kind("unreadable_image") == "data" and skip_kind("missing_prediction") == "submission"
    submission = ("duplicated_prediction", "nonfinite_prediction", "nonfinite_output")
    assert {skip_kind(r) for r in submission} == {"submission"}
    assert {skip_kind(r) for r in ("no_gaze_label", "invalid_label", "missing_image", "missing_crop")} == {"data"}
    assert set(SKIP_REASONS) >= {"missing_prediction", "nonfinite_output", "unreadable_image"}
    assert skips_by_kind({"missing_image": 2, "missing_prediction": 3, "nonfinite_output": 1}) == {
        "data": 2, "submission": 4}
    with pytest.raises(ValueError, match="skip reason 'extra_prediction'"):
        skip_kind("extra_prediction")  # a prediction for no sample of the split skips no sample


def test_counts_by_kind_and_run_id_are_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("NIA_RUN_ID", "make-20240501-1")
    _write(tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert (saved["n_samples"], saved["n_skipped"], saved["n_in_split"]) == (2, 1, 3)
    assert saved["skipped_by_kind"] == {"data": 1, "submission": 0}
    assert saved["run_id"] == "make-20240501-1" and saved["verdict"] == "PASS" and saved["error"] is None
    monkeypatch.delenv("NIA_RUN_ID")
    first, second = _write(tmp_path / "a")["run_id"], _write(tmp_path / "b")["run_id"]
    assert len(first) == 32 and first != second  # a fresh id per run


def test_a_submission_skip_gives_no_verdict_even_when_the_value_passes(tmp_path, capsys):
    result = _write(tmp_path, 5.0, skipped={"missing_prediction": 1})
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["verdict"] == "ERROR" and saved["passed"] is None and saved["value"] is None
    assert saved["ci95"] is None and saved["skipped_by_kind"] == {"data": 0, "submission": 1}
    assert exit_code_for(result) == EXIT_ERROR
    assert saved["error"] == verdict_line(result) == (
        "l2cs: no verdict: 1 of the 3 samples were not scored because of the submission (missing_prediction 1); "
        "--allow-partial gives a partial score (n=2, skipped 1)")
    assert _exit_of(lambda: _write(tmp_path, 5.0, skipped={"missing_prediction": 1})) == EXIT_ERROR
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"error: {saved['error']}\n"


def test_allow_partial_labels_the_score_partial(tmp_path, capsys):
    mixed = {"unreadable_image": 1, "duplicated_prediction": 1}
    per_sample = GAZE_ROWS.iloc[:1]
    result = _write(tmp_path, 4.0, per_sample=per_sample, n_skipped=2, skipped=mixed, allow_partial=True)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["verdict"] == "PARTIAL" and saved["passed"] is None and saved["value"] == 4.0
    assert saved["skipped_by_kind"] == {"data": 1, "submission": 1} and exit_code_for(result) == EXIT_ERROR
    assert verdict_line(result) == (
        "l2cs: mean angular error 4.00 deg on 1 of 3 samples (threshold <= 10 deg) -> PARTIAL, no verdict "
        "(n=1, skipped 2: data 1, submission 1 [duplicated_prediction 1], 95% CI 4.00 deg to 6.00 deg)")
    assert _exit_of(lambda: _write(tmp_path, 4.0, per_sample=per_sample, n_skipped=2, skipped=mixed,
                                   allow_partial=True)) == EXIT_ERROR
    assert "-> PARTIAL" in capsys.readouterr().out
    # without submission skips, --allow-partial changes nothing
    assert _write(tmp_path, 5.0, allow_partial=True)["verdict"] == "PASS"


def test_clear_results_removes_only_what_a_run_writes(tmp_path):
    _write(tmp_path)
    (tmp_path / "overlays").mkdir()
    (tmp_path / "overlays" / "s0.png").write_bytes(b"png")
    (tmp_path / "prepared").mkdir()
    (tmp_path / "own.txt").write_text("keep")
    clear_results(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["own.txt", "prepared"]
    clear_results(tmp_path / "not_yet")  # nothing to clear: no error, nothing made
    assert not (tmp_path / "not_yet").exists()


def test_results_page_names_every_skip_reason_under_its_kind() -> None:
    """docs/results.md's coverage rule lists the data's and the submission's reasons; a new reason must be added there."""
    page = (REPO / "docs" / "results.md").read_text()
    rule = page[page.index("**Coverage rule (every test).**"):]
    data_part, submission_part = rule.split("or the **submission's**", 1)
    for reason, (kind, _meaning) in SKIP_REASONS.items():
        assert f"`{reason}`" in (data_part if kind == "data" else submission_part.split("the list lives")[0]), reason
