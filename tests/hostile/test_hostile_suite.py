"""The suite's own runs (tests/hostile_corpus.py, SUITE_RUNS): `make validate-*` with a stand-in docker, the
verdict table's reasons and exit code, the CPU fallback warning. Each says in one plain line what happened:
no registry pull, no mount point created as root, no verdict printed twice, no warning's source line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.suite.table import read_outcomes, verdict_table
from tests.fake_docker import REPO, fake_docker_env, passing_l2cs_result, run_make_validate, run_make_validate_all
from tests.hostile_corpus import SUITE_RUNS, Case, by_id
from tests.hostile_env import assert_one_error, run_nia

CASE = by_id(SUITE_RUNS)


@pytest.fixture()
def fake_env(tmp_path: Path) -> dict[str, str]:
    return fake_docker_env(tmp_path)


def the_line(text: str, case: Case, file: str = "") -> str:
    """The one line of ``text`` that holds every part of the case's line."""
    lines = [line for line in text.splitlines() if all(part in line for part in case.expected(file))]
    assert len(lines) == 1, (case.id, text[-3000:])
    return lines[0]


def docker_runs(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_LOG"])
    return [line for line in log.read_text().splitlines() if line.startswith("run ")] if log.exists() else []


def test_a_missing_image_is_named_and_never_pulled(tmp_path: Path, fake_env) -> None:
    case = CASE["suite_image_missing"]
    done = run_make_validate(tmp_path, {**fake_env, "FAKE_MODE": "noimage"})
    assert done.returncode == case.code
    the_line(done.stderr, case)
    assert docker_runs(fake_env) == []          # docker run would have tried a registry


@pytest.mark.parametrize("case_id, variable", [("suite_data_missing", "DATA"), ("suite_weights_missing", "WEIGHTS")])
def test_a_missing_input_is_named_and_no_mount_point_is_made(tmp_path: Path, fake_env, case_id: str,
                                                            variable: str) -> None:
    case = CASE[case_id]
    absent = tmp_path / "absent" / "l2cs.pt"
    done = run_make_validate(tmp_path, fake_env, f"{variable}={absent}")
    assert done.returncode == case.code
    the_line(done.stderr, case, str(absent))
    assert docker_runs(fake_env) == [] and not absent.parent.exists()   # dockerd creates a missing mount as root


def test_the_verdict_is_printed_once_and_docker_never_pulls(tmp_path: Path, fake_env) -> None:
    case = CASE["suite_verdict_once"]
    done = run_make_validate(tmp_path, fake_env)
    assert done.returncode == case.code, done.stderr
    the_line(done.stdout + done.stderr, case)   # the container's line; the report's copy is not printed
    assert "report: " in done.stdout
    (run,) = docker_runs(fake_env)
    assert run.startswith("run --pull never ")


def test_the_cpu_fallback_warning_is_one_plain_line() -> None:
    """Python's format printed `FILE:LINE: RuntimeWarning: ...` and then the source line `device = pick_device(...)`."""
    case = CASE["suite_cpu_fallback_warning"]
    code = ("import torch; torch.cuda.is_available = lambda: False\n"
            "from common.cli.entry import run_entry_point\n"
            "from common.engine.device import pick_device\n"
            "def main():\n"
            "    device = pick_device('cuda')\n"
            "run_entry_point(main)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), "NIA_DEBUG": ""})
    assert done.returncode == case.code, done.stderr
    assert done.stderr.splitlines() == [case.line[0]]


def test_a_run_that_died_after_a_warning_shows_why_not_the_warning_s_source(tmp_path: Path) -> None:
    case = CASE["suite_reason_after_warning"]
    suite = tmp_path / ".suite"
    suite.mkdir()
    (suite / "l2cs.exit").write_text("2\n")
    (suite / "l2cs.stderr").write_text(
        "== validate-l2cs\n/app/common/engine/validate.py:91: RuntimeWarning: device 'cuda' requested but no CUDA "
        "GPU is visible: running on the CPU\n  device = pick_device(\"cpu\" if options.predictions is not None "
        "else options.device_name)\nmake[1]: *** [Makefile:270: validate-l2cs] Error 137\n")
    lines, code = verdict_table(["l2cs"], read_outcomes(suite, ["l2cs"]), None)
    assert code == case.code
    the_line(lines[1], case)
    assert "pick_device" not in lines[1] and "Warning" not in lines[1]


def test_a_garbage_exit_file_is_named(tmp_path: Path) -> None:
    case = CASE["suite_exit_file_garbage"]
    (tmp_path / ".suite").mkdir()
    exit_file = tmp_path / ".suite" / "l2cs.exit"
    exit_file.write_bytes("garbage\n".encode("utf-16"))
    outcome = run_nia("suite", "table", tmp_path, "--tests", "l2cs")
    assert outcome.code == case.code and "Traceback" not in outcome.err and "internal error" not in outcome.err
    the_line(outcome.out, case, str(exit_file))


@pytest.mark.slow
def test_validate_all_s_code_of_a_fail_is_in_its_table_its_exit_file_and_scripts_validate(tmp_path: Path,
                                                                                         fake_env) -> None:
    """Issue 19 item 3: make turns the suite's 1 (a FAIL) into its own 2; the table's last line, .suite/exit
    and scripts/validate keep the 1."""
    case = CASE["suite_fail_exit_code"]
    env = {**fake_env, "FAKE_MODE": "fail"}
    done = run_make_validate_all(tmp_path, env, "TESTS=l2cs")
    assert done.returncode == 2, done.stderr  # GNU make: a failed recipe is 2
    assert the_line(done.stdout, case) == done.stdout.splitlines()[-2]
    suite_dir = tmp_path / "build" / "results" / ".suite"
    assert (suite_dir / "exit").read_text() == "1\n" and (suite_dir / "l2cs.exit").read_text() == "1\n"
    script = ("scripts/validate", "all")
    assert run_make_validate_all(tmp_path, env, "TESTS=l2cs", command=script).returncode == case.code
    assert run_make_validate_all(tmp_path, fake_env, "TESTS=l2cs", command=script).returncode == 0


@pytest.mark.parametrize("case_id", ["report_metrics_utf16", "report_metrics_empty", "report_metrics_array",
                                     "report_per_sample_utf16", "report_per_sample_empty"])
def test_nia_report_names_a_result_file_it_cannot_read(tmp_path: Path, case_id: str) -> None:
    case = CASE[case_id]
    results = tmp_path / "res"
    passing_l2cs_result(results)
    file = results / ("metrics.json" if "metrics" in case_id else "per_sample.csv")
    if case_id.endswith("utf16"):
        file.write_bytes(file.read_text(encoding="utf-8").encode("utf-16"))
    elif case_id.endswith("empty"):
        file.write_bytes(b"")
    else:
        file.write_text("[1, 2]")
    outcome = run_nia("report", results, "--out", tmp_path / "report")
    assert_one_error(outcome, case.code, *case.expected(str(file)))
