"""report.html: one self-contained page (inline CSS, plots as base64 PNG, no network)."""
from __future__ import annotations

import base64
import html
import math
from typing import TYPE_CHECKING, Any

from common.report.examples import examples_html
from common.report.group_views import section_html
from common.report.sensitivity import sensitivity_html
from common.suite.registry import get_test, hook
from common.verdicts.results import rule_of
from common.report.tables import VERDICT_HEADER, provenance_rows, report_notes, verdict_rows

if TYPE_CHECKING:
    from common.report.result_dir import ResultDir

_CSS = """
body { font-family: DejaVu Sans, Arial, sans-serif; margin: 24px; color: #222; max-width: 1150px; }
table { border-collapse: collapse; margin: 8px 0 20px; font-size: 13px; max-width: 100%; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { background: #eee; }
td.PASS { background: #c8e6c9; font-weight: bold; }
td.FAIL { background: #ffcdd2; font-weight: bold; }
td.PARTIAL, td.ERROR { background: #ffe0b2; font-weight: bold; }
.overall-PASS { color: #1b5e20; } .overall-FAIL { color: #b71c1c; } .overall-INCOMPLETE { color: #e65100; }
.problems { color: #b71c1c; }
img { max-width: 100%; margin: 4px 8px 12px 0; border: 1px solid #ddd; }
img.overlay { max-height: 160px; }
figure { display: inline-block; margin: 0 12px 8px 0; max-width: 100%; }
figcaption { font-size: 12px; color: #555; max-width: 900px; }
td.hash { font-family: monospace; font-size: 11px; word-break: break-all; }
.note { color: #555; font-size: 12px; }
td.bar { width: 240px; min-width: 240px; }
.plot { position: relative; height: 14px; background: #f4f4f4; }
.plot .fill { position: absolute; left: 0; top: 2px; height: 10px; background: #72b7b2; }
.plot .ci { position: absolute; top: 6px; height: 2px; background: #222; }
.plot .overall { position: absolute; top: 0; height: 14px; border-left: 2px dashed #d62728; }
"""


def render_html(report: dict[str, Any], result_dirs: dict[str, ResultDir]) -> str:
    """The whole report page; ``result_dirs`` gives per-sample data for the plots."""
    body = [
        "<h1>NIA eye-dataset validation report</h1>",
        f"<p class='overall-{report['overall_verdict']}'><b>Overall: {report['overall_verdict']}</b> "
        f"(exit code {report['exit_code']}); generated {escape(report['generated_at'])} by code "
        f"{escape(report['report_code_version'])}.</p>",
        "<h2>Verdicts</h2>",
        table_html(VERDICT_HEADER, verdict_rows(report), verdict_column=VERDICT_HEADER.index("verdict")),
        "<h2>What was checked</h2>",
        "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in report_notes(report)) + "</ul>",
    ]
    for entry in report["tests"]:
        body += _section(entry, result_dirs.get(entry["test"]))
        body += examples_html(entry, result_dirs.get(entry["test"]), img_html, escape)
        body += section_html(entry, escape)
        body += sensitivity_html(entry, rule_of(entry), table_html, escape)
    header, rows = provenance_rows(report)
    body += ["<h2>Provenance</h2>", table_html(header, rows, hash_rows=True)]
    return page(f"NIA validation report: {report['overall_verdict']}", body)


def page(title: str, body: list[str]) -> str:
    """One self-contained HTML page (inline CSS) around ``body``'s parts."""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>\n{chr(10).join(body)}\n</body></html>\n"
    )


def _section(entry: dict[str, Any], result_dir: ResultDir | None) -> list[str]:
    parts = [f"<h2>{escape(entry['test'])}: {escape(entry.get('label') or entry['metric'])}</h2>"]
    if entry.get("problems"):
        items = "".join(f"<li>{escape(p)}</li>" for p in entry["problems"])
        parts.append(f"<div class='problems'><p><b>This result folder disagrees with itself: filed as FAIL "
                     f"(metrics.json says {escape(entry.get('claimed_verdict'))}).</b></p><ul>{items}</ul></div>")
    details = entry.get("details") or {}
    if result_dir is None or result_dir.per_sample is None:
        return parts + ["<p>per_sample.csv not found: no plots.</p>"]
    if not details:
        return parts + ["<p>per_sample.csv cannot be read as this test's: no plots.</p>"]
    return parts + hook(get_test(entry["test"]).section)(entry, result_dir, details)


def table_html(header: list[str], rows: list[list[str]], *, verdict_column: int | None = None,
           hash_rows: bool = False) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            css = ""
            if i == verdict_column:
                css = f" class='{escape(cell)}'"
            elif hash_rows and row[0].endswith("sha256") and i > 0:
                css = " class='hash'"
            cells.append(f"<td{css}>{escape(cell).replace(chr(10), '<br>')}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def img_html(png: bytes, *, css_class: str = "", title: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    attrs = f" class='{css_class}'" if css_class else ""
    return f"<img{attrs} alt='{escape(title or 'plot')}' title='{escape(title)}' src='data:image/png;base64,{data}'>"


def nan_list(values: list[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)
