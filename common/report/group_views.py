"""The "where the error lives" section of a test, as rows of strings (markdown) and HTML with plots.

Reads only report.json's ``groups`` of an entry (`common.report.groups`), so
the page shows exactly what the machine-readable contract holds.
"""
from __future__ import annotations

from typing import Any, Callable

from common.report.groups import show_change
from common.verdicts.results import rule_of
from common.verdicts.thresholds import Threshold

GROUP_HEADER = ["group", "n", "value", "95 % CI", "contribution", "part"]
#: Rows shown per grouping on the page (report.json holds every group).
MAX_ROWS = 20


def group_rows(grouping: dict[str, Any], rule: Threshold) -> list[list[str]]:
    """One row per group (largest contribution first), at most ``MAX_ROWS``."""
    rows = []
    for group in grouping["groups"][:MAX_ROWS]:
        ci = group.get("ci95")
        rows.append([group["group"], str(group["n"]), rule.show(group["value"]),
                     f"{rule.show(ci[0])} to {rule.show(ci[1])}" if ci else "n/a",
                     show_change(rule, group["contribution"], signed=True), rule.show(group["part"])])
    return rows


def more_note(grouping: dict[str, Any]) -> str:
    """'' or how many groups the page leaves to report.json."""
    hidden = len(grouping["groups"]) - MAX_ROWS
    return f"{hidden} more groups with smaller contributions are in report.json." if hidden > 0 else ""


def section_markdown(entry: dict[str, Any], table: Callable[[list[str], list[list[str]]], list[str]]) -> list[str]:
    """Markdown lines of the section; ``table`` renders a header and rows."""
    groups = entry.get("groups")
    lines = ["### Where the error lives", ""]
    if not groups:
        return lines + ["No per-sample data to split by group.", ""]
    if "error" in groups:
        return lines + [f"Groups not computed: {groups['error']}", ""]
    rule = rule_of(entry)
    lines += [*[f"- {item['text']}" for item in groups["top"]], ""] if groups["top"] else []
    for grouping in groups["groupings"]:
        lines += [f"#### By {grouping['title']}", "",
                  f"From {grouping['source']}; CI resamples {grouping['ci_unit']}s.", "",
                  *table(GROUP_HEADER, group_rows(grouping, rule)), ""]
        lines += [more_note(grouping), ""] if more_note(grouping) else []
    return lines + [f"Contribution: {groups['contribution_rule']}", ""]


def section_html(entry: dict[str, Any], escape: Callable[[Any], str]) -> list[str]:
    """HTML parts of the section: the top groups, then per grouping a table whose last column plots the values.

    The plot is drawn in CSS (a bar per group, its 95 % CI as a whisker, the
    overall value as a red line): no image to render or embed, so 250,000 rows
    and hundreds of subjects stay fast and the page light.
    """
    groups = entry.get("groups")
    parts = ["<h3>Where the error lives</h3>"]
    if not groups:
        return parts + ["<p>No per-sample data to split by group.</p>"]
    if "error" in groups:
        return parts + [f"<p>Groups not computed: {escape(groups['error'])}</p>"]
    rule = rule_of(entry)
    if groups["top"]:
        items = "".join(f"<li>{escape(item['text'])}</li>" for item in groups["top"])
        parts.append(f"<ul class='top-groups'>{items}</ul>")
    for grouping in groups["groupings"]:
        parts += [f"<h4>By {escape(grouping['title'])}</h4>",
                  f"<p class='note'>From {escape(grouping['source'])}; CI resamples {escape(grouping['ci_unit'])}s; "
                  f"bars: value, whisker: 95 % CI, red line: overall {escape(rule.show(groups['value']))}. "
                  f"{escape(more_note(grouping))}</p>",
                  _plotted_table(grouping, rule, groups["value"], escape)]
    return parts + [f"<p class='note'>Contribution: {escape(groups['contribution_rule'])}</p>"]


def _plotted_table(grouping: dict[str, Any], rule: Threshold, overall: float, escape: Callable[[Any], str]) -> str:
    shown = grouping["groups"][:MAX_ROWS]
    top = max([overall, *[g["value"] for g in shown if g["value"] is not None],
               *[g["ci95"][1] for g in shown if g.get("ci95")]] + [1e-12])
    head = "".join(f"<th>{escape(h)}</th>" for h in [*GROUP_HEADER, "plot"])
    body = []
    for group, row in zip(shown, group_rows(grouping, rule)):
        cells = "".join(f"<td>{escape(cell)}</td>" for cell in row)
        body.append(f"<tr>{cells}<td class='bar'>{_bar(group, overall, top)}</td></tr>")
    return f"<table class='groups'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _bar(group: dict[str, Any], overall: float, top: float) -> str:
    def at(value: float) -> str:
        return f"{max(0.0, min(100.0, 100.0 * value / top)):.1f}%"

    parts = [f"<span class='overall' style='left:{at(overall)}'></span>"]
    if group["value"] is not None:
        parts.insert(0, f"<span class='fill' style='width:{at(group['value'])}'></span>")
    if group.get("ci95"):
        low, high = group["ci95"]
        parts.append(f"<span class='ci' style='left:{at(low)};width:calc({at(high)} - {at(low)})'></span>")
    return f"<div class='plot'>{''.join(parts)}</div>"
