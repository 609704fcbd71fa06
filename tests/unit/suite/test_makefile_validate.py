"""The Makefile's validate step (docker_validate) files only the results of the run it just made.

`make validate-l2cs` runs for real here, with a stand-in `docker` on PATH (the
image build is assumed done: `make -o build-l2cs`) and `nia report` from this
checkout, so what is tested is the recipe itself, not its text.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fake_docker import fake_docker_env, run_make_validate


@pytest.fixture()
def make_validate(tmp_path: Path):
    fake_env = fake_docker_env(tmp_path)

    def run(mode: str, command: tuple[str, ...] = ("make", "--no-print-directory", "validate-l2cs"),
            *extra: str) -> subprocess.CompletedProcess:
        return run_make_validate(tmp_path, {**fake_env, "FAKE_MODE": mode}, *extra, command=command)

    return run


def test_a_failed_run_files_no_old_verdict(make_validate, tmp_path: Path) -> None:
    """Issue 10 case 3: the report step used to file the previous run's PASS after a run that exited 2."""
    first = make_validate("pass")
    assert first.returncode == 0, first.stderr
    report = json.loads((tmp_path / "res" / "report" / "report.json").read_text())
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert report["overall_verdict"] == "PASS" and metrics["run_id"]
    second = make_validate("crash")
    assert second.returncode != 0
    assert not (tmp_path / "res" / "metrics.json").exists() and not (tmp_path / "res" / "per_sample.csv").exists()
    assert not (tmp_path / "res" / "report").exists()


def test_each_run_gets_its_own_id_and_the_report_checks_it(make_validate, tmp_path: Path) -> None:
    ids = []
    for _ in range(2):
        done = make_validate("pass")
        assert done.returncode == 0, done.stderr
        ids.append(json.loads((tmp_path / "res" / "metrics.json").read_text())["run_id"])
        assert f"--run-id {ids[-1]}" in done.stdout
    assert ids[0] and ids[0] != ids[1]


@pytest.mark.slow
def test_scripts_validate_gives_the_verdict_s_exit_code_where_make_gives_2(make_validate, tmp_path: Path) -> None:
    """Issue 19 item 3: GNU make exits 2 whenever a recipe fails, a FAIL included; scripts/validate exits with
    the container's 0 PASS / 1 FAIL / 2 no verdict, which the recipe writes to EXIT_FILE."""
    failed = make_validate("fail")
    assert failed.returncode == 2  # make's own rule: any failed recipe
    assert json.loads((tmp_path / "res" / "report" / "report.json").read_text())["overall_verdict"] == "FAIL"
    script = ("scripts/validate", "l2cs")
    assert make_validate("fail", script).returncode == 1
    assert make_validate("pass", script).returncode == 0
    assert make_validate("crash", script).returncode == 2
    not_run = make_validate("pass", script, "l2cs_ENTRY=l2cs/not_landed.py")
    assert not_run.returncode == 2, not_run.stderr  # make stopped before the container: no code, no verdict
