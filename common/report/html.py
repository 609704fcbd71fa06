"""report.html: one self-contained page (inline CSS, plots as base64 PNG, no network)."""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.report import plots
from common.report.tables import VERDICT_HEADER, percent_text, provenance_rows, report_notes, verdict_rows

if TYPE_CHECKING:
    from common.report.merge import ResultDir

_CSS = """
body { font-family: DejaVu Sans, Arial, sans-serif; margin: 24px; color: #222; max-width: 1150px; }
table { border-collapse: collapse; margin: 8px 0 20px; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eee; }
td.PASS { background: #c8e6c9; font-weight: bold; }
td.FAIL { background: #ffcdd2; font-weight: bold; }
td.PARTIAL, td.ERROR { background: #ffe0b2; font-weight: bold; }
.overall-PASS { color: #1b5e20; } .overall-FAIL { color: #b71c1c; } .overall-INCOMPLETE { color: #e65100; }
.problems { color: #b71c1c; }
img { max-width: 100%; margin: 4px 8px 12px 0; border: 1px solid #ddd; }
img.overlay { max-height: 160px; }
td.hash { font-family: monospace; font-size: 11px; word-break: break-all; }
"""


def render_html(report: dict[str, Any], result_dirs: dict[str, ResultDir]) -> str:
    """The whole report page; ``result_dirs`` gives per-sample data for the plots."""
    body = [
        "<h1>NIA eye-dataset validation report</h1>",
        f"<p class='overall-{report['overall_verdict']}'><b>Overall: {report['overall_verdict']}</b> "
        f"(exit code {report['exit_code']}); generated {_e(report['generated_at'])} by code "
        f"{_e(report['report_code_version'])}.</p>",
        "<h2>Verdicts</h2>",
        _table(VERDICT_HEADER, verdict_rows(report), verdict_column=VERDICT_HEADER.index("verdict")),
        "<h2>What was checked</h2>",
        "<ul>" + "".join(f"<li>{_e(line)}</li>" for line in report_notes(report)) + "</ul>",
    ]
    for entry in report["tests"]:
        body += _section(entry, result_dirs.get(entry["test"]))
    header, rows = provenance_rows(report)
    body += ["<h2>Provenance</h2>", _table(header, rows, hash_rows=True)]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>NIA validation report: {report['overall_verdict']}</title><style>{_CSS}</style></head>"
        f"<body>\n{chr(10).join(body)}\n</body></html>\n"
    )


def _section(entry: dict[str, Any], result_dir: ResultDir | None) -> list[str]:
    parts = [f"<h2>{_e(entry['test'])}: {_e(entry.get('label') or entry['metric'])}</h2>"]
    if entry.get("problems"):
        items = "".join(f"<li>{_e(p)}</li>" for p in entry["problems"])
        parts.append(f"<div class='problems'><p><b>This result folder disagrees with itself: filed as FAIL "
                     f"(metrics.json says {_e(entry.get('claimed_verdict'))}).</b></p><ul>{items}</ul></div>")
    details = entry.get("details") or {}
    if result_dir is None or result_dir.per_sample is None:
        return parts + ["<p>per_sample.csv not found: no plots.</p>"]
    if not details:
        return parts + ["<p>per_sample.csv cannot be read as this test's: no plots.</p>"]
    per_sample = result_dir.per_sample
    if entry["test"] == "l2cs":
        parts.append(_img(plots.angular_error_histogram(per_sample["error_deg"].to_numpy(float), entry["threshold"])))
        parts.append(_img(plots.error_by_group(per_sample, "error_deg", "inst", "mean angular error (deg)",
                                               "Angular error by display")))
    elif entry["test"] == "rit":
        parts.append(_img(plots.bars_per_class(_nan(details["iou_per_class"]), details["classes"], "IoU (%)",
                                               "IoU per class (summed over the test set)")))
        parts += _overlays(result_dir.directory, details.get("overlays", []))
    else:
        parts.append(_img(plots.confusion_matrix_plot(details["confusion_matrix"], details["classes"])))
        parts.append(_img(plots.bars_per_class(_nan(details["recall_per_class"]), details["classes"], "recall (%)",
                                               f"Recall per class (UAR {percent_text(details['uar'])})")))
    return parts


def _overlays(directory: Path, names: list[str]) -> list[str]:
    if not names:
        return []
    parts = ["<p>Example overlays (lowest IoU first):</p>", "<div>"]
    from common.report.merge import inside_folder

    for name in names:
        path = inside_folder(directory, str(name))
        if path is None:
            parts.append(f"<p>overlay {_e(name)} named in per_sample.csv lies outside the result folder: "
                         "not shown</p>")
        elif path.is_file():
            parts.append(_img(path.read_bytes(), css_class="overlay", title=name))
        else:
            parts.append(f"<p>overlay {_e(name)} named in per_sample.csv is missing</p>")
    return parts + ["</div>"]


def _table(header: list[str], rows: list[list[str]], *, verdict_column: int | None = None,
           hash_rows: bool = False) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            css = ""
            if i == verdict_column:
                css = f" class='{_e(cell)}'"
            elif hash_rows and row[0].endswith("sha256") and i > 0:
                css = " class='hash'"
            cells.append(f"<td{css}>{_e(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: bytes, *, css_class: str = "", title: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    attrs = f" class='{css_class}'" if css_class else ""
    return f"<img{attrs} alt='{_e(title or 'plot')}' title='{_e(title)}' src='data:image/png;base64,{data}'>"


def _nan(values: list[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
