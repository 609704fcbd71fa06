"""The suite as auditors run it: compose's lockdown, the verdict
table, `make validate-all` / `make load` with a stand-in docker, `nia suite run` on a stand-in
Docker SDK client, and (with an engine and the l2cs image) on the real one."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.cli import suite_cmds
from common.suite import containers
from common.suite.specs import SUITE
from common.suite.table import Outcome, last_reason, verdict_table
from tests.click_runner import separate_streams_runner
from tests.fake_docker import fake_docker_env, passing_l2cs_result, run_make_validate_all
from tests.paths import REPO



def compose() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))


# ---- docker-compose.yml (that it names each test as the registry: tests/unit/suite/test_registry.py)

def test_compose_services_are_locked_down_with_gpus_and_paths_from_env() -> None:
    services = compose()["services"]
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    for service in services.values():
        assert service["network_mode"] == "none"
        assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"]
        assert service["read_only"] is True
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
        data, weights, results = service["volumes"]
        assert data.endswith(":/data:ro") and weights.endswith(":/weights:ro") and results.endswith(":/results")
        for mount in (data, weights, results):
            variable = re.match(r'\$\{(\w+):-', mount).group(1)  # a path from .env, with a demo default
            assert re.search(rf"^{variable}=", example, flags=re.MULTILINE), variable


def test_docker_compose_validates_the_file(tmp_path: Path) -> None:
    """`docker compose config` (or docker-compose's) accepts the file, with .env.example as .env."""
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                   capture_output=True).returncode == 0:
        command = ["docker", "compose"]
    else:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    done = subprocess.run([*command, "--project-directory", str(REPO), "--env-file", str(REPO / ".env.example"),
                           "--file", str(REPO / "docker-compose.yml"), "config"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{REPO}/build/synth_dfer:/data:ro" in done.stdout and "nia-base:bookworm-cuda" in done.stdout


# ---- the verdict table

def test_table_exit_codes_follow_the_suite_rule() -> None:
    passed = {"tests": [{"test": "l2cs", "verdict": "PASS", "value": 8.69, "consistent": True}]}
    failed = {"tests": [{"test": "l2cs", "verdict": "FAIL", "value": 12.5, "consistent": True, "ci95": [11.25, 13.5]}]}
    ok = {"l2cs": Outcome("l2cs", 0)}
    assert verdict_table(["l2cs"], ok, passed)[1] == 0
    assert verdict_table(["l2cs"], ok, failed)[1] == 1
    lines, code = verdict_table(["l2cs", "rit"], {**ok, "rit": Outcome("rit", 2, "ritnet/test.py not found: x")},
                                failed)
    assert code == 2  # no verdict outranks a FAIL
    assert [cell for cell in lines[0].split("  ") if cell] == ["test", "verdict", "value", "95% CI (subjects)",
                                                                "threshold", "official"]
    assert lines[1].split() == ["l2cs", "FAIL", "12.50", "deg", "11.25-13.50", "deg", "<=", "10", "deg", "4.6", "deg"]
    assert lines[2].split(maxsplit=3) == ["rit", "NO", "RESULT", "ritnet/test.py not found: x"]
    assert lines[-1] == "suite: a test has no verdict (exit 2)"
    assert verdict_table(["l2cs"], {}, None)[1] == 2
    assert verdict_table(["l2cs"], ok, passed)[0][1].split()[4] == "n/a"  # an entry without a CI says so


def test_last_reason_skips_makes_own_lines() -> None:
    stderr = "== validate-rit\nritnet/test.py not found: the rit entry point ...\nmake[1]: *** [Makefile:9: entry-rit] Error 2\n"
    assert last_reason(stderr) == "ritnet/test.py not found: the rit entry point ..."


# ---- make validate-all and make load, with a stand-in docker on PATH

@pytest.fixture()
def fake_docker(tmp_path: Path) -> dict[str, str]:
    return fake_docker_env(tmp_path)


def test_validate_all_runs_every_test_files_one_report_and_prints_the_table(tmp_path: Path, fake_docker) -> None:
    """rit first, with its entry point missing: the run goes on to l2cs, files its report, exits 2."""
    build = tmp_path / "build"
    done = run_make_validate_all(tmp_path, fake_docker, "TESTS=rit l2cs", "rit_ENTRY=ritnet/not_landed.py")
    assert done.returncode == 2, done.stderr
    table = done.stdout[done.stdout.index("test  verdict"):].splitlines()
    assert table[1].split()[:3] == ["rit", "NO", "RESULT"]
    assert "ritnet/not_landed.py not found: the rit entry point is not in this checkout yet" in table[1]
    assert table[2].split()[:4] == ["l2cs", "PASS", "5.00", "deg"]
    assert table[3] == "suite: a test has no verdict (exit 2)"
    report = json.loads((build / "results" / "report" / "report.json").read_text())
    assert [entry["test"] for entry in report["tests"]] == ["l2cs"] and report["overall_verdict"] == "PASS"
    runs = [line for line in Path(fake_docker["FAKE_LOG"]).read_text().splitlines() if line.startswith("run ")]
    assert len(runs) == 1 and f"{tmp_path / 'w'}:/weights:ro --env NIA_WEIGHTS=l2cs.pt" in runs[0]
    # the images were built first, beside the demo inputs (none needed here), and the failure logged
    assert "build-rit: failed" in (build / "results" / ".suite" / "images.log").read_text()


def test_validate_all_refuses_a_single_weights_file(fake_docker) -> None:
    done = subprocess.run(["make", "--no-print-directory", "validate-all", "WEIGHTS=/x/l2cs.pt"], cwd=REPO,
                          env=fake_docker, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].startswith("validate-all: WEIGHTS names one file; give WEIGHTS_DIR=DIR")


def test_load_checks_the_sums_before_loading(tmp_path: Path, fake_docker) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("nia_demo_l2cs.tar", "nia_demo_rit.tar"):
        (images / name).write_bytes(name.encode())
    sums = "".join(f"{hashlib.sha256(n.encode()).hexdigest()}  {n}\n" for n in ("nia_demo_l2cs.tar", "nia_demo_rit.tar"))
    (images / "SHA256SUMS").write_text(sums, encoding="utf-8")
    load = ["make", "--no-print-directory", "load", f"IMAGES_DIR={images}"]
    done = subprocess.run(load, cwd=REPO, env=fake_docker, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert Path(fake_docker["FAKE_LOG"]).read_text().splitlines() == [
        "load --input nia_demo_l2cs.tar", "load --input nia_demo_rit.tar"]
    (images / "nia_demo_rit.tar").write_bytes(b"tampered")
    Path(fake_docker["FAKE_LOG"]).unlink()
    done = subprocess.run(load, cwd=REPO, env=fake_docker, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "nia_demo_rit.tar: FAILED" in done.stdout
    assert not Path(fake_docker["FAKE_LOG"]).exists()  # nothing loaded


def test_save_writes_the_official_names_and_their_sums(tmp_path: Path) -> None:
    done = subprocess.run(["make", "-n", "save", "TESTS=l2cs rit dfer", f"IMAGES_DIR={tmp_path}",
                           "-o", "build-l2cs", "-o", "build-rit", "-o", "build-dfer"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for image in ("nia_demo_l2cs", "nia_demo_rit", "nia_demo_dfer"):
        assert f"docker save --output {tmp_path}/{image}.tar.part {image}" in done.stdout
    assert (f"cd {tmp_path} && sha256sum nia_demo_l2cs.tar nia_demo_rit.tar nia_demo_dfer.tar >SHA256SUMS.part"
            in done.stdout)


# ---- nia suite run on a stand-in Docker SDK client

class FakeContainer:
    def __init__(self, log: list[bytes], code: int) -> None:
        self.log, self.code, self.removed, self.started = log, code, False, False

    def start(self) -> None:
        self.started = True

    def logs(self, stream: bool, follow: bool):
        assert self.started
        return iter(self.log)

    def wait(self) -> dict:
        return {"StatusCode": self.code}

    def remove(self, force: bool) -> None:
        self.removed = True


class FakeClient:
    """l2cs writes a PASS with the run id it is given; rit dies with exit 2."""

    def __init__(self) -> None:
        self.runs: list[dict] = []
        self.images = self
        self.containers = self

    def get(self, name: str) -> object:
        return object()

    def run(self, image: str, **kwargs) -> FakeContainer:
        raise AssertionError("containers.run pulls an image that is not here from a registry (issue 19 item 12)")

    def create(self, image: str, **kwargs) -> FakeContainer:
        self.runs.append({"image": image, **kwargs})
        results = next(Path(host) for host, mount in kwargs["volumes"].items() if mount["bind"] == "/results")
        if image == "nia_demo_l2cs":
            passing_l2cs_result(results, kwargs["environment"]["NIA_RUN_ID"])
            return FakeContainer([b"l2cs: mean angular ", b"error 5.00 deg -> PASS\n"], 0)
        return FakeContainer([b"loading\nerror: /data/index.parquet: no rows\n"], 2)


def test_suite_run_streams_logs_reports_a_dead_container_and_merges(tmp_path: Path, monkeypatch) -> None:
    client = FakeClient()
    monkeypatch.setattr(containers, "connect", lambda: client)
    monkeypatch.delenv("NIA_RUN_ID", raising=False)
    data, weights = tmp_path / "data", tmp_path / "w"
    data.mkdir(), weights.mkdir()
    for name in ("l2cs.pt", "ritnet.pt"):
        (weights / name).write_bytes(b"w")
    result = separate_streams_runner().invoke(
        suite_cmds.suite, ["run", "--tests", "l2cs rit", "--data", str(data), "--weights-dir", str(weights),
                           "--results", str(tmp_path / "res"), "--gpus", "none"])
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "[l2cs] l2cs: mean angular error 5.00 deg -> PASS" in result.stdout  # chunks joined into lines
    assert "[rit] error: /data/index.parquet: no rows" in result.stdout
    assert "error: rit: container exited 2: loading | error: /data/index.parquet: no rows" in result.stderr
    l2cs_run, rit_run = client.runs
    assert l2cs_run["volumes"][str(data)] == {"bind": "/data", "mode": "ro"}
    assert l2cs_run["volumes"][str(weights)] == {"bind": "/weights", "mode": "ro"}
    assert l2cs_run["environment"]["NIA_WEIGHTS"] == "l2cs.pt" and rit_run["environment"]["NIA_WEIGHTS"] == "ritnet.pt"
    assert l2cs_run["environment"]["NIA_RUN_ID"] == rit_run["environment"]["NIA_RUN_ID"]
    report = json.loads((tmp_path / "res" / "report" / "report.json").read_text())
    assert [entry["test"] for entry in report["tests"]] == ["l2cs"]
    table = result.stdout[result.stdout.index("test  verdict"):].splitlines()
    assert table[1].split()[:2] == ["l2cs", "PASS"] and table[2].split()[:3] == ["rit", "NO", "RESULT"]


def test_suite_run_loads_images_only_when_their_sums_match(tmp_path: Path, monkeypatch) -> None:
    loaded: list[str] = []

    class Images:
        def load(self, handle):
            loaded.append(Path(handle.name).name)
            return []

    client = type("Client", (), {"images": Images()})()
    (tmp_path / "nia_demo_l2cs.tar").write_bytes(b"image")
    (tmp_path / "SHA256SUMS").write_text(f"{hashlib.sha256(b'other').hexdigest()}  nia_demo_l2cs.tar\n")
    with pytest.raises(ValueError, match="nia_demo_l2cs.tar: sha256 .* SHA256SUMS says .*: damaged or replaced"):
        containers.load_images(client, tmp_path, [SUITE["l2cs"]], print)
    (tmp_path / "SHA256SUMS").write_text(f"{hashlib.sha256(b'image').hexdigest()} *nia_demo_l2cs.tar\n")
    containers.load_images(client, tmp_path, [SUITE["l2cs"]], print)
    assert loaded == ["nia_demo_l2cs.tar"]


# ---- the real engine (skipped without one, or without the l2cs image)

def _engine_with_l2cs_image() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "image", "inspect", "nia_demo_l2cs"], capture_output=True).returncode == 0


@pytest.mark.docker
@pytest.mark.skipif(not _engine_with_l2cs_image(), reason="no Docker engine, or nia_demo_l2cs not built")
def test_suite_run_on_the_engine_reports_the_container_that_stopped(tmp_path: Path) -> None:
    """Empty data: the image says what to mount and exits 2; `nia suite run` files that line."""
    pytest.importorskip("docker")
    (tmp_path / "data").mkdir()
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "l2cs.pt").write_bytes(b"w")
    done = subprocess.run([sys.executable, "-m", "common", "suite", "run", "--tests", "l2cs", "--data",
                           str(tmp_path / "data"), "--weights-dir", str(tmp_path / "w"), "--results",
                           str(tmp_path / "res"), "--gpus", "none"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ,
                                                                                     "PYTHONPATH": str(REPO)})
    assert done.returncode == 2, done.stderr
    assert "error: l2cs: container exited 2: nia_demo_l2cs: nothing to validate: mount the data" in done.stderr
    assert "[l2cs] nia_demo_l2cs: nothing to validate" in done.stdout
