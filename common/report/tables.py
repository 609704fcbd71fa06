"""The report's two tables as plain rows of strings, shared by markdown and HTML.

Each row shows the suite's rule (the entry carries it, not the file's) and the
verdict `nia report` recomputed; "consistent" lists every problem of a folder
that disagrees with itself (then filed as FAIL).
"""
from __future__ import annotations

import math
from typing import Any

from common.verdicts.results import rule_of

VERDICT_HEADER = ["test", "metric", "value", "95 % CI", "threshold", "official", "verdict", "n", "skipped", "consistent"]
_PROVENANCE_KEYS = (
    "code_version", "device_name", "device", "hostname", "manifest_sha256", "weights_sha256",
    "gaze_method", "classes", "start_time", "end_time", "command",
)


def verdict_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per test: our number next to the threshold and the official result."""
    rows = []
    for entry in report["tests"]:
        rule = rule_of(entry)
        ci = entry.get("ci95")
        consistent = "yes" if entry.get("consistent") else "NO: " + "; ".join(entry.get("problems") or ["unchecked"])
        skipped = ", ".join(f"{k} {v}" for k, v in (entry.get("skipped") or {}).items() if v) or "0"
        rows.append([
            entry["test"],
            rule.label,
            rule.show(entry.get("value")),
            f"{rule.show(ci[0])} to {rule.show(ci[1])}" if ci else "n/a",
            f"{rule.direction} {rule.show(rule.threshold, compact=True)}",
            rule.show(rule.official, compact=True),
            entry["verdict"],
            str(entry["n_samples"]),
            f"{entry['n_skipped']} ({skipped})" if entry["n_skipped"] else "0",
            consistent,
        ])
    return rows


def report_notes(report: dict[str, Any]) -> list[str]:
    """Plain lines on what the report could not file, and on what each verdict was checked against."""
    lines = [f"{item['test']}: not filed, no verdict: {item['reason']}" for item in report.get("not_filed", [])]
    for entry in report["tests"]:
        check = entry.get("data_check") or {}
        lines.append(f"{entry['test']}: {check.get('note') or 'not checked against the data'}")
    return lines


def provenance_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per provenance key, one column per test."""
    header = ["", *[entry["test"] for entry in report["tests"]]]
    keys = list(_PROVENANCE_KEYS)
    for entry in report["tests"]:
        keys += [k for k in (entry.get("provenance") or {}) if k not in keys and k != "libraries"]
    libraries = sorted({lib for e in report["tests"] for lib in (e.get("provenance") or {}).get("libraries", {})})
    rows = []
    for key in keys:
        values = [_text((e.get("provenance") or {}).get(key)) for e in report["tests"]]
        if any(v != "" for v in values):
            rows.append([key, *values])
    for lib in libraries:
        rows.append([lib, *[_text((e.get("provenance") or {}).get("libraries", {}).get(lib)) for e in report["tests"]]])
    rows.append(["run id", *[_text(e.get("run_id")) for e in report["tests"]]])
    rows.append(["result folder", *[e["source_dir"] for e in report["tests"]]])
    return header, rows


def percent_text(value: float | None) -> str:
    """A fraction as '81.20 %'; 'absent' for None/NaN (a class with no pixels or no true samples)."""
    return "absent" if value is None or math.isnan(value) else f"{100 * value:.2f} %"


def _text(value: Any) -> str:
    """A provenance value as text; a mapping as one ``key: value`` line per leaf (nested keys dotted)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return "\n".join(f"{key}: {text}" for key, text in provenance_leaves(value, ""))
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) if not isinstance(v, dict) else "{" + _text(v).replace("\n", "; ") + "}"
                         for v in value)
    return str(value)


def provenance_leaves(mapping: dict[Any, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, text) of every leaf of a nested mapping, in order."""
    leaves: list[tuple[str, str]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            leaves += provenance_leaves(value, f"{name}.")
        else:
            leaves.append((name, _text(value) if not isinstance(value, dict) else ""))
    return leaves
