"""pyproject.toml's requirements give a working `pip install -e .` beside Debian bookworm's NumPy 1.24.

The newest pyarrow (26.0.1 when this was measured) installs beside NumPy 1.24
and then refuses to import ("pyarrow requires NumPy 2.0 or newer"); the real
install is checked by scripts/check-pip-install.sh in CI (it needs PyPI).
"""
from __future__ import annotations

import pytest
from packaging.requirements import Requirement

from tests.paths import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+



def project_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {Requirement(line).name: Requirement(line) for line in project["dependencies"]}


def image_pins() -> dict[str, str]:
    """name -> version of requirements-pypi.txt, the host-only lines left out."""
    pins = {}
    for line in (REPO / "requirements-pypi.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name] = version
    return pins


def test_numpy_stays_below_2_and_pyarrow_below_the_ones_that_need_it() -> None:
    requirements = project_requirements()
    assert "1.24.2" in requirements["numpy"].specifier and "2.0.0" not in requirements["numpy"].specifier
    assert "17.0.0" in requirements["pyarrow"].specifier
    assert "26.0.1" not in requirements["pyarrow"].specifier and "18.0.0" not in requirements["pyarrow"].specifier


def test_every_runtime_pin_is_allowed_by_the_package_and_safetensors_is_required() -> None:
    requirements = project_requirements()
    pins = image_pins()
    assert "safetensors" in requirements and "safetensors" in pins  # common/engine/checkpoint.py
    for name, version in pins.items():
        if name in requirements:
            assert version in requirements[name].specifier, (name, version)
    # the Docker SDK is host-side: pinned for the venv, marked so that the images leave it out
    host_only = [line for line in (REPO / "requirements-pypi.txt").read_text().splitlines()
                 if "host-only" in line and not line.startswith("#")]
    assert [line.split("==")[0] for line in host_only] == ["docker"]
