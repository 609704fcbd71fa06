"""metrics.json + per_sample.csv writer, verdict line and exit codes.

Exit codes of every entry point: 0 = PASS, 1 = the metric misses the
threshold (FAIL), 2 = could not run (bad input, missing file, crash), with a
one-line reason on stderr. Any unexpected exception also exits 2, so a crash
can never be read as a FAIL.
"""
from __future__ import annotations

import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from common.atomic import write_text_atomic
from common.provenance import sha256_file, utc_now
from common.verdict import Threshold, default_thresholds_file, threshold_for, threshold_from_entry

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"
PER_SAMPLE_FILE = "per_sample.csv"

#: Columns each test's per_sample.csv must have (rit also needs inter_*/union_* pairs).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "l2cs": ("name", "subject", "inst", "pred_pitch", "pred_yaw", "true_pitch", "true_yaw", "error_deg"),
    "rit": ("name", "subject", "inst"),
    "dfer": ("name", "subject", "inst", "pred", "truth"),
}


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
    extra: dict[str, Any] | None = None,
    thresholds_file: Path | None = None,
) -> dict[str, Any]:
    """Write OUT/metrics.json and OUT/per_sample.csv; return the metrics dict.

    ``value`` (and ``ci95``) are in the unit of the metric function: degrees
    for l2cs, a fraction in [0, 1] for rit (mIoU) and dfer (WAR). ``metric``
    must be the test's metric name in thresholds.json (``mean_angular_error_deg``,
    ``miou``, ``war``). ``n_skipped`` must equal ``sum(skipped.values())``:
    every skipped sample is counted under a reason. Programming errors in
    these arguments raise ValueError; a NaN value raises RunError.
    """
    rule = threshold_for(test, thresholds_file)
    _check_arguments(rule, metric, value, per_sample, n_skipped, skipped, ci95)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_sample_path = out / PER_SAMPLE_FILE
    write_text_atomic(per_sample_path, per_sample.to_csv(index=False, lineterminator="\n"))
    rules_file = Path(thresholds_file) if thresholds_file is not None else default_thresholds_file()
    passed = rule.passes(float(value))
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "test": test,
        "metric": metric,
        "label": rule.label,
        "value": float(value),
        "unit": rule.unit,
        "display_scale": rule.display_scale,
        "direction": rule.direction,
        "threshold": rule.threshold,
        "passed": passed,
        "verdict": "PASS" if passed else "FAIL",
        "n_samples": int(len(per_sample)),
        "n_skipped": int(n_skipped),
        "skipped": {str(k): int(v) for k, v in skipped.items()},
        "ci95": _finite_interval(ci95),
        "ci95_note": _interval_note(ci95, per_sample),
        "n_subjects": int(per_sample["subject"].nunique()) if "subject" in per_sample.columns else None,
        "official": rule.official,
        "official_note": rule.official_note,
        "thresholds_file": str(rules_file),
        "thresholds_sha256": sha256_file(rules_file),
        "per_sample_file": PER_SAMPLE_FILE,
        "per_sample_sha256": sha256_file(per_sample_path),
        "provenance": {**provenance, "end_time": utc_now()},
        "extra": extra or {},
    }
    write_text_atomic(out / METRICS_FILE, json.dumps(to_jsonable(result), indent=2, allow_nan=False) + "\n")
    return result


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


def exit_code_for(result: dict[str, Any]) -> int:
    """0 when the result passed, 1 when it did not, 2 when it has no verdict."""
    passed = result.get("passed")
    if passed is True:
        return EXIT_PASS
    if passed is False:
        return EXIT_FAIL
    return EXIT_ERROR


def rule_of(result: dict[str, Any]) -> Threshold:
    """The threshold rule recorded inside a metrics dict (not re-read from a file)."""
    return threshold_from_entry(result["test"], result, METRICS_FILE)


def verdict_line(result: dict[str, Any]) -> str:
    """One line, e.g. 'l2cs: mean angular error 4.61 deg <= 10 deg -> PASS (n=250000, skipped 0)'."""
    rule = rule_of(result)
    value = float(result["value"]) if result.get("value") is not None else math.nan
    line = (
        f"{result['test']}: {rule.label} {rule.show(value)} {rule.comparison(value)} "
        f"{rule.show(rule.threshold, compact=True)} -> {'PASS' if result.get('passed') else 'FAIL'} "
        f"(n={result['n_samples']}, skipped {result['n_skipped']}"
    )
    if result.get("ci95"):
        low, high = result["ci95"]
        line += f", 95% CI {rule.show(low)} to {rule.show(high)}"
    return line + ")"


def run_entry_point(main_fn: Callable[..., Any]) -> None:
    """Run an entry point and exit with the suite's exit codes; never returns.

    ``main_fn`` is a plain function or a click command (run with
    ``standalone_mode=False`` so that a ClickException exits 2, not click's 1).
    If it returns a metrics dict, its verdict line is printed and the exit code
    follows it; an int is used as the exit code; None means 0. Any exception
    becomes one line on stderr and exit 2 (``NIA_DEBUG=1`` adds the traceback).
    """
    import click

    try:
        if isinstance(main_fn, click.BaseCommand):
            outcome = main_fn.main(standalone_mode=False)
        else:
            outcome = main_fn()
    except SystemExit:
        raise
    except click.exceptions.Abort:
        _fail("aborted")
    except click.ClickException as exc:
        _fail(exc.format_message())
    except (RunError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, ValueError) as exc:
        _fail(str(exc) or type(exc).__name__, exc)
    except KeyboardInterrupt:
        _fail("interrupted")
    except Exception as exc:  # noqa: BLE001 - a crash must exit 2, not Python's 1 (= FAIL)
        _fail(f"internal error: {type(exc).__name__}: {exc} (NIA_DEBUG=1 shows the traceback)", exc)
    if isinstance(outcome, dict):
        print(verdict_line(outcome))
        sys.exit(exit_code_for(outcome))
    sys.exit(int(outcome or 0))


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
    n_skipped: int, skipped: dict[str, int], ci95: tuple[float, float] | None,
) -> None:
    if metric != rule.metric:
        raise ValueError(f"metric for test {rule.test} is {metric!r}; expected {rule.metric!r}")
    if value is None or math.isnan(float(value)):
        raise RunError(f"{rule.test}: {rule.metric} is undefined (NaN): no sample could be scored")
    rule.check_range(float(value))
    required = list(REQUIRED_COLUMNS[rule.test])
    missing = [c for c in required if c not in per_sample.columns]
    if rule.test == "rit" and not any(str(c).startswith("inter_") for c in per_sample.columns):
        missing.append("inter_<class>/union_<class>")
    if missing:
        raise ValueError(f"per_sample for {rule.test} lacks columns {', '.join(missing)}; expected {required}")
    if int(n_skipped) != sum(int(v) for v in skipped.values()):
        raise ValueError(f"n_skipped is {n_skipped} but skipped={skipped} sums to {sum(skipped.values())}")
    if ci95 is not None and len(ci95) != 2:
        raise ValueError(f"ci95 is {ci95!r}; expected (low, high) or None")


def _fail(message: str, exc: BaseException | None = None) -> None:
    if exc is not None and os.environ.get("NIA_DEBUG"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(EXIT_ERROR)

