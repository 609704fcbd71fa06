"""compare.json rendered: terminal lines, compare.md and a self-contained compare.html.

The page is a list of blocks (a heading, a paragraph or a table) built once
from compare.json, so markdown and HTML show the same thing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.atomic import write_text_atomic
from common.report.html import escape, page, table_html
from common.report.markdown import table_markdown

#: Rows per table (compare.json holds the counts of everything).
MAX_ROWS = 12
VERDICT_HEADER = ["test", "old verdict", "new verdict", "old value", "new value", "change"]


@dataclass(frozen=True)
class Block:
    kind: str  # "h2", "h3", "p", "table"
    text: str = ""
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


def blocks(result: dict[str, Any]) -> list[Block]:
    """The comparison, in reading order, ending in the one-sentence summary."""
    out = [Block("p", f"Old: {result['old']}. New: {result['new']}."),
           Block("p", f"In short: {result['summary']}."),
           Block("h2", "Verdicts"),
           Block("table", header=tuple(VERDICT_HEADER), rows=tuple(
               (t["test"], str(t["old"]["verdict"]), str(t["new"]["verdict"]), t["old"]["shown"], t["new"]["shown"],
                t["change_shown"]) for t in result["tests"]))]
    for side in ("old", "new"):
        if result[f"only_in_{side}"]:
            out.append(Block("p", f"Only in the {side} run: {', '.join(result[f'only_in_{side}'])}."))
    for test in result["tests"]:
        out += _test_blocks(test)
    out += [Block("h2", "Summary"), Block("p", result["summary"] + ".")]
    return out


def _test_blocks(test: dict[str, Any]) -> list[Block]:
    out = [Block("h2", f"{test['test']}: {test['label']} {test['old']['shown']} -> {test['new']['shown']} "
                       f"({test['change_shown']})")]
    if test["groups"]:
        out.append(Block("h3", "Change by group"))
        out.append(Block("p", "part of change: the group's part of the new value minus its part of the old; "
                              "over the groups of one grouping they sum to the change."))
    for grouping in test["groups"]:
        out.append(Block("p", f"By {grouping['title']}:"))
        out.append(Block("table", header=("group", "n old", "n new", "old value", "new value", "part of change"),
                         rows=tuple((g["group"], str(g["n_old"]), str(g["n_new"]), g["value_old_shown"],
                                     g["value_new_shown"], g["change_shown"])
                                    for g in grouping["groups"][:MAX_ROWS])))
    out += _sample_blocks(test)
    out.append(Block("h3", "Provenance that differs"))
    if test["provenance"]:
        out.append(Block("table", header=("key", "about", "old", "new"),
                         rows=tuple((r["key"], r["kind"], r["old"], r["new"]) for r in test["provenance"])))
    else:
        out.append(Block("p", "None (start and end times aside)."))
    return out


def _sample_blocks(test: dict[str, Any]) -> list[Block]:
    samples = test.get("samples")
    out = [Block("h3", "Samples")]
    if samples is None:
        return out + [Block("p", test.get("samples_note", "not compared"))]
    noun = samples["noun"]
    for side in ("old", "new"):
        only = samples[f"only_in_{side}"]
        listed = f": {', '.join(only['names'])}{', ...' if only['n'] > len(only['names']) else ''}" if only["n"] else ""
        out.append(Block("p", f"{only['n']} {noun} only in the {side} run{listed}."))
    truth = samples.get("truth_changed")
    if truth and truth["n"]:
        out.append(Block("p", f"{truth['n']} {noun} have another truth in the new run: {', '.join(truth['names'])}."))
    flips = samples.get("flipped")
    if flips is not None:
        by_class = ", ".join(f"{k}: {v}" for k, v in flips["by_class"].items()) or "none"
        out.append(Block("p", f"{flips['n']} of {samples['n_common']} clips changed class ({flips['now_right']} now "
                              f"right, {flips['now_wrong']} now wrong); old -> new: {by_class}."))
        if flips["clips"]:
            out.append(Block("table", header=("clip", "truth", "old", "new", "outcome"),
                             rows=tuple((c["name"], c["truth"], c["old"], c["new"], c["outcome"])
                                        for c in flips["clips"])))
        return out
    moved = samples["prediction_moved"]
    out.append(Block("p", f"{moved['n_moved']} of {samples['n_common']} {noun} in both runs moved "
                          f"({moved['measure']}; mean {_number(moved['mean'])})."))
    if moved["largest"]:
        columns = [k for k in moved["largest"][0] if k != "name"]
        out.append(Block("table", header=("name", *columns), rows=tuple(
            (row["name"], *[_number(row[c]) for c in columns]) for row in moved["largest"][:MAX_ROWS])))
    return out


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render_markdown(result: dict[str, Any]) -> str:
    lines = ["# Comparison of two validation runs", ""]
    for block in blocks(result):
        if block.kind == "table":
            lines += [*table_markdown(list(block.header), [list(r) for r in block.rows]), ""]
        else:
            prefix = {"h2": "## ", "h3": "### ", "p": ""}[block.kind]
            lines += [prefix + block.text, ""]
    return "\n".join(lines)


def render_html(result: dict[str, Any]) -> str:
    body = ["<h1>Comparison of two validation runs</h1>"]
    for block in blocks(result):
        if block.kind == "table":
            body.append(table_html(list(block.header), [list(r) for r in block.rows]))
        else:
            body.append(f"<{block.kind}>{escape(block.text)}</{block.kind}>")
    return page("NIA validation: comparison", body)


def terminal_lines(result: dict[str, Any]) -> list[str]:
    """What `nia report --compare` prints: per test the values, the largest group changes and flips; the sentence."""
    lines = []
    for test in result["tests"]:
        lines.append(f"{test['test']}: {test['label']} {test['old']['shown']} ({test['old']['verdict']}) -> "
                     f"{test['new']['shown']} ({test['new']['verdict']}), change {test['change_shown']}")
        largest = sorted(((g, grouping["title"]) for grouping in test["groups"] for g in grouping["groups"][:2]),
                         key=lambda pair: -abs(pair[0]["change"]))[:3]
        if largest and test.get("change"):
            lines.append("  largest group changes: " + ", ".join(
                f"{title} {g['group']} {g['change_shown']}" for g, title in largest))
        flips = (test.get("samples") or {}).get("flipped")
        for clip in (flips or {}).get("clips", [])[:MAX_ROWS]:
            lines.append(f"  {clip['name']}: {clip['old']} -> {clip['new']} (truth {clip['truth']}, {clip['outcome']})")
        for row in test["provenance"]:
            lines.append(f"  {row['kind']}: {row['key']}: {row['old']} -> {row['new']}")
    return lines + [f"in short: {result['summary']}"]


def write_comparison(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """compare.json, compare.md and compare.html in ``out_dir`` (written atomically); their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "compare.json", "md": out / "compare.md", "html": out / "compare.html"}
    write_text_atomic(paths["json"], json.dumps(result, indent=2, allow_nan=False) + "\n")
    write_text_atomic(paths["md"], render_markdown(result))
    write_text_atomic(paths["html"], render_html(result))
    return paths
