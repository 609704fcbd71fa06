"""Assumption sensitivity: the verdict under each choice a test's number rests on, one table per test.

l2cs: the same predictions scored under each gaze derivation the suite offers.

The gaze label is derived, not published (docs/gaze.md): `geometric` puts the
eye where the face is, `normal` on the screen's normal. `nia crops` carries
the label under every derivation into the crop index and the l2cs entry
point copies them into per_sample.csv (`true_pitch_<method>`,
`true_yaw_<method>`); this module scores the predictions against each, with
the verdict each would give and the one the test used named. A crop without
a label under a method is left out of that method's row and counted.

dfer: the region each clip is cut from changes what the model sees, so
`dfer/valid_nia.py --region-sensitivity` runs the model again with each
clip cut the other ways `dfer.regions` offers (the frame's centred square,
the square scaled or shifted) and writes those predictions beside its own
(`pred_region_<variant>`); this module scores each against the same truth.
A clip a variant's run could not read is left out of that variant's row and
counted.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from common.metrics.angular import angular_errors_deg
from common.verdicts.thresholds import Threshold

HEADER = ["gaze derivation", "used by the test", "n", "unlabelled", "mean angular error", "verdict"]
REGION_HEADER = ["clip region", "used by the test", "n", "unscored", "WAR", "verdict"]
REGION_PREFIX = "pred_region_"  # per_sample.csv's column of a region variant's predictions (dfer/regions.py)
AS_INDEXED = "as indexed"


def gaze_sensitivity(per_sample: pd.DataFrame | None, rule: Threshold, provenance: dict[str, Any] | None
                     ) -> dict[str, Any] | None:
    """report.json's ``sensitivity`` of the l2cs entry; None without per-method labels in per_sample.csv."""
    if per_sample is None or per_sample.empty:
        return None
    methods = [c[len("true_pitch_"):] for c in per_sample.columns
               if c.startswith("true_pitch_") and f"true_yaw_{c[len('true_pitch_'):]}" in per_sample.columns]
    if not methods:
        return None
    facts = provenance or {}
    used = facts.get("gaze_method") or (facts.get("crop_index") or {}).get("nia.gaze_method")
    pred = per_sample[["pred_pitch", "pred_yaw"]].to_numpy(dtype=np.float64)
    rows = []
    for method in methods:
        truth = per_sample[[f"true_pitch_{method}", f"true_yaw_{method}"]].to_numpy(dtype=np.float64)
        labelled = np.isfinite(truth).all(axis=1)
        value = float(angular_errors_deg(pred[labelled], truth[labelled]).mean()) if labelled.any() else None
        rows.append({"method": method, "used": method == used, "n": int(labelled.sum()),
                     "unlabelled": int((~labelled).sum()), "value": value,
                     "verdict": None if value is None else ("PASS" if rule.passes(value) else "FAIL")})
    return {"assumption": "gaze derivation (docs/gaze.md)", "used": used, "rows": rows,
            "verdicts_agree": len({r["verdict"] for r in rows if r["verdict"]}) <= 1}


def region_sensitivity(per_sample: pd.DataFrame | None, rule: Threshold, provenance: dict[str, Any] | None = None
                       ) -> dict[str, Any] | None:
    """report.json's ``sensitivity`` of the dfer entry: WAR with each clip's own region (``as indexed``) and
    with each variant's predictions; None without ``pred_region_`` columns in per_sample.csv."""
    if per_sample is None or per_sample.empty:
        return None
    variants = [c[len(REGION_PREFIX):] for c in per_sample.columns if c.startswith(REGION_PREFIX)]
    if not variants:
        return None
    truth = per_sample["truth"].astype(str).to_numpy()
    rows = []
    for name, column in [(AS_INDEXED, "pred"), *((v, REGION_PREFIX + v) for v in variants)]:
        pred = per_sample[column]
        known = (pred.notna() & (pred.astype(str) != "")).to_numpy()
        value = float((pred.astype(str).to_numpy()[known] == truth[known]).mean()) if known.any() else None
        rows.append({"method": name, "used": name == AS_INDEXED, "n": int(known.sum()),
                     "unlabelled": int((~known).sum()), "value": value,
                     "verdict": None if value is None else ("PASS" if rule.passes(value) else "FAIL")})
    return {"assumption": "clip region (dfer/regions.py)", "used": AS_INDEXED, "rows": rows,
            "verdicts_agree": len({r["verdict"] for r in rows if r["verdict"]}) <= 1}


def _header(sensitivity: dict[str, Any]) -> list[str]:
    return REGION_HEADER if str(sensitivity.get("assumption", "")).startswith("clip region") else HEADER


def _rows(sensitivity: dict[str, Any], rule: Threshold) -> list[list[str]]:
    return [[r["method"], "yes" if r["used"] else "", str(r["n"]), str(r["unlabelled"]), rule.show(r["value"]),
             r["verdict"] or "n/a"] for r in sensitivity["rows"]]


def _sentence(sensitivity: dict[str, Any]) -> str:
    if _header(sensitivity) is REGION_HEADER:
        agree = "the verdict holds under every region" if sensitivity["verdicts_agree"] else \
            "the verdict depends on the region"
        return f"The same clips and model, each clip cut from another region ({agree}; used: each clip's " \
               f"region as `nia clips` chose it)."
    agree = "the verdict holds under every derivation" if sensitivity["verdicts_agree"] else \
        "the verdict depends on the derivation"
    return f"The same predictions scored against the label under each derivation ({agree}; used: " \
           f"{sensitivity['used'] or 'unknown'})."


def sensitivity_markdown(entry: dict[str, Any], rule: Threshold,
                         table: Callable[[list[str], list[list[str]]], list[str]]) -> list[str]:
    sensitivity = entry.get("sensitivity")
    if not sensitivity:
        return []
    return ["### Assumption sensitivity", "", _sentence(sensitivity), "",
            *table(_header(sensitivity), _rows(sensitivity, rule)), ""]


def sensitivity_html(entry: dict[str, Any], rule: Threshold, table: Callable[..., str],
                     escape: Callable[[Any], str]) -> list[str]:
    sensitivity = entry.get("sensitivity")
    if not sensitivity:
        return []
    return ["<h3>Assumption sensitivity</h3>", f"<p>{escape(_sentence(sensitivity))}</p>",
            table(_header(sensitivity), _rows(sensitivity, rule), verdict_column=HEADER.index("verdict"))]
