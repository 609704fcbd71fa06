"""Read result folders and merge them into one report dict (report.json).

A result folder holds ``metrics.json`` (from ``common.verdicts.results.write_results``)
and ``per_sample.csv``. Nothing in metrics.json is taken on trust: the
headline is recomputed from the per-sample file, the verdict from the value,
the skip counts and the suite's own thresholds, and the folder is checked
for integrity (``common.report.checks``); the split's size, the data's skip
counts and the truth are recomputed from the data where its index is at hand,
and each entry's ``data_check`` says whether they were
(``common.report.data_check``). A folder that disagrees with
itself is filed as FAIL with its problems listed, so every verdict in the
report traces back to files and rules.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import __version__
from common.metrics.classification import confusion_matrix, recall_per_class, uar, war
from common.metrics.segmentation import count_classes, iou_from_counts, miou_from_counts
from common.verdicts.provenance import code_version, utc_now
from common.report.checks import check_result, claimed_verdict
from common.report.examples import choose_examples, overlay_rows
from common.report.groups import groups_of
from common.report.data_check import check_against_data
from common.report.checks import number as _number
from common.verdicts.results import (
    EXIT_ERROR,
    RunError,
    exit_code_for,
    to_jsonable,
)
from common.report.result_dir import ResultDir
from common.suite.registry import KEYS, get_test, hook
from common.verdicts.thresholds import FAIL, PASS, Threshold, load_thresholds, passed_of
from common.atomic import write_text_atomic

#: Report files `nia report` writes (and removes first, so a failed report leaves none behind).
REPORT_FILES = ("report.json", "report.md", "report.html")


def split_by_run(result_dirs: list[ResultDir], run_ids: tuple[str, ...]) -> tuple[list[ResultDir], list[dict]]:
    """(the folders written by one of ``run_ids``, one ``{test, source_dir, reason}`` for each other folder).

    A stale folder (an earlier run's metrics.json that could not be removed,
    e.g. a read-only mount) is named for its test only: the tests of this
    run are still filed.
    """
    filed, stale = [], []
    for item in result_dirs:
        run_id = item.result.get("run_id")
        if run_id in run_ids:
            filed.append(item)
        else:
            stale.append(not_filed(item.test, item.directory,
                                   f"{item.directory}: metrics.json is from run {run_id}, not from run "
                                   f"{', '.join(run_ids)}: stale results, not filed"))
    return filed, stale


def not_filed(test: str, directory: Path, reason: str) -> dict[str, str]:
    """A report's record of a test whose folder was not filed, and why (one line)."""
    return {"test": test, "source_dir": str(directory), "reason": reason}


def build_report(result_dirs: list[ResultDir], unfiled: list[dict] | tuple = (),
                 data: tuple[Path, ...] = (), *, anonymise_subjects: bool = False) -> dict[str, Any]:
    """The report dict: overall verdict, one entry per test (in l2cs, rit, dfer order); ``unfiled``: the
    tests of the run whose folder was not filed (`split_by_run`), which have no verdict (exit 2); ``data``:
    the indexes (`nia report --data`) to check the results against (`common.report.data_check`);
    ``anonymise_subjects`` shows subjects as 'subject 01', ... in the group tables (ids otherwise)."""
    seen: dict[str, Path] = {}
    for item in result_dirs:
        if item.test in seen:
            raise RunError(f"{item.directory} and {seen[item.test]} both hold test {item.test}; expected one each")
        seen[item.test] = item.directory
    ordered = sorted(result_dirs, key=lambda r: KEYS.index(r.test))
    rules = load_thresholds()  # the suite's own, never the ones a metrics.json carries
    entries = [_entry(item, rules[item.test], data) for item in ordered]
    for entry, item in zip(entries, ordered):
        entry["groups"] = groups_of(item.test, item.per_sample, entry["details"], rules[item.test],
                                    item.result.get("extra"), anonymise_subjects=anonymise_subjects)
        for key, extra_section in get_test(item.test).extras:
            entry[key] = hook(extra_section)(item.per_sample, rules[item.test], entry)
        entry["examples"] = choose_examples(item.test, item.per_sample if entry["details"] else None,
                                            anonymise_subjects=anonymise_subjects)
        if anonymise_subjects and "overlays" in entry["details"]:
            entry["details"]["overlays"] = None  # the run's file names carry the subjects' ids: see examples
    codes = [entry["exit_code"] for entry in entries] + [EXIT_ERROR for _ in unfiled]
    verdicts = [entry["verdict"] for entry in entries] + ["NOT FILED" for _ in unfiled]
    overall = PASS if verdicts and all(v == PASS for v in verdicts) else FAIL if FAIL in verdicts else "INCOMPLETE"
    return to_jsonable({
        "schema_version": 2,
        "generated_at": utc_now(),
        "report_code_version": code_version(),
        "package_version": __version__,
        "overall_verdict": overall,
        "exit_code": max(codes) if codes else EXIT_ERROR,
        "tests": entries,
        "not_filed": list(unfiled),
    })


def write_report(report: dict[str, Any], result_dirs: list[ResultDir], out_dir: Path | str) -> dict[str, Path]:
    """Write report.json, report.md and report.html into ``out_dir``; return their paths."""
    from common.report.html import render_html
    from common.report.markdown import render_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clear_report(out)
    paths = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
    write_text_atomic(paths["json"], json.dumps(report, indent=2, allow_nan=False) + "\n")
    write_text_atomic(paths["md"], render_markdown(report))
    write_text_atomic(paths["html"], render_html(report, {r.test: r for r in result_dirs}))
    return paths


def clear_report(out_dir: Path | str) -> None:
    """Remove the report files of an earlier `nia report` in ``out_dir``."""
    for name in REPORT_FILES:
        (Path(out_dir) / name).unlink(missing_ok=True)


def _entry(item: ResultDir, rule: Threshold, data: tuple[Path, ...] = ()) -> dict[str, Any]:
    """One test's report entry: the file's numbers under the suite's rule, the recomputed verdict, the problems."""
    result = item.result
    entry = {
        key: result.get(key)
        for key in ("test", "run_id", "value", "n_in_split", "n_samples", "n_skipped", "skipped", "skipped_by_kind",
                    "ci95", "error", "provenance", "extra")
    }
    entry.update({"metric": rule.metric, "label": rule.label, "unit": rule.unit, "display_scale": rule.display_scale,
                  "direction": rule.direction, "threshold": rule.threshold, "official": rule.official,
                  "official_note": rule.official_note})
    entry["value"] = _number(entry["value"])  # a tampered non-number is shown as n/a (and is a problem)
    ci95 = entry["ci95"]
    entry["ci95"] = ci95 if isinstance(ci95, list) and len(ci95) == 2 and all(_number(v) is not None for v in ci95) \
        else None
    entry["source_dir"] = str(item.directory)
    entry["per_sample_found"] = item.per_sample is not None
    try:
        entry["details"] = _details(item) if item.per_sample is not None else {}
        details_problem = None
    except (RunError, KeyError, ValueError) as exc:  # a per_sample.csv that cannot be read as its test's
        entry["details"], details_problem = {}, f"per_sample.csv: {exc}"
    verdict, problems = check_result(result, item.per_sample, item.per_sample_sha256, rule,
                                     entry["details"].get("recomputed_value"))
    problems += [details_problem] if details_problem else []
    data_check = check_against_data(item.test, result, item.per_sample, item.directory, data)
    problems += data_check.problems
    entry["data_check"] = data_check.to_dict()
    entry["claimed_verdict"] = claimed_verdict(result)
    entry["problems"] = problems
    entry["consistent"] = not problems
    entry["verdict"] = FAIL if problems else verdict
    entry["passed"] = passed_of(entry["verdict"])
    entry["exit_code"] = exit_code_for(entry)
    return entry


def _details(item: ResultDir) -> dict[str, Any]:
    """The test's scorer on the folder's per_sample.csv (the registry's, the same the entry point scores with)."""
    extra = item.result.get("extra")
    return get_test(item.test).score(item.per_sample, extra if isinstance(extra, dict) else {})


def gaze_details(per_sample: pd.DataFrame) -> dict[str, Any]:
    """Error statistics overall and per display (``inst``)."""
    errors = per_sample["error_deg"].to_numpy(dtype=float)
    by_inst = per_sample.groupby("inst", dropna=False)["error_deg"].agg(["mean", "count"])
    return {
        "recomputed_value": float(errors.mean()) if errors.size else math.nan,
        "median_deg": float(np.median(errors)) if errors.size else math.nan,
        "p95_deg": float(np.percentile(errors, 95)) if errors.size else math.nan,
        "by_inst": {str(k): {"mean_deg": float(r["mean"]), "n": int(r["count"])} for k, r in by_inst.iterrows()},
    }


def segmentation_details(per_sample: pd.DataFrame, include_background: bool) -> dict[str, Any]:
    """Per-class IoU from summed per-sample intersections/unions; mIoU with and without class 0."""
    classes = count_classes(per_sample.columns)
    missing = [f"union_{c}" for c in classes if f"union_{c}" not in per_sample.columns]
    if missing:
        raise RunError(f"per_sample.csv has inter_ columns without {', '.join(missing)}")
    inter = per_sample[[f"inter_{c}" for c in classes]].to_numpy(dtype=float).sum(axis=0)
    union = per_sample[[f"union_{c}" for c in classes]].to_numpy(dtype=float).sum(axis=0)
    with_bg = miou_from_counts(inter, union, include_background=True)
    without_bg = miou_from_counts(inter, union, include_background=False)
    return {
        "classes": classes,
        "iou_per_class": iou_from_counts(inter, union).tolist(),
        "miou_with_background": with_bg,
        "miou_without_background": without_bg,
        "include_background": include_background,
        "recomputed_value": with_bg if include_background else without_bg,
        "overlays": _overlay_names(per_sample),
    }


def state_details(per_sample: pd.DataFrame, classes: list[str] | None) -> dict[str, Any]:
    """Confusion matrix, per-class recall, WAR and UAR from the pred/truth columns."""
    names = [str(c) for c in classes] if classes else sorted(
        set(per_sample["pred"].astype(str)) | set(per_sample["truth"].astype(str))
    )
    pred = _class_indices(per_sample["pred"], names, "pred")
    truth = _class_indices(per_sample["truth"], names, "truth")
    matrix = confusion_matrix(pred, truth, len(names))
    return {
        "classes": names,
        "confusion_matrix": matrix.tolist(),
        "recall_per_class": recall_per_class(matrix).tolist(),
        "uar": uar(matrix) if matrix.sum() else math.nan,
        "recomputed_value": war(matrix) if matrix.sum() else math.nan,
    }


def _class_indices(column: pd.Series, names: list[str], field: str) -> np.ndarray:
    """Map class names (or integer ids) in a per-sample column to ids 0..len(names)-1."""
    as_text = column.astype(str)
    if as_text.isin(names).all():
        return as_text.map({n: i for i, n in enumerate(names)}).to_numpy(dtype=np.int64)
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all() and numeric.between(0, len(names) - 1).all():
        return numeric.to_numpy(dtype=np.int64)
    bad = as_text[~as_text.isin(names)].iloc[0]
    raise RunError(f"per_sample.csv {field} holds {bad!r}; expected one of {', '.join(names)} or an id")


def _overlay_names(per_sample: pd.DataFrame) -> list[str]:
    """Relative overlay PNG paths of the lowest-IoU samples, if the CSV has an ``overlay`` column."""
    return [str(per_sample["overlay"].iloc[i]) for i in overlay_rows(per_sample)[0]]
