"""Does a result folder agree with itself and with the suite's own rules?

`nia report` files a verdict only after recomputing it: the verdict from the
value, the skip counts and the suite's thresholds (common/data/thresholds.json,
never the ones metrics.json carries), the value from per_sample.csv, and the
file's integrity (per_sample.csv's SHA-256, the coverage equation
``n_samples + n_skipped == n_in_split``, one row per sample, the test's whole
class set). Each disagreement is one line naming the field; a folder with any
is filed as FAIL. The split's size, the data's skip counts and the truth are
checked against the data by ``common.report.data_check`` where it is at hand.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from common.metrics.angular import angular_errors_deg
from common.metrics.segmentation import count_classes
from common.suite.registry import get_test, hook
from common.verdicts.results import SCHEMA_VERSION
from common.verdicts.thresholds import ERROR, PARTIAL, SKIP_REASONS, SUBMISSION, Threshold, decide, passed_of, skips_by_kind

#: |recomputed - reported| above this marks a value as inconsistent.
RECOMPUTE_TOLERANCE = 1e-6


def claimed_verdict(result: dict[str, Any]) -> str:
    """The verdict metrics.json states (``verdict``, else derived from ``passed`` as old files did)."""
    verdict = result.get("verdict")
    if verdict is None:
        verdict = {True: "PASS", False: "FAIL"}.get(result.get("passed"), ERROR)
    return str(verdict)


def check_result(result: dict[str, Any], per_sample: pd.DataFrame | None, per_sample_sha256: str | None,
                 rule: Threshold, recomputed_value: float | None) -> tuple[str, list[str]]:
    """(the verdict the suite's rule gives, the list of problems); no problem means consistent.

    ``rule`` is the suite's threshold for the test; ``per_sample_sha256`` the
    hash of per_sample.csv as found (None when the file is missing);
    ``recomputed_value`` the headline recomputed from per_sample.csv.
    """
    problems: list[str] = []
    if result.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"metrics.json has schema_version {result.get('schema_version')}; "
                        f"expected {SCHEMA_VERSION} (rerun the test)")
    problems += _rule_problems(result, rule)
    skipped = {str(k): v for k, v in (result.get("skipped") or {}).items()}
    problems += _coverage_problems(result, skipped)
    problems += _per_sample_problems(result, per_sample, per_sample_sha256, recomputed_value)
    value = number(result.get("value"))
    known = {k: int(v) for k, v in skipped.items() if k in SKIP_REASONS}
    claimed = claimed_verdict(result)
    try:
        if value is not None:
            rule.check_range(value)
        expected = decide(rule, value, known, allow_partial=claimed == PARTIAL)
    except ValueError as exc:
        problems.append(str(exc))
        expected = ERROR
    if claimed != expected:
        submission = skips_by_kind(known)[SUBMISSION]
        why = (f"{submission} samples skipped because of the submission give {expected}" if submission
               else f"its value against the suite's threshold gives {expected}")
        problems.append(f"metrics.json says {claimed}; {why}")
    if "verdict" in result and result.get("passed") != passed_of(claimed):
        problems.append(f"passed is {_json(result.get('passed'))} but verdict is {claimed}")
    return expected, problems


def _rule_problems(result: dict[str, Any], rule: Threshold) -> list[str]:
    problems = []
    if result.get("metric") != rule.metric:
        problems.append(f"metric is {result.get('metric')!r} in metrics.json; the suite's is {rule.metric!r}")
    for name, suite in (("direction", rule.direction), ("threshold", rule.threshold)):
        given = result.get(name)
        if given != suite:
            shown = f"{given:g}" if isinstance(given, (int, float)) and not isinstance(given, bool) else repr(given)
            suite_shown = f"{suite:g}" if isinstance(suite, float) else repr(suite)
            problems.append(f"{name} is {shown} in metrics.json; the suite's (common/data/thresholds.json) "
                            f"is {suite_shown}")
    return problems


def _coverage_problems(result: dict[str, Any], skipped: dict[str, Any]) -> list[str]:
    problems = [f"skip reason {k!r} is not in the suite's vocabulary (common.verdicts.thresholds.SKIP_REASONS)"
                for k in skipped if k not in SKIP_REASONS]
    n_samples, n_skipped, n_in_split = (result.get(k) for k in ("n_samples", "n_skipped", "n_in_split"))
    total = sum(int(v) for v in skipped.values())
    if n_skipped != total:
        problems.append(f"n_skipped is {n_skipped} but skipped sums to {total}")
    if n_in_split is None:
        problems.append("no n_in_split: the coverage of the split cannot be checked")
    elif not isinstance(n_samples, int) or not isinstance(n_skipped, int) or n_samples + n_skipped != n_in_split:
        problems.append(f"coverage: {n_samples} scored + {n_skipped} skipped = "
                        f"{_sum(n_samples, n_skipped)} samples; n_in_split is {n_in_split}")
    known = {k: int(v) for k, v in skipped.items() if k in SKIP_REASONS}
    if result.get("skipped_by_kind") != skips_by_kind(known):
        problems.append(f"skipped_by_kind is {_json(result.get('skipped_by_kind'))}; "
                        f"its reasons give {_json(skips_by_kind(known))}")
    return problems


def _per_sample_problems(result: dict[str, Any], per_sample: pd.DataFrame | None, sha256: str | None,
                         recomputed_value: float | None) -> list[str]:
    if per_sample is None:
        return ["per_sample.csv is missing"]
    problems = []
    if sha256 != result.get("per_sample_sha256"):
        problems.append("per_sample.csv sha256 differs from metrics.json's (the file changed after the run)")
    if len(per_sample) != result.get("n_samples"):
        problems.append(f"per_sample.csv has {len(per_sample)} rows; n_samples is {result.get('n_samples')}")
    if "name" in per_sample.columns:
        counts = per_sample["name"].value_counts()
        repeated = counts[counts > 1]
        if len(repeated):
            problems.append(f"per_sample.csv names {len(repeated)} sample{'s' if len(repeated) > 1 else ''} "
                            f"more than once (e.g. {repeated.index[0]!r})")
    problems += test_problems(result, per_sample)
    value = number(result.get("value"))
    if value is not None and recomputed_value is not None and not math.isnan(recomputed_value) \
            and abs(recomputed_value - value) > RECOMPUTE_TOLERANCE:
        problems.append(f"value in metrics.json is {value:.6g}; per_sample.csv gives {recomputed_value:.6g}")
    return problems


def test_problems(result: dict[str, Any], per_sample: pd.DataFrame) -> list[str]:
    """The checks the registry lists for the folder's test (its rows, its whole class set)."""
    problems = []
    for check in get_test(str(result.get("test"))).problems:
        problems += hook(check)(result, per_sample)
    return problems


def _extra(result: dict[str, Any]) -> dict[str, Any]:
    return result.get("extra") if isinstance(result.get("extra"), dict) else {}


def segmentation_class_problems(result: dict[str, Any], per_sample: pd.DataFrame) -> list[str]:
    """RIT-Net's result is scored over its three class maps' classes (an inter_/union_ pair each, background
    included), all of them."""
    from ritnet.scoring import CLASS_NAMES

    found = count_classes(per_sample.columns)
    problems = [] if found == list(CLASS_NAMES) else [
        f"per_sample.csv scores classes {found}; RIT-Net's are {list(CLASS_NAMES)}"]
    if _extra(result).get("include_background", True) is not True:
        problems.append("extra.include_background is not true; the suite's mIoU counts the background")
    return problems


def state_class_problems(result: dict[str, Any], per_sample: pd.DataFrame) -> list[str]:
    """Former-DFER's result is scored over its five states, all of them."""
    from common.delivery.filenames import STATES

    classes = _extra(result).get("classes")
    if classes != list(STATES):
        return [f"extra.classes is {_json(classes)}; Former-DFER's states are {list(STATES)}"]
    return []


def gaze_row_problems(result: dict[str, Any], per_sample: pd.DataFrame) -> list[str]:
    """l2cs: each row's error_deg must be the angle between its pred_ and true_ directions."""
    columns = ["pred_pitch", "pred_yaw", "true_pitch", "true_yaw", "error_deg"]
    if any(c not in per_sample.columns for c in columns) or per_sample.empty:
        return []
    values = per_sample[columns].to_numpy(dtype=np.float64)
    try:
        angles = angular_errors_deg(values[:, 0:2], values[:, 2:4])
    except ValueError as exc:
        return [f"per_sample.csv pred_/true_ columns: {exc}"]
    off = int((~(np.abs(angles - values[:, 4]) <= RECOMPUTE_TOLERANCE)).sum())
    return [f"error_deg of {off} rows differs from the angle between pred_ and true_"] if off else []


def number(value: Any) -> float | None:
    """A JSON number as float; None for null, booleans and anything else."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _sum(a: Any, b: Any) -> Any:
    return a + b if isinstance(a, int) and isinstance(b, int) else "?"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
