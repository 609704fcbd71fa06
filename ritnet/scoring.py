"""From class scores to the counts the mIoU is made of, shared by training's
validation and `ritnet/test.py`.

Every prediction is scored at the crop's own pixels (the class-map PNG of
`nia crops`, 160x96 by default), whatever size the network ran at: scores
of a smaller or larger input are resized bilinearly to the crop before the
arg-max, and an original OpenEDS model's frame is mapped back onto the crop
(`ritnet.checkpoint.unframe_scores`). Counts are exact integers: one
`bincount` per batch gives each crop's confusion matrix (rows = truth,
columns = prediction); summed over crops it is the dataset's confusion
matrix, whose diagonal and row + column sums give the intersections and
unions of the mIoU (`common.metrics.segmentation`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.metrics.segmentation import miou_from_counts
from common.engine.loaded import LoadedModel
from ritnet.checkpoint import OPENEDS_CLASSES, Framing, to_nia_classes, unframe_scores

CLASS_NAMES = ("background", "eye_region", "iris")   # NIA class values 0, 1, 2 (per_sample.csv column names)
CPU_FORWARD_BATCH = 4   # crops per forward pass on the CPU (see `for_inference`)


class InChunks(nn.Module):
    """The wrapped network run on `size` items of a batch at a time (outputs concatenated)."""

    def __init__(self, model: nn.Module, size: int) -> None:
        super().__init__()
        self.model, self.size = model, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(part) for part in x.split(self.size)])


def for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """The model on `device` in channels_last, eval mode; on the CPU run a few crops per forward pass.

    DenseNet2D concatenates every stage's activations; for a batch of 32
    160x96 crops they are hundreds of MB and fall out of the CPU caches: on
    2 cores a forward pass of 32 crops took twice as long per crop as 1-4
    crops at a time (bench/bench_rit_valid.py). channels_last was ~20 % faster
    there. Outputs per crop do not depend on the batch (eval mode).
    """
    return chunked_on_cpu(model.to(device).to(memory_format=torch.channels_last).eval(), device)


def chunked_on_cpu(model: nn.Module, device: torch.device) -> nn.Module:
    """The model run `CPU_FORWARD_BATCH` crops at a time on the CPU (see `for_inference`); as it is on a GPU."""
    return InChunks(model, CPU_FORWARD_BATCH) if device.type == "cpu" else model


def confusion_per_crop(pred: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 (N, C * C): each crop's confusion matrix, row-major (truth, prediction), from (N, H, W) maps."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction maps {tuple(pred.shape)} and class maps {tuple(truth.shape)} differ")
    n, cells = pred.shape[0], num_classes * num_classes
    truth = truth.long()
    if truth.numel() and int(truth.max()) >= num_classes:
        raise ValueError(f"class map holds class {int(truth.max())}; expected 0..{num_classes - 1}")
    crop = torch.arange(n, device=pred.device).view(n, *([1] * (pred.dim() - 1)))
    flat = (crop * cells + truth * num_classes + pred.long()).flatten()
    return torch.bincount(flat, minlength=n * cells).view(n, cells)


def intersections_unions(confusion: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(..., C * C) confusion counts -> intersections and unions, each (..., C)."""
    matrix = np.asarray(confusion, dtype=np.float64).reshape(*np.shape(confusion)[:-1], num_classes, num_classes)
    inter = np.diagonal(matrix, axis1=-2, axis2=-1)
    return inter.copy(), matrix.sum(axis=-1) + matrix.sum(axis=-2) - inter


def miou_of_confusion(confusion: np.ndarray, num_classes: int) -> float:
    """mIoU over the classes present (truth or prediction) of one summed confusion matrix."""
    return float(miou_from_counts(*intersections_unions(confusion, num_classes)))


@dataclass(frozen=True)
class Predictor:
    """How a model is fed and how its scores become class maps on the crop."""

    num_classes: int                 # classes of the maps it produces (the NIA's 3 for an OpenEDS model)
    input_width: int
    input_height: int
    framing: Framing | None = None   # set for a 4-class OpenEDS model: run at its own frame, classes mapped

    def class_maps(self, scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, C, h, w) network scores -> (N, H, W) int64 class maps at the crop's (H, W)."""
        if self.framing is not None:
            return to_nia_classes(unframe_scores(scores, self.framing).argmax(dim=1))
        if tuple(scores.shape[-2:]) != tuple(size):
            scores = F.interpolate(scores.float(), size=size, mode="bilinear", align_corners=False)
        return scores.argmax(dim=1)

    def confusion(self, scores: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """float64 (N, C * C) per-crop confusion counts; NaN rows where a crop's scores are not finite."""
        counts = confusion_per_crop(self.class_maps(scores, tuple(truth.shape[-2:])), truth, self.num_classes)
        finite = torch.isfinite(scores).flatten(start_dim=1).all(dim=1)
        counts = counts.double()
        counts[~finite] = float("nan")
        return counts


def predictor_for(loaded: LoadedModel, crop_width: int, crop_height: int, framing: Framing | None) -> Predictor:
    """Ours: the input size of its config. An original state_dict: a 4-class OpenEDS model at `framing`,
    a model of the NIA's 3 classes at the crop's own size. Other class counts are refused."""
    num_classes = loaded.model.num_classes
    if loaded.config is not None:
        return Predictor(num_classes, loaded.config.input_width, loaded.config.input_height)
    if num_classes == len(OPENEDS_CLASSES):
        if framing is None:
            raise ValueError("a 4-class OpenEDS model needs its framing")
        return Predictor(len(CLASS_NAMES), framing.frame_width, framing.frame_height, framing)
    if num_classes == len(CLASS_NAMES):
        return Predictor(num_classes, crop_width, crop_height)
    raise ValueError(f"an original RITnet model of {num_classes} classes: expected 4 (OpenEDS: "
                     f"{', '.join(OPENEDS_CLASSES)}) or 3 (NIA: {', '.join(CLASS_NAMES)})")
