"""ritnet.scoring and ritnet.overlays: per-crop confusion counts by hand, scoring at the crop's pixels,
non-finite scores, the overlay picks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from common.metrics.segmentation import ConfusionMatrix
from common.engine.loaded import LoadedModel
from ritnet.checkpoint import openeds_framing
from ritnet.model import DenseNet2D
from ritnet.config import preset
from ritnet.overlays import pick_overlays, render_overlay
from ritnet.scoring import Predictor, confusion_per_crop, intersections_unions, miou_of_confusion, predictor_for

TRUTH = torch.tensor([[[0, 0, 1], [1, 2, 2]], [[0, 0, 0], [0, 0, 0]]])
PRED = torch.tensor([[[0, 1, 1], [1, 2, 0]], [[0, 0, 0], [0, 0, 1]]])


def test_confusion_per_crop_by_hand() -> None:
    counts = confusion_per_crop(PRED, TRUTH, 3)
    # crop 0: truth 0 -> pred 0, 1; truth 1 -> 1, 1; truth 2 -> 2, 0
    assert counts[0].view(3, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert counts[1].view(3, 3).tolist() == [[5, 1, 0], [0, 0, 0], [0, 0, 0]]
    inter, union = intersections_unions(counts.numpy(), 3)
    assert inter.tolist() == [[1, 2, 1], [5, 0, 0]]
    assert union.tolist() == [[3, 3, 2], [6, 1, 0]]
    # summed over crops: the dataset confusion matrix of common.metrics.segmentation
    matrix = ConfusionMatrix(3)
    matrix.update(PRED, TRUTH)
    assert miou_of_confusion(counts.sum(dim=0).numpy(), 3) == pytest.approx(matrix.miou())
    assert miou_of_confusion(counts.sum(dim=0).numpy(), 3) == pytest.approx((6 / 9 + 2 / 4 + 1 / 2) / 3)
    with pytest.raises(ValueError, match="class map holds class 3"):
        confusion_per_crop(PRED, TRUTH + 1, 3)


def test_scores_are_resized_to_the_crop_before_the_argmax() -> None:
    scores = torch.zeros(1, 3, 2, 4)
    scores[0, 0] = 2.5          # background halfway: bilinear upsampling puts the step in the middle
    scores[0, 2, :, 2:] = 5.0   # iris on the right half of a 4x2 output
    truth = torch.zeros(1, 4, 8, dtype=torch.long)
    truth[0, :, 4:] = 2
    predictor = Predictor(3, 4, 2)
    assert torch.equal(predictor.class_maps(scores, (4, 8)), truth)
    counts = predictor.confusion(scores, truth)
    assert counts.dtype == torch.float64 and counts[0].view(3, 3).tolist() == [[16, 0, 0], [0, 0, 0], [0, 0, 16]]
    scores[0, 1, 0, 0] = float("nan")
    assert torch.isnan(predictor.confusion(scores, truth)).all()  # a non-finite crop is not scored


def test_predictor_for_each_kind_of_weights() -> None:
    ours = LoadedModel(DenseNet2D(channels=4), preset("demo", channels=4, input_width=80, input_height=48))
    assert predictor_for(ours, 160, 96, None) == Predictor(3, 80, 48)
    nia_original = LoadedModel(DenseNet2D(channels=4), None)
    assert predictor_for(nia_original, 160, 96, None) == Predictor(3, 160, 96)
    framing = openeds_framing(160, 96)
    openeds = LoadedModel(DenseNet2D(num_classes=4, channels=4), None)
    assert predictor_for(openeds, 160, 96, framing) == Predictor(3, 400, 640, framing)
    with pytest.raises(ValueError, match="of 5 classes: expected 4"):
        predictor_for(LoadedModel(DenseNet2D(num_classes=5, channels=4), None), 160, 96, None)


def test_overlay_picks_worst_median_best_by_crop_miou() -> None:
    # crop k: k pixels right of 10 background pixels (IoU of background 1, of class 1 k / 10)
    confusion = np.zeros((7, 9))
    for k in range(7):
        confusion[k, 0], confusion[k, 4], confusion[k, 3] = 10, k, 10 - k
    names = [f"c{k}" for k in range(7)]
    picks = pick_overlays(names, confusion, 3)
    assert picks == {0: "overlays/worst_c0.png", 1: "overlays/worst_c1.png", 2: "overlays/median_c2.png",
                     3: "overlays/median_c3.png", 6: "overlays/best_c6.png", 5: "overlays/best_c5.png"}
    assert pick_overlays(names[:2], confusion[:2], 3) == {0: "overlays/worst_c0.png", 1: "overlays/worst_c1.png"}
    assert pick_overlays(["a/b c"], confusion[:1], 3) == {0: "overlays/worst_a_b_c.png"}


def test_overlay_image_shows_crop_truth_and_prediction() -> None:
    truth = np.zeros((16, 32), np.uint8)
    truth[4:12, 8:24] = 1
    pred = np.zeros_like(truth)
    pred[4:12, 8:24] = 2
    image = render_overlay(np.full((16, 32), 100, np.uint8), truth, pred, "x")
    assert image.shape == (16 + 14, 3 * 32 + 4, 3)
    assert tuple(image[8, 0]) == (100, 100, 100)                       # the crop as it is
    assert image[8, 34 + 16, 1] > image[8, 34 + 16, 2]                  # truth: eye region green
    assert image[8, 68 + 16, 2] > image[8, 68 + 16, 1]                  # prediction: iris red
