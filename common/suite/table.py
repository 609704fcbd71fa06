"""The verdict table a suite run ends with, and its exit code.

A test either has a verdict in the merged report (report.json of `nia
report`, which recomputes every verdict) or it has none, with the reason it
could not run (its entry point is missing, its container died, its folder
held an earlier run's stale result, ...). report.json is not taken on trust
either (`check_report`): each verdict must follow from its value, skip counts
and the suite's own threshold, and agree with the result folder it came from
when that folder is at hand; an entry that does not is shown without a
verdict, with the reason. Exit
code: 2 when any test of the run has no PASS/FAIL verdict, else 1 when any
failed, else 0, the suite's rule (0 PASS, 1 FAIL, 2 could not run).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.verdicts.results import EXIT_ERROR, EXIT_FAIL, EXIT_PASS
from common.verdicts.thresholds import FAIL, PARTIAL, PASS, SKIP_REASONS, Threshold, decide, load_thresholds

NO_RESULT = "NO RESULT"


@dataclass(frozen=True)
class Outcome:
    """How one test's run ended: its exit code and, when it wrote no result, why (one line)."""

    test: str
    exit_code: int
    reason: str = ""


_PYTHON_WARNING = re.compile(r"^\S+:\d+: \w*Warning: ")
_NOT_A_REASON = ("make:", "make[", "warning:", "== ", "See 'docker run --help'")


def last_reason(stderr: str) -> str:
    """The line that says why a run stopped: the last ``error:`` line, else the last line that is not make's
    own ('make: *** ...'), a warning (``warning: ...``, or Python's two-line format: its source line is no
    reason), a ``== step`` banner or docker's pointer to its help; else make's last line."""
    lines, after_warning = [], False
    for raw in stderr.splitlines():
        line = raw.strip()
        skip = after_warning and raw[:1].isspace()   # the source line Python prints under a warning
        after_warning = bool(_PYTHON_WARNING.match(line))
        if line and not skip and not after_warning:
            lines.append(line)
    errors = [line for line in lines if line.startswith("error:")]
    own = [line for line in lines if not line.startswith(_NOT_A_REASON)]
    return (errors or own or lines or [""])[-1]


def read_outcomes(suite_dir: Path, tests: list[str]) -> dict[str, Outcome]:
    """Outcomes recorded by `make validate-all`: SUITE_DIR/<test>.exit and <test>.stderr."""
    outcomes = {}
    for test in tests:
        exit_file, stderr_file = suite_dir / f"{test}.exit", suite_dir / f"{test}.stderr"
        stderr = stderr_file.read_text(encoding="utf-8", errors="replace") if stderr_file.is_file() else ""
        code, damaged = read_exit_code(exit_file)
        outcomes[test] = Outcome(test, code, damaged or (last_reason(stderr) if code else ""))
    return outcomes


def read_exit_code(exit_file: Path) -> tuple[int, str]:
    """(the exit code recorded in `exit_file`, ""); (2, "") when there is none; (2, one line naming the file)
    when it holds no number 0-255."""
    if not exit_file.is_file():
        return EXIT_ERROR, ""
    text = exit_file.read_bytes()[:64].decode("utf-8", errors="replace").strip()
    if re.fullmatch(r"[0-9]{1,3}", text) and int(text) <= 255:
        return int(text), ""
    return EXIT_ERROR, f"{exit_file}: not an exit code ({text!r}): this test's run did not record how it ended"


def read_report(report_dir: Path) -> dict[str, Any] | None:
    """report.json of the merged report, or None when no test wrote a result."""
    path = report_dir / "report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def check_report(report: dict[str, Any], results_root: Path) -> dict[str, str]:
    """test -> why its entry in RESULTS_ROOT/report/report.json cannot be shown as it stands (one line).

    The verdict must be the one the suite's threshold gives for the entry's
    value and skip counts (FAIL for an entry marked inconsistent), and, where
    RESULTS_ROOT/<test> holds the result folder, the one `nia report` files
    for that folder now, with the same value and counts.
    """
    from common.report.merge import build_report
    from common.report.result_dir import load_result_dir
    from common.verdicts.results import RunError

    path, rules, doubts = results_root / "report" / "report.json", load_thresholds(), {}
    for entry in report.get("tests", []):
        test, verdict = entry.get("test"), entry.get("verdict")
        if test not in rules:
            continue
        rule, value = rules[test], entry.get("value")
        skipped = {k: v for k, v in (entry.get("skipped") or {}).items() if k in SKIP_REASONS and isinstance(v, int)}
        try:
            expected = FAIL if not entry.get("consistent", False) else decide(
                rule, value if isinstance(value, (int, float)) else None, skipped, allow_partial=verdict == PARTIAL)
        except ValueError as exc:
            expected = f"no verdict ({exc})"
        if verdict != expected:
            shown = rule.show(value if isinstance(value, (int, float)) else None)
            doubts[test] = (f"{path}: {test} says {verdict}, but its value {shown} against {rule.direction} "
                            f"{rule.show(rule.threshold, compact=True)} and its skips give {expected}: "
                            "report.json was edited; rerun nia report")
            continue
        folder = results_root / test
        if not (folder / "metrics.json").is_file():
            continue
        index = (entry.get("data_check") or {}).get("index")   # checked against its run's index only
        try:
            fresh = build_report([load_result_dir(folder)], data=(Path(index),) if isinstance(index, str) and
                                 Path(index).is_file() else ())["tests"][0]
        except (RunError, OSError, ValueError, KeyError) as exc:
            doubts[test] = f"{path}: {test} cannot be checked against {folder}: {exc}"
            continue
        differ = [k for k in ("verdict", "value", "n_in_split", "n_samples", "n_skipped", "skipped", "run_id")
                  if fresh.get(k) != entry.get(k)]
        if differ:
            doubts[test] = (f"{path}: {test}'s {', '.join(differ)} differ from what {folder} gives now "
                            f"({fresh['verdict']}): rerun nia report")
    return doubts


def ci_text(rule: Threshold, ci95: Any) -> str:
    """'6.27-8.62 deg' from a report entry's ci95 (over subjects); 'n/a' when it has none."""
    if not (isinstance(ci95, (list, tuple)) and len(ci95) == 2 and all(isinstance(v, (int, float)) for v in ci95)):
        return "n/a"
    low, high = rule.show(ci95[0]), rule.show(ci95[1])
    return f"{low.rsplit(' ', 1)[0]}-{high}"


def verdict_table(tests: list[str], outcomes: dict[str, Outcome], report: dict[str, Any] | None,
                  doubts: dict[str, str] | None = None) -> tuple[list[str], int]:
    """The table's lines and the run's exit code; ``doubts`` (`check_report`): entries shown without a verdict."""
    doubts = doubts or {}
    entries = {entry["test"]: entry for entry in (report or {}).get("tests", []) if entry["test"] not in doubts}
    unfiled = {item["test"]: item["reason"] for item in (report or {}).get("not_filed", [])}
    rules = load_thresholds()
    rows, codes = [], []
    for test in tests:
        entry = entries.get(test)
        if entry is None:
            outcome = outcomes.get(test, Outcome(test, EXIT_ERROR, "not run"))
            reason = (doubts.get(test) or outcome.reason or unfiled.get(test)
                      or f"exit {outcome.exit_code}, no metrics.json")
            rows.append((test, NO_RESULT, reason, "", "", ""))
            codes.append(EXIT_ERROR)
            continue
        rule = rules[test]
        verdict = entry["verdict"]
        value = rule.show(entry.get("value"))
        if not entry.get("consistent", True):
            value += " (inconsistent: see the report)"
        rows.append((test, verdict, value, ci_text(rule, entry.get("ci95")),
                     f"{rule.direction} {rule.show(rule.threshold, compact=True)}",
                     rule.show(rule.official, compact=True)))
        codes.append(EXIT_PASS if verdict == PASS else EXIT_FAIL if verdict == FAIL else EXIT_ERROR)
    code = EXIT_ERROR if EXIT_ERROR in codes or not codes else EXIT_FAIL if EXIT_FAIL in codes else EXIT_PASS
    header = ("test", "verdict", "value", "95% CI (subjects)", "threshold", "official")
    scored = [header, *(row for row in rows if row[1] != NO_RESULT)]
    widths = [max(len(row[i]) for row in [header, *rows] if i < 2 or row in scored) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        if row[1] == NO_RESULT:
            lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
        else:
            lines.append("  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)).rstrip())
    overall = {EXIT_PASS: "all PASS", EXIT_FAIL: "a test FAILED", EXIT_ERROR: "a test has no verdict"}[code]
    lines.append(f"suite: {overall} (exit {code})")
    return lines, code
