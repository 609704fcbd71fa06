"""The one registry of acceptance tests (common/suite/registry.py) and every file that restates it.

Each check iterates the registry: a test added there and not in the Makefile,
docker-compose.yml, .env.example, the Dockerfile's table, .ci/run,
pyproject.toml or thresholds.json (or the other way round) fails here.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

from common.suite import registry
from common.suite.registry import REGISTRY, AcceptanceTest, get_test, hook
from common.suite.specs import SUITE
from common.verdicts import results, thresholds
from tests.paths import REPO



def _make_expression(expression: str) -> str:
    """A make expression as the Makefile's make expands it (`make -s -p` would print all variables)."""
    done = subprocess.run(["make", "--no-print-directory", "-s", "-f", "Makefile", "-f", "-", "print-var"],
                          input=f"print-var:\n\t@echo '{expression}'\n", cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _make_variable(name: str) -> str:
    return _make_expression(f"$({name})")


def _compose() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))


def _env_example() -> dict[str, str]:
    lines = (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


# ---- the registry itself

def test_the_views_are_the_registry() -> None:
    assert SUITE is REGISTRY
    assert list(thresholds.TESTS) == list(REGISTRY) == ["l2cs", "rit", "dfer"]
    assert thresholds.TESTS == ("l2cs", "rit", "dfer") and "dfer" in thresholds.TESTS and "blink" not in thresholds.TESTS
    assert {key: results.REQUIRED_COLUMNS[key] for key in REGISTRY} == \
        {key: test.required_columns for key, test in REGISTRY.items()}
    assert all(key == test.key == test.test for key, test in REGISTRY.items())


def test_an_unknown_key_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match=r"^test 'blink' is not a registered acceptance test; expected one of "
                                         r"l2cs, rit, dfer$"):
        get_test("blink")


@pytest.mark.parametrize("key", list(registry.BUILTIN_KEYS))
def test_every_hook_resolves(key: str) -> None:
    test = get_test(key)
    paths = [test.scorer, test.section, *test.problems, *(p for _, p in test.extras)]
    paths += [p for p in (test.counts, test.changes, test.predictions_reader, test.data_check) if p]
    for path in paths:
        assert callable(hook(path)) or path.endswith(("_CROPS", "_CLIPS")), path


def test_register_refuses_a_taken_key_and_the_builtins_stay() -> None:
    with pytest.raises(ValueError, match="cannot register test 'l2cs': the key is taken"):
        registry.register(get_test("l2cs"))
    with pytest.raises(ValueError, match="'rit' is built in"):
        registry.unregister("rit")


def test_the_registry_imports_without_torch_or_pandas() -> None:
    code = ("import sys; import common.suite.registry; "
            "bad = [m for m in ('torch', 'pandas', 'common.report') if m in sys.modules]; "
            "sys.exit(f'imported {bad}' if bad else 0)")
    done = subprocess.run(["python3", "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ---- the files that restate it

def test_thresholds_json_has_each_test_with_its_metric_and_direction() -> None:
    packaged = json.loads(thresholds.default_thresholds_file().read_text(encoding="utf-8"))
    assert [key for key in packaged if not key.startswith("_")] == list(registry.BUILTIN_KEYS)
    for key in registry.BUILTIN_KEYS:
        test = get_test(key)
        assert (packaged[key]["metric"], packaged[key]["direction"]) == (test.metric, test.direction)


def test_a_rule_that_contradicts_the_registry_is_refused(tmp_path: Path) -> None:
    override = tmp_path / "override.json"
    override.write_text(json.dumps({"rit": {"metric": "dice"}}), encoding="utf-8")
    with pytest.raises(ValueError, match=f"{override}: rit is dice >=; the registry .* declares miou >="):
        thresholds.load_thresholds(override)


def test_makefile_declares_each_test_as_the_registry() -> None:
    assert _make_variable("ALL_TESTS").split() == list(REGISTRY)
    assert _make_variable("TESTS").split() == list(REGISTRY)
    for key, test in REGISTRY.items():
        values = {field: _make_variable(f"{key}_{field}")
                  for field in ("IMAGE", "DIR", "ENTRY", "WEIGHTS_FILE", "TRAIN", "DEMO_DATA")}
        assert values == {"IMAGE": test.image, "DIR": test.code_dir, "ENTRY": test.entry,
                          "WEIGHTS_FILE": test.weights_file, "TRAIN": test.train_script,
                          "DEMO_DATA": f"build/{test.demo_data}"}, key
    # no block for a key outside the registry (the blocks come from one define, so ask make, not the text)
    blocks = set(_make_expression("$(patsubst %_IMAGE,%,$(filter %_IMAGE,$(.VARIABLES)))").split())
    assert {block for block in blocks if not block.isupper()} == set(REGISTRY)


def test_compose_runs_each_test_as_the_registry() -> None:
    services = _compose()["services"]
    assert list(services) == list(REGISTRY)
    for key, test in REGISTRY.items():
        service = services[key]
        args = service["build"]["args"]
        assert service["image"] == test.image
        assert (args["TEST_DIR"], args["ENTRY"], args["WEIGHTS_FILE"], args["IMAGE_TITLE"]) == \
            (test.code_dir, test.entry, test.weights_file, test.image)
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        data, _, out = service["volumes"]
        assert data == f"${{{key.upper()}_DATA:-./build/{test.demo_data}}}:/data:ro"
        assert out == f"${{RESULTS_DIR:-./build/results}}/{key}:/results"
        assert service["environment"]["NIA_WEIGHTS"] == f"${{{key.upper()}_WEIGHTS:-{key}_demo.pt}}"


def test_env_example_sets_each_tests_data_and_weights() -> None:
    env = _env_example()
    per_test = {name for name in env if name.endswith(("_DATA", "_WEIGHTS")) and name != "DATA"}
    assert per_test == {f"{key.upper()}_{what}" for key in REGISTRY for what in ("DATA", "WEIGHTS")}
    for key, test in REGISTRY.items():
        assert env[f"{key.upper()}_DATA"] == f"./build/{test.demo_data}"
        assert env[f"{key.upper()}_WEIGHTS"] == f"{key}_demo.pt"


def test_dockerfile_table_lists_each_image() -> None:
    text = (REPO / "docker" / "Dockerfile").read_text(encoding="utf-8")
    rows = [line[1:].split() for line in text.splitlines() if line.startswith("#   nia_demo_")]
    assert rows == [[t.image, t.code_dir, t.entry, t.weights_file] for t in REGISTRY.values()]


def test_ci_runs_each_entry_point() -> None:
    text = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    pairs = re.search(r"^for pair in (.*); do$", text, flags=re.MULTILINE).group(1).split()
    assert pairs == [f"{key}:{test.entry}" for key, test in REGISTRY.items()]


def test_pyproject_packages_each_code_folder() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert set(include) == {"common*"} | {f"{t.code_dir}*" for t in REGISTRY.values()}


@pytest.mark.parametrize("key", list(registry.BUILTIN_KEYS))
def test_each_entry_point_and_training_script_exists(key: str) -> None:
    test: AcceptanceTest = get_test(key)
    assert test.entry_missing(REPO) is None
    assert (REPO / test.train_script).is_file() and (REPO / test.code_dir).is_dir()
