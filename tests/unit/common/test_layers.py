"""Layers (issue 20): a lower package never imports a higher one, not even inside a function."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from tests.paths import REPO

COMMON = REPO / "common"

# package -> packages it must not import
RULES = {
    "engine": ("common.report",),
    "metrics": ("common.targets", "common.report", "common.engine"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(RULES))
def test_no_upward_import(package: str) -> None:
    upward = [f"{path.relative_to(COMMON.parent)}:{line}: {name}"
              for path in sorted((COMMON / package).rglob("*.py"))
              for line, name in _imports(path)
              if any(name == top or name.startswith(top + ".") for top in RULES[package])]
    assert upward == []
