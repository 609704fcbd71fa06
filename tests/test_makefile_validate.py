"""The Makefile's validate step (docker_validate) files only the results of the run it just made.

`make validate-l2cs` runs for real here, with a stand-in `docker` on PATH (the
image build is assumed done: `make -o build-l2cs`) and `nia report` from this
checkout, so what is tested is the recipe itself, not its text.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from common.verdicts.results import write_results

REPO = Path(__file__).resolve().parents[1]

# Stands in for `docker run`: FAKE_MODE=crash exits 2 and writes nothing (a run
# that could not start, or was killed); FAKE_MODE=pass writes a PASS result
# into the folder mounted on /results, as the container would, with the run id
# it was given.
FAKE_DOCKER = """\
import json, os, shutil, sys
args = sys.argv[1:]
if args[:1] != ["run"]:
    sys.exit(0)
results = next(a.split(":")[0] for a in args if a.endswith(":/results"))
run_id = next((a.split("=", 1)[1] for a in args if a.startswith("NIA_RUN_ID=")), None)
if os.environ["FAKE_MODE"] == "crash":
    sys.exit(2)
source = os.environ["FAKE_RESULT"]
shutil.copy(os.path.join(source, "per_sample.csv"), results)
metrics = json.load(open(os.path.join(source, "metrics.json")))
metrics["run_id"] = run_id
json.dump(metrics, open(os.path.join(results, "metrics.json"), "w"))
"""


def _passing_result(folder: Path) -> None:
    per_sample = pd.DataFrame({"name": ["a_eyes", "b_eyes"], "subject": ["001", "002"], "inst": ["S", "T"],
                               "pred_pitch": [0.0, 0.0], "pred_yaw": [0.0, 0.0], "true_pitch": [0.0, 0.0],
                               "true_yaw": [4.0, 6.0], "error_deg": [4.0, 6.0]})
    write_results(folder, test="l2cs", metric="mean_angular_error_deg", value=5.0, per_sample=per_sample,
                  n_skipped=0, skipped={}, ci95=None, provenance={}, n_in_split=2)


@pytest.fixture()
def make_validate(tmp_path: Path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f"#!{sys.executable}\n{FAKE_DOCKER}")
    docker.chmod(0o755)
    (tmp_path / "data").mkdir()
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "l2cs.pt").write_bytes(b"weights")
    source = tmp_path / "source"
    _passing_result(source)

    def run(mode: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_MODE": mode,
               "FAKE_RESULT": str(source), "PYTHONPATH": str(REPO), "NIA_CACHE_DIR": str(tmp_path / "cache")}
        return subprocess.run(
            ["make", "--no-print-directory", "-o", "build-l2cs", "validate-l2cs", f"DATA={tmp_path / 'data'}",
             f"WEIGHTS={tmp_path / 'w' / 'l2cs.pt'}", f"RESULTS={tmp_path / 'res'}", "GPU_FLAGS=",
             f"NIA={sys.executable} -m common", f"BUILD={tmp_path / 'build'}"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)

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
