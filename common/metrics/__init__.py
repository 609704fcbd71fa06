"""Metrics shared by the three acceptance tests: pure, typed, tested with known answers.

- angular: mean angular error of gaze (L2CS-Net)
- segmentation: confusion matrix, per-class IoU, mIoU (RIT-Net)
- classification: WAR, UAR, per-class recall, confusion matrix (Former-DFER)
- bootstrap: seeded 95 % CIs over subjects for each headline metric
"""
from common.metrics.angular import angular_errors_deg, mean_angular_error_deg, pitch_yaw_deg_to_vectors
from common.metrics.bootstrap import bootstrap_ci, mean_ci, miou_ci, uar_ci
from common.metrics.classification import confusion_matrix, recall_per_class, uar, war
from common.metrics.segmentation import (
    ConfusionMatrix,
    intersection_union,
    iou_from_counts,
    miou_from_counts,
)

__all__ = [
    "ConfusionMatrix",
    "angular_errors_deg",
    "bootstrap_ci",
    "confusion_matrix",
    "intersection_union",
    "iou_from_counts",
    "mean_angular_error_deg",
    "mean_ci",
    "miou_ci",
    "miou_from_counts",
    "pitch_yaw_deg_to_vectors",
    "recall_per_class",
    "uar",
    "uar_ci",
    "war",
]
