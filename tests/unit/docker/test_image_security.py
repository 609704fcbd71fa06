"""The test images as a sandbox for other people's weights: what the images and every way of running them
must hold, written against the requirements (issue 14), not against one version of the files.

A validation container runs as a non-root user, with no network, the data and
the weights mounted read-only, ``no-new-privileges`` and every Linux
capability dropped. Checked in three places:

* docker-compose.yml: every service built from docker/Dockerfile says so;
* the Makefile's ``validate-*`` targets: their ``docker run`` line says so;
* each built image (skipped where Docker or the image is missing): its user
  is not root, it exposes no port, and under those flags a process in it has
  uid != 0, no capability, NoNewPrivs, no network interface but loopback, and
  cannot write to /data or /weights.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from common.suite.registry import REGISTRY
from tests.paths import REPO

COMPOSE = REPO / "docker-compose.yml"
IMAGES = {key: test.image for key, test in REGISTRY.items()}
READ_ONLY_TARGETS = ("/data", "/weights")


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR-default}`` -> the default; ``${VAR}`` -> empty."""
    return re.sub(r"\$\{[^}:-]+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", str(value))


def _services() -> dict[str, dict]:
    import yaml

    if not COMPOSE.exists():
        pytest.skip("no docker-compose.yml")
    services = (yaml.safe_load(COMPOSE.read_text(encoding="utf-8")) or {}).get("services") or {}
    tests = {name: s for name, s in services.items()
             if str(s.get("image", "")).startswith("nia_demo_") or "docker/Dockerfile" in str(s.get("build", ""))}
    assert tests, "docker-compose.yml has no service built from docker/Dockerfile"
    return tests


def _volumes(service: dict) -> list[tuple[str, bool]]:
    """(target, read_only) of each mount, short or long syntax."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts.append((volume.get("target", ""), bool(volume.get("read_only"))))
        else:
            parts = _interpolate(volume).split(":")
            target = parts[1] if len(parts) > 1 else parts[0]
            options = parts[2].split(",") if len(parts) > 2 else []
            mounts.append((target, "ro" in options))
    return mounts


def _not_root(user: str) -> bool:
    name = _interpolate(user).split(":")[0].strip()
    return name not in ("", "0", "root")


@pytest.mark.parametrize("check", ["user", "network", "read_only", "privileges", "capabilities"])
def test_compose_services_are_sandboxed(check: str) -> None:
    for name, service in _services().items():
        if check == "user":
            assert _not_root(str(service.get("user", ""))), f"service {name}: user must be set and not root"
        elif check == "network":
            assert service.get("network_mode") == "none", f"service {name}: network_mode must be none"
        elif check == "read_only":
            mounts = dict(_volumes(service))
            for target in READ_ONLY_TARGETS:
                assert target in mounts, f"service {name}: no mount at {target}"
                assert mounts[target], f"service {name}: {target} must be mounted read-only"
        elif check == "privileges":
            options = [str(o).replace("=", ":") for o in service.get("security_opt") or []]
            assert any(o in ("no-new-privileges", "no-new-privileges:true") for o in options), \
                f"service {name}: security_opt must hold no-new-privileges:true"
        elif check == "capabilities":
            assert [str(c).upper() for c in service.get("cap_drop") or []] == ["ALL"], \
                f"service {name}: cap_drop must be [ALL]"


def _docker_run_args(test: str, tmp_path: Path) -> list[str] | None:
    """The arguments of the ``docker run`` that ``make validate-TEST`` would run (None: no such target)."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    done = subprocess.run(["make", "-n", f"validate-{test}", f"BUILD={tmp_path}"], cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode != 0 and "No rule to make target" in done.stderr:
        return None
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "docker run" in line]
    assert len(lines) == 1, done.stdout
    command = lines[0][lines[0].index("docker run"):].split(";")[0]
    return shlex.split(_without_substitutions(command))[2:]


def _without_substitutions(text: str) -> str:
    """``text`` less its shell ``$( ... )`` substitutions, nested ones included (the --user of a non-root caller)."""
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith("$(", i):
            depth, i = depth + 1, i + 2
            continue
        if depth and text[i] == "(":
            depth += 1
        elif depth and text[i] == ")":
            depth -= 1
        elif not depth:
            out.append(text[i])
        i += 1
    return "".join(out)


@pytest.mark.parametrize("test", list(REGISTRY))
def test_make_validate_runs_the_container_sandboxed(test: str, tmp_path: Path) -> None:
    args = _docker_run_args(test, tmp_path)
    if args is None:
        pytest.skip(f"no make target validate-{test} yet")
    joined = " ".join(args)
    assert re.search(r"--network[= ]none\b", joined), joined
    assert re.search(r"--cap-drop[= ]ALL\b", joined), joined
    assert re.search(r"--security-opt[= ]no-new-privileges(:true)?\b", joined), joined
    mounts = [a.split(":") for a in args if a.count(":") >= 1 and a.split(":")[1] in READ_ONLY_TARGETS]
    assert {m[1] for m in mounts} == set(READ_ONLY_TARGETS), joined
    assert all(len(m) > 2 and "ro" in m[2].split(",") for m in mounts), joined
    assert not re.search(r"--user[= ](0|root)\b", joined) and "--privileged" not in joined, joined


# --- the built images -------------------------------------------------------------------------------------------

def _docker_answers() -> bool:
    return shutil.which("docker") is not None and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _inspect(image: str) -> dict | None:
    import json

    done = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True)
    return json.loads(done.stdout)[0] if done.returncode == 0 else None


@pytest.fixture(scope="module")
def docker() -> None:
    if not _docker_answers():
        pytest.skip("no Docker engine")


PROBE = r"""
import os, sys
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
interfaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
writable = []
for folder in ("/data", "/weights"):
    try:
        open(os.path.join(folder, ".probe"), "w").close()
        writable.append(folder)
    except OSError:
        pass
print(os.getuid(), status["CapEff"].strip(), status["NoNewPrivs"].strip(), ",".join(interfaces), ",".join(writable))
"""


@pytest.mark.docker
@pytest.mark.parametrize("test", list(REGISTRY))
def test_image_user_and_sandboxed_run(test: str, docker: None, tmp_path: Path) -> None:
    image = IMAGES[test]
    facts = _inspect(image)
    if facts is None:
        pytest.skip(f"image {image} not built")
    config = facts["Config"]
    assert _not_root(config.get("User") or ""), f"{image}: USER is {config.get('User')!r}"
    assert not config.get("ExposedPorts"), f"{image}: exposes {config.get('ExposedPorts')}"
    for folder in ("data", "weights"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder).chmod(0o777)  # writable by anyone: only the read-only mount may stop a write
    done = subprocess.run(["docker", "run", "--rm", "--network", "none", "--cap-drop", "ALL",
                           "--security-opt", "no-new-privileges:true",
                           "--volume", f"{tmp_path / 'data'}:/data:ro", "--volume", f"{tmp_path / 'weights'}:/weights:ro",
                           "--entrypoint", "python3", image, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    uid, caps, no_new_privs, interfaces, writable = (done.stdout.strip().split(" ") + [""])[:5]
    assert int(uid) != 0
    assert int(caps, 16) == 0 and no_new_privs == "1"
    assert interfaces == "lo"
    assert writable == ""
