"""report.md: the verdict table, per-test details and provenance as GitHub markdown."""
from __future__ import annotations

from typing import Any

from common.report.examples import examples_markdown
from common.report.group_views import section_markdown
from common.report.sensitivity import sensitivity_markdown
from common.verdicts.results import rule_of
from common.report.tables import VERDICT_HEADER, percent_text, provenance_rows, report_notes, verdict_rows


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report as markdown (plots are in report.html)."""
    lines = [
        "# NIA eye-dataset validation report",
        "",
        f"Overall: **{report['overall_verdict']}** (exit code {report['exit_code']}); "
        f"generated {report['generated_at']} by code {report['report_code_version']}.",
        "",
        "## Verdicts",
        "",
        *table_markdown(VERDICT_HEADER, verdict_rows(report)),
        "",
        "## What was checked",
        "",
        *[f"- {line}" for line in report_notes(report)],
        "",
    ]
    for entry in report["tests"]:
        lines += _details(entry)
        lines += examples_markdown(entry)
        lines += section_markdown(entry, table_markdown)
        lines += sensitivity_markdown(entry, rule_of(entry), table_markdown)
    header, rows = provenance_rows(report)
    lines += ["## Provenance", "", *table_markdown(header, rows), "", "Plots: see report.html.", ""]
    return "\n".join(lines)


def _details(entry: dict[str, Any]) -> list[str]:
    details = entry.get("details") or {}
    lines = [f"## {entry['test']}: {entry.get('label') or entry['metric']}", ""]
    if entry.get("problems"):
        lines += [f"**This result folder disagrees with itself: filed as FAIL "
                  f"(metrics.json says {entry.get('claimed_verdict')}).**", "",
                  *[f"- {p}" for p in entry["problems"]], ""]
    if not entry.get("per_sample_found"):
        return lines + ["per_sample.csv not found: no details.", ""]
    if "by_inst" in details:
        rows = [[k, f"{v['mean_deg']:.2f}", str(v["n"])] for k, v in details["by_inst"].items()]
        lines += table_markdown(["display (inst)", "mean error (deg)", "n"], rows)
    if "iou_per_class" in details:
        rows = [[c, percent_text(v)] for c, v in zip(details["classes"], details["iou_per_class"])]
        rows += [["mIoU with background", percent_text(details["miou_with_background"])],
                 ["mIoU without background", percent_text(details["miou_without_background"])]]
        lines += table_markdown(["class", "IoU"], rows)
    if "recall_per_class" in details:
        rows = [[c, percent_text(r), str(sum(row))]
                for c, r, row in zip(details["classes"], details["recall_per_class"], details["confusion_matrix"])]
        rows.append(["UAR", percent_text(details["uar"]), ""])
        lines += table_markdown(["class", "recall", "n true"], rows)
    return lines + [""]


def table_markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    def cells(row: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", "<br>") for c in row) + " |"

    return [cells(header), "|" + "---|" * len(header), *[cells(r) for r in rows]]
