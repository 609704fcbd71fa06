"""A stand-in `docker` on PATH for the Makefile's recipes, and the l2cs PASS result it files.

The tests run `make validate-*` and `make load` for real with this script in
place of docker, so what is tested is the recipe itself, not its text.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from common.verdicts.results import write_results

REPO = Path(__file__).resolve().parents[1]

# Every call is logged to FAKE_LOG. With FAKE_MODE=noimage no image is
# there (`docker image inspect` exits 1). `docker run` with FAKE_MODE=crash
# exits 2 and writes nothing (a run that could not start, or was killed); with
# FAKE_MODE=fail it writes FAKE_RESULT_FAIL's FAIL and exits 1; otherwise
# it writes FAKE_RESULT's PASS into the folder mounted on /results, as the
# container would, with the run id it was given, and prints its verdict line.
FAKE_DOCKER = """\
import json, os, shutil, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if args[:2] == ["image", "inspect"] and os.environ.get("FAKE_MODE") == "noimage":
    sys.exit(1)
if args[:1] != ["run"]:
    sys.exit(0)
results = next(a.split(":")[0] for a in args if a.endswith(":/results"))
run_id = next((a.split("=", 1)[1] for a in args if a.startswith("NIA_RUN_ID=")), None)
if os.environ.get("FAKE_MODE") == "crash":
    sys.exit(2)
failed = os.environ.get("FAKE_MODE") == "fail"
source = os.environ["FAKE_RESULT_FAIL" if failed else "FAKE_RESULT"]
shutil.copy(os.path.join(source, "per_sample.csv"), results)
metrics = json.load(open(os.path.join(source, "metrics.json")))
metrics["run_id"] = run_id
json.dump(metrics, open(os.path.join(results, "metrics.json"), "w"))
from common.verdicts.results import verdict_line
print(verdict_line(metrics))
sys.exit(1 if failed else 0)
"""


def passing_l2cs_result(folder: Path, run_id: str | None = None, errors: tuple[float, float] = (4.0, 6.0)) -> None:
    """A two-crop l2cs result of 5 deg (PASS; other ``errors``, other values) in FOLDER, written as the
    validation writes it."""
    per_sample = pd.DataFrame({"name": ["a_eyes", "b_eyes"], "subject": ["001", "002"], "inst": ["S", "T"],
                               "pred_pitch": [0.0, 0.0], "pred_yaw": [0.0, 0.0], "true_pitch": [0.0, 0.0],
                               "true_yaw": list(errors), "error_deg": list(errors)})
    if run_id:
        os.environ["NIA_RUN_ID"] = run_id
    try:
        write_results(folder, test="l2cs", metric="mean_angular_error_deg", value=sum(errors) / 2,
                      per_sample=per_sample, n_skipped=0, skipped={}, ci95=None, provenance={}, n_in_split=2)
    finally:
        if run_id:
            del os.environ["NIA_RUN_ID"]


def fake_docker_env(tmp_path: Path) -> dict[str, str]:
    """The environment for `make` with the stand-in docker first on PATH, logging to TMP/log and filing the
    PASS result in TMP/source (FAKE_MODE=fail: the FAIL in TMP/source_fail); skips the test where `make` is
    not installed."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f"#!{sys.executable}\n{FAKE_DOCKER}")
    docker.chmod(0o755)
    passing_l2cs_result(tmp_path / "source")
    passing_l2cs_result(tmp_path / "source_fail", errors=(11.0, 13.0))  # 12 deg: a FAIL
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "log"),
            "FAKE_RESULT": str(tmp_path / "source"), "FAKE_RESULT_FAIL": str(tmp_path / "source_fail"),
            "PYTHONPATH": str(REPO),
            "NIA_CACHE_DIR": str(tmp_path / "cache")}


def run_make_validate(tmp_path: Path, env: dict[str, str], *extra: str,
                      command: tuple[str, ...] = ("make", "--no-print-directory", "validate-l2cs")
                      ) -> subprocess.CompletedProcess:
    """`make validate-l2cs` (or `command`) on TMP/data with TMP/w/l2cs.pt into TMP/res, BUILD=TMP/build, the
    image build assumed done (`-o build-l2cs`); ``extra`` make arguments come last and so win."""
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "w").mkdir(exist_ok=True)
    (tmp_path / "w" / "l2cs.pt").write_bytes(b"weights")
    return subprocess.run(
        [*command, "-o", "build-l2cs", f"DATA={tmp_path / 'data'}", f"WEIGHTS={tmp_path / 'w' / 'l2cs.pt'}",
         f"RESULTS={tmp_path / 'res'}", "GPU_FLAGS=", f"NIA={sys.executable} -m common", f"BUILD={tmp_path / 'build'}",
         *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def run_make_validate_all(tmp_path: Path, env: dict[str, str], *args: str,
                          command: tuple[str, ...] = ("make", "--no-print-directory", "validate-all")
                          ) -> subprocess.CompletedProcess:
    """`make validate-all` (or `command`) as :func:`run_make_validate` runs validate-l2cs: WEIGHTS_DIR=TMP/w."""
    return run_make_validate(tmp_path, env, "-o", ".venv/.installed", *args, "WEIGHTS=", "RESULTS=",
                             f"WEIGHTS_DIR={tmp_path / 'w'}", command=command)
