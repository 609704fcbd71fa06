"""The suite's Docker side on the Docker SDK (`docker` package, host side only).

What `make validate-all` does with the docker CLI, for auditors who prefer
Python: load the images from `make save`'s tars (SHA-256 checked first) or
build them, run each validation in its container with the container's log
streamed line by line, and say how a container that died ended (exit code,
last log lines). The client is passed in, so that tests can hand in a stand-in;
`docker` itself is imported only by `connect`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from common.suite.specs import TestImage
from common.verdicts.results import sha256_fresh

NIA_UID = 1000
Echo = Callable[[str], None]


@dataclass
class ContainerRun:
    """One validation container: its exit code and the last lines of its log."""

    test: str
    exit_code: int
    last_lines: list[str] = field(default_factory=list)

    def reason(self) -> str:
        """One line for the verdict table when the container wrote no result."""
        tail = " | ".join(self.last_lines[-3:]) or "no log"
        return f"container exited {self.exit_code}: {tail}"


def connect() -> Any:
    """A Docker SDK client from the environment (DOCKER_HOST or the local socket); RuntimeError naming why not."""
    try:
        import docker
    except ImportError as exc:
        raise RuntimeError("the Docker SDK is not installed: pip install docker (requirements-pypi.txt)") from exc
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - the SDK raises several kinds for 'no engine'
        raise RuntimeError(f"no Docker engine answers ({exc})") from exc
    return client


def read_sums(images_dir: Path) -> dict[str, str]:
    """SHA256SUMS of `make save`: file name -> hex digest."""
    sums_file = images_dir / "SHA256SUMS"
    if not sums_file.is_file():
        raise FileNotFoundError(f"{sums_file}: not found; `make save` writes it beside the image tars")
    sums = {}
    for number, line in enumerate(sums_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        name = name.strip().lstrip("*")
        if len(digest) != 64 or not name:
            raise ValueError(f"{sums_file} line {number}: expected '<sha256>  <file>', got {line!r}")
        sums[name] = digest
    return sums


def load_images(client: Any, images_dir: Path, specs: Iterable[TestImage], echo: Echo) -> None:
    """Check each spec's tar against SHA256SUMS, then load it; ValueError naming the tar that differs."""
    sums = read_sums(images_dir)
    for spec in specs:
        tar = images_dir / f"{spec.image}.tar"
        if tar.name not in sums:
            raise ValueError(f"{images_dir / 'SHA256SUMS'}: lists no {tar.name}")
        found = sha256_fresh(tar)
        if found != sums[tar.name]:
            raise ValueError(f"{tar}: sha256 {found}, SHA256SUMS says {sums[tar.name]}: damaged or replaced")
        echo(f"{spec.test}: {tar.name} sha256 OK, loading")
        with tar.open("rb") as handle:  # streamed: the SDK posts the open file
            for image in client.images.load(handle):
                echo(f"{spec.test}: loaded {', '.join(image.tags) or image.id}")


def build_image(client: Any, spec: TestImage, repo: Path, base_image: str, code_version: str, echo: Echo) -> None:
    """Build spec's image from docker/Dockerfile (the Makefile's build, without baked weights).

    Needs what `make wheels` and the base targets made: the wheels under
    build/wheels/ and the base image.
    """
    if not any((repo / "build" / "wheels").glob("py*/*.whl")):
        raise FileNotFoundError(f"{repo / 'build/wheels'}: no wheels; run `make wheels` (or `make build-{spec.test}`)")
    bake = repo / "build" / "bake" / spec.code_dir
    if bake.exists():
        shutil.rmtree(bake)
    bake.mkdir(parents=True)
    (bake / "BAKED").write_text("none\n", encoding="utf-8")
    base_id = client.images.get(base_image).id
    args = {"BASE_IMAGE": base_image, "BASE_DIGEST": base_id, "TEST_DIR": spec.code_dir, "ENTRY": spec.entry,
            "WEIGHTS_FILE": spec.weights_file, "IMAGE_TITLE": spec.image, "NIA_CODE_VERSION": code_version,
            "NIA_CODE_REVISION": _git(repo, "rev-parse", "HEAD"), "BAKED_WEIGHTS": "none"}
    echo(f"{spec.test}: building {spec.image} on {base_image}")
    for chunk in client.api.build(path=str(repo), dockerfile="docker/Dockerfile", tag=spec.image, buildargs=args,
                                  rm=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(f"{spec.image}: docker build failed: {chunk['error'].strip()}")
        for line in str(chunk.get("stream", "")).splitlines():
            if line.strip():
                echo(f"[{spec.test} build] {line}")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def gpu_requests(gpus: str) -> list[Any]:
    """`--gpus all` as the SDK says it; 'auto' asks for them where nvidia-smi works."""
    if gpus == "none" or (gpus == "auto" and not _nvidia_smi_works()):
        return []
    import docker

    return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]


def _nvidia_smi_works() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi"], capture_output=True).returncode == 0


def run_validation(client: Any, spec: TestImage, *, data: Path, weights: Path | None, results: Path, run_id: str,
                   device_requests: list[Any], extra_args: list[str], echo: Echo, tail: int = 20) -> ContainerRun:
    """Run spec's image on data with weights into results, its log streamed; the container is removed after.

    The same mounts as `make validate-*`: data and the weights' folder
    read-only, results writable (handed to the image's user when we are root).
    """
    results.mkdir(parents=True, exist_ok=True)
    user = None
    if os.getuid() == 0:
        os.chown(results, NIA_UID, NIA_UID)
    else:
        user = f"{os.getuid()}:{os.getgid()}"
    volumes = {str(data.resolve()): {"bind": "/data", "mode": "ro"},
               str(results.resolve()): {"bind": "/results", "mode": "rw"}}
    environment = {"NIA_RUN_ID": run_id}
    if weights is not None:
        volumes[str(weights.resolve().parent)] = {"bind": "/weights", "mode": "ro"}
        environment["NIA_WEIGHTS"] = weights.name
    # create + start, not the SDK's containers.run: that pulls the image from a registry when it is not here
    container = client.containers.create(spec.image, command=extra_args or None, volumes=volumes,
                                         environment=environment, user=user, device_requests=device_requests or None)
    last: deque[str] = deque(maxlen=tail)
    try:
        container.start()
        pending = ""
        for chunk in container.logs(stream=True, follow=True):
            pending += chunk.decode("utf-8", errors="replace")
            *complete, pending = pending.replace("\r", "\n").split("\n")
            for line in complete:
                if line.strip():
                    last.append(line)
                    echo(f"[{spec.test}] {line}")
        if pending.strip():
            last.append(pending)
            echo(f"[{spec.test}] {pending}")
        exit_code = int(container.wait().get("StatusCode", 2))
    finally:
        container.remove(force=True)
    return ContainerRun(spec.test, exit_code, list(last))
