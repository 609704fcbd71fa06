"""Each test's plots in report.html, as the registry names them: ``(entry, result_dir, details) -> [html]``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.report import plots
from common.report.html import img_html, nan_list
from common.report.tables import percent_text

if TYPE_CHECKING:
    from common.report.result_dir import ResultDir


def gaze(entry: dict[str, Any], result_dir: ResultDir, details: dict[str, Any]) -> list[str]:
    """l2cs: the error histogram against the threshold and the error per display."""
    per_sample = result_dir.per_sample
    return [img_html(plots.angular_error_histogram(per_sample["error_deg"].to_numpy(float), entry["threshold"])),
            img_html(plots.error_by_group(per_sample, "error_deg", "inst", "mean angular error (deg)",
                                          "Angular error by display"))]


def segmentation(entry: dict[str, Any], result_dir: ResultDir, details: dict[str, Any]) -> list[str]:
    """rit: IoU per class (the overlays of the lowest-IoU samples are its examples: common.report.examples)."""
    return [img_html(plots.bars_per_class(nan_list(details["iou_per_class"]), details["classes"], "IoU (%)",
                                          "IoU per class (summed over the test set)"))]


def state(entry: dict[str, Any], result_dir: ResultDir, details: dict[str, Any]) -> list[str]:
    """dfer: the confusion matrix and the recall per class."""
    return [img_html(plots.confusion_matrix_plot(details["confusion_matrix"], details["classes"])),
            img_html(plots.bars_per_class(nan_list(details["recall_per_class"]), details["classes"], "recall (%)",
                                          f"Recall per class (UAR {percent_text(details['uar'])})"))]
