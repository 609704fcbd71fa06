"""`nia report --compare OLD NEW`: what moved between two runs, and why.

Each side is a result folder of one test, a folder of result folders (e.g.
build/results), or a merged report (its folder or report.json). Result
folders are merged as `nia report` merges them (verdicts recomputed, group
tables computed); a merged report is taken as filed, with the per-sample
rows of its result folders where they are still there.

Per test in both runs: the verdicts and values side by side; the change
split by group (each group's part of the value in each run: the parts sum to
the value, so part_new - part_old sums to the change, `common.report.groups`);
the samples present in one run only; the samples whose prediction moved most
(l2cs: the angle between the two predictions; rit: the change of the crop's
mIoU; dfer: every clip whose class flipped, with the truth); samples whose
truth differs. Then the provenance diff of every leaf (code, weights,
manifest and data hashes, libraries, device, ...) and one plain sentence
naming what differs and what changed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.metrics.angular import angular_errors_deg
from common.metrics.segmentation import miou_from_counts
from common.report.groups import show_change
from common.report.merge import build_report
from common.report.result_dir import load_result_dir
from common.report.tables import provenance_leaves
from common.verdicts.results import METRICS_FILE, RunError, rule_of, to_jsonable
from common.suite.registry import KEYS as TESTS, get_test, hook

#: Samples listed per kind of change (report.json-like compare.json holds the counts of all).
N_LISTED = 20
#: Provenance keys that differ on every run and say nothing about the result.
VOLATILE = ("start_time", "end_time")
#: What a provenance key is about, by its first dotted part (else "other").
KINDS = {
    "data": ("manifest_sha256", "manifest_path", "crop_index", "split", "data_sha256", "gaze_method",
             "gaze_profile_sha256", "classes", "clip_index"),
    "code": ("code_version", "libraries", "package_version"),
    "weights": ("weights_sha256", "weights_path", "model"),
    "machine": ("device", "device_name", "hostname", "threads", "env", "command", "cores"),
}
KIND_ORDER = ("data", "code", "weights", "machine")


@dataclass
class Side:
    """One run: its report entries by test and, where found, each test's per-sample rows."""

    path: Path
    entries: dict[str, dict[str, Any]]
    per_sample: dict[str, pd.DataFrame | None] = field(default_factory=dict)


def load_side(path: Path, *, anonymise_subjects: bool = False) -> Side:
    """A result folder, a folder of them, or a merged report (folder or report.json); RunError otherwise."""
    report_json = path if path.is_file() else path / "report.json"
    if path.is_file() or (report_json.is_file() and not (path / METRICS_FILE).is_file()):
        return _side_of_report(path, report_json)
    folders = [path] if (path / METRICS_FILE).is_file() else sorted(
        p for p in path.iterdir() if p.is_dir() and (p / METRICS_FILE).is_file())
    if not folders:
        raise RunError(f"{path}: neither a result folder (metrics.json), a folder of result folders, "
                       f"nor a merged report (report.json)")
    loaded = [load_result_dir(folder) for folder in folders]
    report = build_report(loaded, anonymise_subjects=anonymise_subjects)
    return Side(path, {e["test"]: e for e in report["tests"]}, {r.test: r.per_sample for r in loaded})


def _side_of_report(path: Path, report_json: Path) -> Side:
    try:
        report = json.loads(report_json.read_text(encoding="utf-8"))
        entries = {str(e["test"]): e for e in report["tests"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{report_json}: not a merged report written by nia report ({exc})") from exc
    per_sample: dict[str, pd.DataFrame | None] = {}
    for test, entry in entries.items():
        source = Path(str(entry.get("source_dir", "")))
        per_sample[test] = _per_sample_or_none(source)
    return Side(path, entries, per_sample)


def _per_sample_or_none(folder: Path) -> pd.DataFrame | None:
    if not (folder / METRICS_FILE).is_file():
        return None
    try:
        return load_result_dir(folder).per_sample
    except RunError:
        return None


def compare(old: Side, new: Side) -> dict[str, Any]:
    """compare.json: per test verdicts, group changes, sample changes, provenance diff; and the sentence."""
    tests = [t for t in TESTS if t in old.entries and t in new.entries]
    compared = [compare_test(old.entries[t], new.entries[t], old.per_sample.get(t), new.per_sample.get(t))
                for t in tests]
    result = {
        "schema_version": 1,
        "old": str(old.path),
        "new": str(new.path),
        "only_in_old": [t for t in TESTS if t in old.entries and t not in new.entries],
        "only_in_new": [t for t in TESTS if t in new.entries and t not in old.entries],
        "tests": compared,
    }
    result["differs"] = what_differs(compared)
    result["summary"] = summary_sentence(result)
    return to_jsonable(result)


def compare_test(old: dict[str, Any], new: dict[str, Any], old_rows: pd.DataFrame | None,
                 new_rows: pd.DataFrame | None) -> dict[str, Any]:
    """One test's comparison."""
    rule = rule_of(new)
    sides = {name: {"verdict": e.get("verdict"), "value": e.get("value"), "shown": rule.show(e.get("value")),
                    "ci95": e.get("ci95"), "n_samples": e.get("n_samples"), "n_skipped": e.get("n_skipped")}
             for name, e in (("old", old), ("new", new))}
    change = (new["value"] - old["value"]) if new.get("value") is not None and old.get("value") is not None \
        else None
    out: dict[str, Any] = {"test": new["test"], "label": rule.label, "old": sides["old"], "new": sides["new"],
                           "change": change, "change_shown": show_change(rule, change, signed=True)
                           if change is not None else "n/a",
                           "groups": group_changes(old.get("groups"), new.get("groups")),
                           "provenance": provenance_diff(old.get("provenance"), new.get("provenance"))}
    for grouping in out["groups"]:
        for row in grouping["groups"]:
            row.update({"value_old_shown": rule.show(row["value_old"]), "value_new_shown": rule.show(row["value_new"]),
                        "change_shown": show_change(rule, row["change"], signed=True)})
    if old_rows is None or new_rows is None:
        out["samples"] = None
        out["samples_note"] = "per-sample rows of one run not found: samples not compared"
    else:
        out["samples"] = sample_changes(new["test"], old_rows, new_rows)
    return out


def group_changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per grouping in both runs: each group's value in each run and its part of the change."""
    if not old or not new or "error" in old or "error" in new:
        return []
    old_by_key = {g["key"]: g for g in old["groupings"]}
    changes = []
    for grouping in new["groupings"]:
        before = {g["group"]: g for g in old_by_key.get(grouping["key"], {}).get("groups", [])}
        after = {g["group"]: g for g in grouping["groups"]}
        rows = []
        for label in sorted(set(before) | set(after)):
            a, b = before.get(label, {}), after.get(label, {})
            rows.append({"group": label, "n_old": a.get("n", 0), "n_new": b.get("n", 0),
                         "value_old": a.get("value"), "value_new": b.get("value"),
                         "change": _number(b.get("part")) - _number(a.get("part"))})
        rows.sort(key=lambda r: (-abs(r["change"]), r["group"]))
        changes.append({"key": grouping["key"], "title": grouping["title"], "groups": rows})
    return changes


def _number(value: Any) -> float:
    return 0.0 if value is None else float(value)


def sample_changes(test: str, old: pd.DataFrame, new: pd.DataFrame) -> dict[str, Any]:
    """Samples in one run only, samples whose truth differs, and the predictions that moved most."""
    old_names, new_names = old["name"].astype(str), new["name"].astype(str)
    only_old = old_names[~old_names.isin(set(new_names))]
    only_new = new_names[~new_names.isin(set(old_names))]
    both = old.assign(name=old_names).merge(new.assign(name=new_names), on="name", suffixes=("_old", "_new"))
    out: dict[str, Any] = {
        "noun": get_test(test).sample_noun, "n_common": len(both),
        "only_in_old": {"n": len(only_old), "names": sorted(only_old)[:N_LISTED]},
        "only_in_new": {"n": len(only_new), "names": sorted(only_new)[:N_LISTED]},
    }
    changes = get_test(test).changes
    if changes is not None:
        out.update(hook(changes)(both))
    return out


def gaze_changes(both: pd.DataFrame) -> dict[str, Any]:
    def pair(prefix: str, side: str) -> np.ndarray:
        return both[[f"{prefix}_pitch_{side}", f"{prefix}_yaw_{side}"]].to_numpy(dtype=np.float64)

    moved = angular_errors_deg(pair("pred", "old"), pair("pred", "new")) if len(both) else np.empty(0)
    changed = np.abs(pair("pred", "old") - pair("pred", "new")).max(axis=1, initial=0.0) > 1e-9
    order = np.argsort(-np.where(changed, moved, -1.0), kind="stable")[:N_LISTED]
    rows = [{"name": both["name"].iat[i], "moved_deg": float(moved[i]),
             "error_old": float(both["error_deg_old"].iat[i]), "error_new": float(both["error_deg_new"].iat[i])}
            for i in order if changed[i]]
    changed_truth = np.abs(pair("true", "old") - pair("true", "new")).max(axis=1, initial=0.0) > 1e-9
    return {"prediction_moved": {"measure": "angle between the two predictions (deg)",
                                 "n_moved": int(changed.sum()),
                                 "mean": float(moved.mean()) if moved.size else None, "largest": rows},
            "truth_changed": {"n": int(changed_truth.sum()), "names": list(both["name"][changed_truth][:N_LISTED])}}


def segmentation_changes(both: pd.DataFrame) -> dict[str, Any]:
    classes = [c[len("inter_"):-len("_new")] for c in both.columns if c.startswith("inter_") and c.endswith("_new")]

    def miou(side: str) -> np.ndarray:
        inter = both[[f"inter_{c}_{side}" for c in classes]].to_numpy(dtype=np.float64)
        union = both[[f"union_{c}_{side}" for c in classes]].to_numpy(dtype=np.float64)
        return np.atleast_1d(miou_from_counts(inter, union))

    before, after = (miou("old"), miou("new")) if len(both) else (np.empty(0), np.empty(0))
    moved = np.nan_to_num(np.abs(after - before))
    order = np.argsort(-moved, kind="stable")[:N_LISTED]
    rows = [{"name": both["name"].iat[i], "miou_old": float(before[i]), "miou_new": float(after[i])}
            for i in order if moved[i] > 0]
    return {"prediction_moved": {"measure": "change of the crop's own mIoU", "n_moved": int((moved > 1e-9).sum()),
                                 "mean": float(moved.mean()) if moved.size else None, "largest": rows}}


def state_changes(both: pd.DataFrame) -> dict[str, Any]:
    pred_old, pred_new = both["pred_old"].astype(str), both["pred_new"].astype(str)
    truth = both["truth_new"].astype(str)
    flipped = (pred_old != pred_new).to_numpy()
    outcome = np.where(pred_new == truth, "now right", np.where(pred_old == truth, "now wrong", "still wrong"))
    rows = [{"name": both["name"].iat[i], "truth": truth.iat[i], "old": pred_old.iat[i], "new": pred_new.iat[i],
             "outcome": str(outcome[i])} for i in np.flatnonzero(flipped)]
    rows.sort(key=lambda r: (r["outcome"], r["name"]))
    transitions = pd.Series([f"{r['old']} -> {r['new']}" for r in rows], dtype=object).value_counts()
    changed_truth = (both["truth_old"].astype(str) != truth).to_numpy()
    return {"flipped": {"n": len(rows), "now_right": int(sum(r["outcome"] == "now right" for r in rows)),
                        "now_wrong": int(sum(r["outcome"] == "now wrong" for r in rows)),
                        "by_class": {str(k): int(v) for k, v in transitions.items()}, "clips": rows[:100]},
            "truth_changed": {"n": int(changed_truth.sum()), "names": list(both["name"][changed_truth][:N_LISTED])}}


def provenance_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[dict[str, str]]:
    """Every provenance leaf whose text differs (times left out), with what it is about."""
    before = dict(provenance_leaves(old or {}))
    after = dict(provenance_leaves(new or {}))
    rows = []
    for key in list(dict.fromkeys([*before, *after])):
        if key.split(".")[0] in VOLATILE or before.get(key, "") == after.get(key, ""):
            continue
        rows.append({"key": key, "kind": kind_of(key), "old": before.get(key, "(absent)"),
                     "new": after.get(key, "(absent)")})
    return rows


def kind_of(key: str) -> str:
    """data / code / weights / machine / other, from the key's first dotted part."""
    head = key.split(".")[0]
    return next((kind for kind, heads in KINDS.items() if head in heads), "other")


def what_differs(compared: list[dict[str, Any]]) -> dict[str, bool]:
    """Per kind, whether any test's runs differ in it (data also when the samples or their truths differ).

    Paths and the command line are not differences by themselves (the same file may sit elsewhere);
    their hashes are.
    """
    differs = {kind: False for kind in KIND_ORDER}
    for test in compared:
        for row in test["provenance"]:
            if row["kind"] in differs and not row["key"].endswith("_path") and row["key"] not in ("command",
                                                                                               "hostname"):
                differs[row["kind"]] = True
        samples = test.get("samples") or {}
        if samples and (samples["only_in_old"]["n"] or samples["only_in_new"]["n"]
                        or (samples.get("truth_changed") or {}).get("n")):
            differs["data"] = True
    return differs


def summary_sentence(result: dict[str, Any]) -> str:
    """E.g. 'same data and code, different weights: dfer: 4 clips changed class: a (F -> D), ...'."""
    same = [k for k in KIND_ORDER if not result["differs"][k]]
    different = [k for k in KIND_ORDER if result["differs"][k]]
    head = ", ".join(part for part in (
        f"same {_and(same)}" if same else "", f"different {_and(different)}" if different else "") if part)
    changes = [_test_change(test) for test in result["tests"]]
    return f"{head}: {'; '.join(changes)}" if changes else f"{head}: no test in both runs"


def _test_change(test: dict[str, Any]) -> str:
    samples = test.get("samples") or {}
    flips = samples.get("flipped")
    if flips and flips["n"]:
        named = ", ".join(f"{c['name']} ({c['old']} -> {c['new']})" for c in flips["clips"][:4])
        more = ", ..." if flips["n"] > 4 else ""
        text = (f"{flips['n']} clip{'s' if flips['n'] != 1 else ''} changed class "
                f"({flips['now_right']} now right, {flips['now_wrong']} now wrong): {named}{more}")
    else:
        text = (f"{test['label']} {test['old']['shown']} -> {test['new']['shown']} ({test['change_shown']})"
                if test.get("change") else f"{test['label']} unchanged at {test['new']['shown']}")
        if flips is not None:
            text += ", no clip changed class"
    verdicts = (f"{test['old']['verdict']} -> {test['new']['verdict']}" if test["old"]["verdict"] !=
                test["new"]["verdict"] else f"still {test['new']['verdict']}")
    top = _largest_group_change(test)
    return f"{test['test']} ({verdicts}): {text}{top}"


def _largest_group_change(test: dict[str, Any]) -> str:
    rows = [(g, grouping) for grouping in test["groups"] if grouping["key"] != "subject" and len(grouping["groups"]) > 1
            for g in grouping["groups"][:1] if g["change"]]
    if not rows or not test.get("change"):
        return ""
    g, grouping = max(rows, key=lambda pair: abs(pair[0]["change"]))
    return f", most from {grouping['title']} {g['group']} ({g['change_shown']})"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def load_pair(old: Path, new: Path, *, anonymise_subjects: bool = False) -> tuple[Side, Side]:
    """Both sides, or RunError naming the path that is neither kind of input."""
    return (load_side(old, anonymise_subjects=anonymise_subjects),
            load_side(new, anonymise_subjects=anonymise_subjects))
