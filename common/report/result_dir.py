"""One test's result folder as `nia report` reads it: metrics.json (required) and per_sample.csv.

The test a folder names must be a registered one (common.suite.registry):
any other is refused in one line naming the folder and the key, never
scored as some other test.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.suite.registry import REGISTRY
from common.verdicts.results import METRICS_FILE, PER_SAMPLE_FILE, RunError, sha256_fresh
from common.containment import inside_folder


@dataclass(frozen=True)
class ResultDir:
    """One test's result folder, loaded."""

    directory: Path
    result: dict[str, Any]
    per_sample: pd.DataFrame | None
    per_sample_sha256: str | None = None  # of the file as found (not cached)

    @property
    def test(self) -> str:
        return str(self.result["test"])


def load_result_dir(directory: Path | str) -> ResultDir:
    """Load metrics.json (required) and per_sample.csv (optional) of one folder."""
    folder = Path(directory)
    metrics_path = folder / METRICS_FILE
    if not metrics_path.is_file():
        raise RunError(f"{folder}: no {METRICS_FILE}; expected a result folder written by a test entry point")
    try:
        result = json.loads(metrics_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RunError(f"{metrics_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{metrics_path}: not valid JSON ({exc})") from exc
    if not isinstance(result, dict):
        raise RunError(f"{metrics_path}: a JSON {type(result).__name__}, expected an object")
    missing = [k for k in ("test", "metric", "value", "threshold", "passed", "n_samples") if k not in result]
    if missing:
        raise RunError(f"{metrics_path}: lacks {', '.join(missing)}; expected a result folder written by a test "
                       "entry point")
    if not isinstance(result["test"], str) or result["test"] not in REGISTRY:
        raise RunError(f"{folder}: metrics.json names test {json.dumps(result['test'])}, which is not a registered "
                       f"acceptance test ({', '.join(REGISTRY)}): refused, not scored as another test")
    per_sample_path = per_sample_path_of(folder, metrics_path, result.get("per_sample_file"))
    if not per_sample_path.is_file():
        return ResultDir(folder, result, None)
    try:
        per_sample = pd.read_csv(per_sample_path, dtype={"name": str, "subject": str, "inst": str})
    except UnicodeDecodeError as exc:
        raise RunError(f"{per_sample_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (ValueError, pd.errors.ParserError) as exc:   # EmptyDataError is a ValueError
        raise RunError(f"{per_sample_path}: not a readable CSV ({' '.join(str(exc).split())})") from None
    return ResultDir(folder, result, per_sample, sha256_fresh(per_sample_path))


def per_sample_path_of(folder: Path, metrics_path: Path, named: Any) -> Path:
    """The per-sample file metrics.json names (default per_sample.csv), which must lie inside ``folder``:
    another run's per_sample.csv would otherwise be filed as this one's."""
    name = PER_SAMPLE_FILE if named is None or named == "" else named
    if not isinstance(name, str):
        raise RunError(f"{metrics_path}: per_sample_file is {json.dumps(name)}; expected a file name")
    path = inside_folder(folder, name)
    if path is None:
        raise RunError(f"{metrics_path}: per_sample_file {name!r} lies outside the results folder {folder}: "
                       "refused (a result is filed only with its own per-sample file)")
    return path

