"""Assumption sensitivity: the same l2cs predictions scored under each gaze derivation the suite offers.

The gaze label is derived, not published (docs/gaze.md): `geometric` puts the
eye where the face is, `normal` on the screen's normal. `nia crops` carries
the label under every derivation into the crop index and the l2cs entry
point copies them into per_sample.csv (`true_pitch_<method>`,
`true_yaw_<method>`); this module scores the predictions against each, with
the verdict each would give and the one the test used named. A crop without
a label under a method is left out of that method's row and counted.

dfer's region choice (`labels` or `fixed`) changes what the model sees, so
scoring it under the other choice needs a second model run; it is not here.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from common.metrics.angular import angular_errors_deg
from common.verdicts.thresholds import Threshold

HEADER = ["gaze derivation", "used by the test", "n", "unlabelled", "mean angular error", "verdict"]


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


def _rows(sensitivity: dict[str, Any], rule: Threshold) -> list[list[str]]:
    return [[r["method"], "yes" if r["used"] else "", str(r["n"]), str(r["unlabelled"]), rule.show(r["value"]),
             r["verdict"] or "n/a"] for r in sensitivity["rows"]]


def _sentence(sensitivity: dict[str, Any]) -> str:
    agree = "the verdict holds under every derivation" if sensitivity["verdicts_agree"] else \
        "the verdict depends on the derivation"
    return f"The same predictions scored against the label under each derivation ({agree}; used: " \
           f"{sensitivity['used'] or 'unknown'})."


def sensitivity_markdown(entry: dict[str, Any], rule: Threshold,
                         table: Callable[[list[str], list[list[str]]], list[str]]) -> list[str]:
    sensitivity = entry.get("sensitivity")
    if not sensitivity:
        return []
    return ["### Assumption sensitivity", "", _sentence(sensitivity), "", *table(HEADER, _rows(sensitivity, rule)), ""]


def sensitivity_html(entry: dict[str, Any], rule: Threshold, table: Callable[..., str],
                     escape: Callable[[Any], str]) -> list[str]:
    sensitivity = entry.get("sensitivity")
    if not sensitivity:
        return []
    return ["<h3>Assumption sensitivity</h3>", f"<p>{escape(_sentence(sensitivity))}</p>",
            table(HEADER, _rows(sensitivity, rule), verdict_column=HEADER.index("verdict"))]
