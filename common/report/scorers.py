"""Each test's scorer as the registry names it: ``(per_sample, extra) -> details``.

The details hold ``recomputed_value``, the value the per-sample file gives,
which ``nia report`` compares with metrics.json's (common.suite.registry).
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from common.report.merge import gaze_details, segmentation_details, state_details
from common.report.sensitivity import gaze_sensitivity as _gaze_sensitivity
from common.report.sensitivity import region_sensitivity as _region_sensitivity
from common.verdicts.thresholds import Threshold


def gaze(per_sample: pd.DataFrame, extra: dict[str, Any]) -> dict[str, Any]:
    """l2cs: the mean angular error and its statistics."""
    return gaze_details(per_sample)


def segmentation(per_sample: pd.DataFrame, extra: dict[str, Any]) -> dict[str, Any]:
    """rit: mIoU from the summed intersections and unions (with the background unless extra says not)."""
    return segmentation_details(per_sample, bool(extra.get("include_background", True)))


def state(per_sample: pd.DataFrame, extra: dict[str, Any]) -> dict[str, Any]:
    """dfer: WAR from the confusion matrix over extra's classes."""
    return state_details(per_sample, extra.get("classes"))


def gaze_sensitivity(per_sample: pd.DataFrame | None, rule: Threshold, entry: dict[str, Any]) -> Any:
    """l2cs's report section ``sensitivity``: its value under each gaze derivation."""
    return _gaze_sensitivity(per_sample, rule, entry.get("provenance"))


def region_sensitivity(per_sample: pd.DataFrame | None, rule: Threshold, entry: dict[str, Any]) -> Any:
    """dfer's report section ``sensitivity``: its value when the clips are cut from other face regions."""
    return _region_sensitivity(per_sample, rule, entry.get("provenance"))
