"""metrics.json + per_sample.csv writer, verdict line and exit codes.

Exit codes of every entry point: 0 = PASS, 1 = the metric misses the
threshold (FAIL), 2 = no verdict: the run could not run (bad input, missing
file, crash; one-line reason on stderr, no metrics.json), or it scored but
the submission left samples unscored (verdict ERROR, the reason on stderr;
PARTIAL with ``--allow-partial``, its line on stdout). Any unexpected
exception also exits 2, so a crash can never be read as a FAIL.

A run first removes the results of an earlier run in the same folder
(``clear_results``), so a run that stops leaves no verdict behind; every
metrics.json carries the ``run_id`` of the run that wrote it (``$NIA_RUN_ID``
when set, e.g. by the Makefile, else a fresh random id).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.atomic import write_text_atomic
from common.suite import registry
from common.verdicts.provenance import sha256_file, utc_now
from common.verdicts.thresholds import (
    ERROR,
    FAIL,
    PARTIAL,
    PASS,
    SUBMISSION,
    Threshold,
    decide,
    thresholds_file_of,
    passed_of,
    skip_kind,
    skips_by_kind,
    threshold_for,
    threshold_from_entry,
)

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
SCHEMA_VERSION = 2
METRICS_FILE = "metrics.json"
PER_SAMPLE_FILE = "per_sample.csv"
OVERLAYS_DIR = "overlays"
#: What a run writes into its --out folder; ``clear_results`` removes exactly these.
RESULT_FILES = (METRICS_FILE, PER_SAMPLE_FILE)
RESULT_DIRS = (OVERLAYS_DIR,)
RUN_ID_ENV = "NIA_RUN_ID"
ALLOW_PARTIAL_HELP = (
    "when the submission leaves samples unscored (missing, duplicated or non-finite predictions, NaN model "
    "outputs), score the rest and label it PARTIAL (exit 2, never PASS); without it such a run gives no verdict"
)

#: Columns each test's per_sample.csv must have (the registry's; ``prefix_*``: at least one such column).
REQUIRED_COLUMNS = registry.REQUIRED_COLUMNS


class RunError(Exception):
    """The run could not produce a result: exit 2 with this message on stderr."""


def write_results(
    out_dir: Path | str,
    *,
    test: str,
    metric: str,
    value: float,
    per_sample: pd.DataFrame,
    n_skipped: int,
    skipped: dict[str, int],
    ci95: tuple[float, float] | None,
    provenance: dict[str, Any],
    n_in_split: int,
    extra: dict[str, Any] | None = None,
    thresholds_file: Path | None = None,
    allow_partial: bool = False,
) -> dict[str, Any]:
    """Write OUT/per_sample.csv, then OUT/metrics.json; return the metrics dict.

    ``value`` (and ``ci95``) are in the unit of the metric function: degrees
    for l2cs, a fraction in [0, 1] for rit (mIoU) and dfer (WAR). ``metric``
    must be the test's metric name in thresholds.json (``mean_angular_error_deg``,
    ``miou``, ``war``). Coverage: ``n_in_split`` is the number of samples in
    the scored split; each is a row of ``per_sample`` (names unique) or is
    counted in ``skipped`` under a reason of ``common.verdicts.thresholds.SKIP_REASONS``,
    so ``len(per_sample) + n_skipped == n_in_split`` and ``n_skipped ==
    sum(skipped.values())``. Any skip caused by the submission makes the
    verdict ERROR (value not recorded), or PARTIAL with ``allow_partial``;
    ``passed`` is then null and the exit code 2. Programming errors in these
    arguments raise ValueError; a NaN value raises RunError.
    """
    rule = threshold_for(test, thresholds_file)
    _check_arguments(rule, metric, value, per_sample, n_skipped, skipped, ci95, n_in_split)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_sample_path = out / PER_SAMPLE_FILE
    write_text_atomic(per_sample_path, per_sample.to_csv(index=False, lineterminator="\n"))
    rules_file = Path(thresholds_file) if thresholds_file is not None else thresholds_file_of(test)
    verdict = decide(rule, float(value), skipped, allow_partial=allow_partial)
    scored = verdict != ERROR  # an ERROR records no number that could be quoted as a result
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": os.environ.get(RUN_ID_ENV, "").strip() or uuid.uuid4().hex,
        "test": test,
        "metric": metric,
        "label": rule.label,
        "value": float(value) if scored else None,
        "unit": rule.unit,
        "display_scale": rule.display_scale,
        "direction": rule.direction,
        "threshold": rule.threshold,
        "passed": passed_of(verdict),
        "verdict": verdict,
        "error": None,
        "n_in_split": int(n_in_split),
        "n_samples": int(len(per_sample)),
        "n_skipped": int(n_skipped),
        "skipped": {str(k): int(v) for k, v in skipped.items()},
        "skipped_by_kind": skips_by_kind(skipped),
        "ci95": _finite_interval(ci95) if scored else None,
        "ci95_note": _interval_note(ci95, per_sample) if scored else "no interval: no verdict",
        "n_subjects": int(per_sample["subject"].nunique()) if "subject" in per_sample.columns else None,
        "official": rule.official,
        "official_note": rule.official_note,
        "thresholds_file": str(rules_file),
        "thresholds_sha256": sha256_file(rules_file),
        "per_sample_file": PER_SAMPLE_FILE,
        "per_sample_sha256": sha256_fresh(per_sample_path),
        "provenance": {**provenance, "end_time": utc_now()},
        "extra": extra or {},
    }
    if verdict == ERROR:
        result["error"] = verdict_line(result)
    write_text_atomic(out / METRICS_FILE, json.dumps(to_jsonable(result), indent=2, allow_nan=False) + "\n")
    return result


def clear_results(out_dir: Path | str) -> None:
    """Remove what an earlier run wrote into ``out_dir`` (metrics.json first), nothing else.

    Call it before a run starts, so that a run that stops (error, crash,
    kill) leaves no earlier verdict to be filed as its own.
    """
    out = Path(out_dir)
    for name in RESULT_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RESULT_DIRS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)


def sha256_fresh(path: Path | str) -> str:
    """Hex SHA-256 of a file, always read from disk (no cache keyed by size and mtime: this is a check)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def _finite_interval(ci95: tuple[float, float] | None) -> list[float] | None:
    if ci95 is None or not all(math.isfinite(float(v)) for v in ci95):
        return None
    return [float(ci95[0]), float(ci95[1])]


def _interval_note(ci95: tuple[float, float] | None, per_sample: pd.DataFrame) -> str:
    """Why there is no interval, so an empty CI cell is never mistaken for certainty."""
    if _finite_interval(ci95) is not None:
        return "percentile bootstrap over subjects (seeded: identical on a rerun)"
    if "subject" in per_sample.columns and per_sample["subject"].nunique() < 2:
        return "no interval: fewer than 2 subjects in the scored split"
    return "no interval computed"


def metric_of(test: str) -> str:
    """The metric name test ``test`` records (the registry's): what its entry point passes to write_results."""
    return registry.get_test(test).metric


def exit_code_for(result: dict[str, Any]) -> int:
    """0 for PASS, 1 for FAIL, 2 when there is no verdict (PARTIAL, ERROR, nothing)."""
    verdict = result.get("verdict")
    if verdict is None:  # a dict without a verdict field: go by ``passed``
        verdict = {True: PASS, False: FAIL}.get(result.get("passed"))
    return {PASS: EXIT_PASS, FAIL: EXIT_FAIL}.get(verdict, EXIT_ERROR)


def rule_of(result: dict[str, Any]) -> Threshold:
    """The threshold rule recorded inside a metrics dict (not re-read from a file)."""
    return threshold_from_entry(result["test"], result, METRICS_FILE)


def verdict_line(result: dict[str, Any]) -> str:
    """One line per verdict, e.g.

    PASS/FAIL: 'l2cs: mean angular error 4.61 deg <= 10 deg -> PASS (n=250000, skipped 0, 95% CI ...)'
    PARTIAL:   'l2cs: mean angular error 0.03 deg on 3 of 32 samples (threshold <= 10 deg) -> PARTIAL,
                no verdict (n=3, skipped 29: data 0, submission 29 [missing_prediction 29])'
    ERROR:     'l2cs: no verdict: 29 of the 32 samples were not scored because of the submission
                (missing_prediction 29); --allow-partial gives a partial score (n=3, skipped 29)'
    """
    rule = rule_of(result)
    verdict = result.get("verdict") or {True: PASS, False: FAIL}.get(result.get("passed"), ERROR)
    value = float(result["value"]) if result.get("value") is not None else math.nan
    counts = f"n={result['n_samples']}, skipped {result['n_skipped']}"
    submission = {k: v for k, v in (result.get("skipped") or {}).items() if v and _is_submission(k)}
    reasons = ", ".join(f"{k} {v}" for k, v in submission.items())
    if verdict == ERROR:
        if not submission:
            return f"{result['test']}: no verdict ({result.get('error') or 'no value'}) ({counts})"
        return (f"{result['test']}: no verdict: {sum(submission.values())} of the {result.get('n_in_split', '?')} "
                f"samples were not scored because of the submission ({reasons}); --allow-partial gives a "
                f"partial score ({counts})")
    if verdict == PARTIAL:
        kinds = result.get("skipped_by_kind") or {}
        line = (f"{result['test']}: {rule.label} {rule.show(value)} on {result['n_samples']} of "
                f"{result.get('n_in_split', '?')} samples (threshold {rule.direction} "
                f"{rule.show(rule.threshold, compact=True)}) -> PARTIAL, no verdict ({counts}: data "
                f"{kinds.get('data', 0)}, submission {kinds.get(SUBMISSION, 0)} [{reasons}]")
    else:
        line = (f"{result['test']}: {rule.label} {rule.show(value)} {rule.comparison(value)} "
                f"{rule.show(rule.threshold, compact=True)} -> {verdict} ({counts}")
    if result.get("ci95"):
        low, high = result["ci95"]
        line += f", 95% CI {rule.show(low)} to {rule.show(high)}"
    return line + ")"


def _is_submission(reason: str) -> bool:
    try:
        return skip_kind(reason) == SUBMISSION
    except ValueError:  # an unknown reason in a file being reported: shown by the report's checks
        return False


def to_jsonable(value: Any) -> Any:
    """numpy scalars/arrays -> Python, NaN/inf -> None, paths -> str, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _check_arguments(
    rule: Threshold, metric: str, value: float, per_sample: pd.DataFrame,
    n_skipped: int, skipped: dict[str, int], ci95: tuple[float, float] | None, n_in_split: int,
) -> None:
    if metric != rule.metric:
        raise ValueError(f"metric for test {rule.test} is {metric!r}; expected {rule.metric!r}")
    if value is None or math.isnan(float(value)):
        raise RunError(f"{rule.test}: {rule.metric} is undefined (NaN): no sample could be scored")
    rule.check_range(float(value))
    required = list(REQUIRED_COLUMNS[rule.test])
    missing = registry.missing_columns(rule.test, list(per_sample.columns))
    if missing:
        raise ValueError(f"per_sample for {rule.test} lacks columns {', '.join(missing)}; expected {required}")
    skips_by_kind(skipped)  # every reason is in the vocabulary
    if int(n_skipped) != sum(int(v) for v in skipped.values()):
        raise ValueError(f"n_skipped is {n_skipped} but skipped={skipped} sums to {sum(skipped.values())}")
    if len(per_sample) + int(n_skipped) != int(n_in_split):
        raise ValueError(f"coverage: {len(per_sample)} scored + {n_skipped} skipped = "
                         f"{len(per_sample) + int(n_skipped)} samples; the split has {n_in_split}")
    repeats = per_sample["name"].value_counts()
    if len(repeats) and repeats.iloc[0] > 1:
        raise ValueError(f"per_sample name {repeats.index[0]!r} occurs {repeats.iloc[0]} times; "
                         "expected each sample scored once")
    if ci95 is not None and len(ci95) != 2:
        raise ValueError(f"ci95 is {ci95!r}; expected (low, high) or None")
