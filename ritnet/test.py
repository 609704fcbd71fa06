"""Acceptance test 2: RIT-Net eye segmentation, mIoU on a crop dataset split.

Reads the per-eye crops (`r_eye`, `l_eye`) of one split, predicts class
maps with the given weights (ours, or an original RITnet state_dict: a
4-class OpenEDS model runs at its own framing and is scored on the NIA
classes by the documented mapping, `ritnet.checkpoint`), or reads class-map
PNGs made elsewhere (`--predictions DIR`), and scores the mIoU over the 3
classes (background, eye region, iris) from one confusion matrix summed over
the split at each crop's own pixels, with per-class IoU and a 95 % CI over
subjects. Writes OUT/metrics.json, OUT/per_sample.csv (each crop's
per-class intersections and unions) and a few example overlays
(OUT/overlays/: worst, median and best crops; `nia report` shows them). The
skeleton (options, data, skips, provenance, results, exit codes 0 PASS /
1 FAIL / 2 no verdict) is the shared one of `common.engine.validate`.

Speed: OpenCV decode, gamma table and CLAHE run in DataLoader workers; the
network runs in channels_last under `torch.inference_mode` (on the CPU 4
crops per forward pass, `ritnet.scoring.for_inference`); the arg-max and the
per-crop confusion counts (one bincount per batch) run on the device.
"""
from __future__ import annotations

from common.script import start_script

start_script(__package__, __file__)  # first: the repo root on sys.path, OpenMP's wait policy before torch loads

from dataclasses import asdict  # noqa: E402
from functools import partial
from pathlib import Path
from typing import Any

import click
import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from common.imread import read_image
from common.cli.entry import run_entry_point, validation_options
from common.cli.prepared_input import resolve_crops
from common.engine.batches import worker_init
from common.engine.device import set_cudnn_mode
from common.engine.inference import run_inference
from common.engine.validate import Options, Predicted, ValidationTask, model_skips, run_validation
from common.metrics.bootstrap import miou_ci
from common.metrics.segmentation import iou_from_counts, miou_from_counts
from common.targets.crop_rows import CropRows
from common.verdicts.results import metric_of
from common.verdicts.submissions import KEYS_HELP, ExpectedNames, find_segmentation_predictions, load_class_map
from common.engine.loaded import LoadedModel
from ritnet.checkpoint import OPENEDS_CLASSES, frame_crop, load_model, openeds_framing
from ritnet.dataset import (CropGeometry, ScoringCrops, crop_geometry, prepare_batch, read_class_map,
                            read_seg_crops)
from ritnet.overlays import crop_miou, pick_overlays, save_overlay
from ritnet.scoring import (CLASS_NAMES, Predictor, confusion_per_crop, for_inference, intersections_unions,
                            predictor_for)

NUM_CLASSES = len(CLASS_NAMES)


def predictor_of(loaded: LoadedModel, geometry: CropGeometry) -> tuple[Predictor, dict[str, Any]]:
    """The predictor for these weights on crops of this geometry, and what it was (for metrics.json)."""
    framing = None
    model = loaded.model
    facts: dict[str, Any] = {**loaded.facts, "model_config": loaded.config.to_dict() if loaded.config else None,
                             "num_classes": model.num_classes, "channels": model.channels,
                             "scored_at": f"{geometry.width}x{geometry.height}"}
    if loaded.config is None and model.num_classes == len(OPENEDS_CLASSES):
        framing = openeds_framing(geometry.width, geometry.height, margin=geometry.margin)
        facts["openeds"] = {"framing": asdict(framing), "margin_source": geometry.margin_source,
                            "class_mapping": "background->background, sclera->eye region, iris+pupil->iris"}
    predictor = predictor_for(loaded, geometry.width, geometry.height, framing)
    if predictor.num_classes != NUM_CLASSES:
        raise ValueError(f"weights of {predictor.num_classes} classes; the NIA class maps have {NUM_CLASSES}")
    facts["input"] = f"{predictor.input_width}x{predictor.input_height}"
    return predictor, facts


def predict_with_model(crops: CropRows, data: Path, options: Options, device: torch.device) -> Predicted:
    """(N, 9) per-crop confusion counts (NaN rows where a crop could not be read or scored); saves overlays.

    Full float32 (no AMP) with deterministic cuDNN: a rerun gives the same numbers.
    """
    set_cudnn_mode(reproducible=True)
    geometry = crop_geometry(data, crops.rows)
    loaded = load_model(options.weights)
    predictor, facts = predictor_of(loaded, geometry)
    framing = predictor.framing
    dataset = ScoringCrops.from_rows(data, crops.rows, width=predictor.input_width, height=predictor.input_height,
                                     map_size=(geometry.width, geometry.height),
                                     frame=partial(frame_crop, framing=framing) if framing is not None else None)
    loader = DataLoader(dataset, batch_size=options.batch_size, num_workers=options.workers,
                        worker_init_fn=worker_init, pin_memory=device.type == "cuda")
    model = for_inference(loaded.model, device)
    result = run_inference(model, loader, device, prepare=prepare_batch, decode=predictor.confusion)
    for row, relative, miou in overlay_rows(crops, result.values):
        image, truth, _, _ = dataset[row]
        with torch.inference_mode():
            pred = predictor.class_maps(model(prepare_batch(image[None], device)), tuple(truth.shape))
        save_overlay(options.out, relative, read_crop_image(data, crops, row, tuple(truth.shape)), truth.numpy(),
                     pred.cpu().numpy()[0], miou)
    return Predicted(result.values, model_skips(result), facts)


def predict_from_folder(crops: CropRows, folder: Path, data: Path, options: Options) -> Predicted:
    """Per-crop confusion counts of class-map PNGs made elsewhere (`{crop id}.png`), NaN for crops the
    folder lacks or repeats; saves overlays. A PNG of the wrong size or with a class id > 2 stops the run."""
    names = list(crops.rows["crop_id"])
    expected = ExpectedNames.of(names, stems=list(crops.rows["sample_id"]))
    aligned, alignment = find_segmentation_predictions(folder, expected)
    path_of = dict(zip(aligned["name"], aligned["path"]))
    values = np.full((len(names), NUM_CLASSES * NUM_CLASSES), np.nan)
    unreadable = 0
    for row, name in enumerate(names):
        if name not in path_of:
            continue
        truth = read_class_map(data / crops.rows["png_path"].iloc[row], NUM_CLASSES)
        if truth is None:
            unreadable += 1
            continue
        pred = load_class_map(path_of[name], NUM_CLASSES, shape=truth.shape)
        values[row] = confusion_per_crop(torch.from_numpy(pred[None]), torch.from_numpy(truth[None]),
                                         NUM_CLASSES).numpy()[0]
    for row, relative, miou in overlay_rows(crops, values):
        truth = read_class_map(data / crops.rows["png_path"].iloc[row], NUM_CLASSES)
        pred = load_class_map(path_of[names[row]], NUM_CLASSES, shape=truth.shape)
        save_overlay(options.out, relative, read_crop_image(data, crops, row, truth.shape), truth, pred, miou)
    return Predicted(values, {**alignment.skipped(), "unreadable_image": unreadable},
                     {"weights_format": "score-only", "predictions": alignment.summary()})


def overlay_rows(crops: CropRows, values: np.ndarray) -> list[tuple[int, str, float]]:
    """(row, relative overlay path, the crop's mIoU) of the crops `per_sample_table` names as overlays."""
    scored = np.flatnonzero(np.isfinite(values).all(axis=1))
    names = crops.rows["crop_id"].to_numpy()[scored]
    picks = pick_overlays(names, values[scored], NUM_CLASSES)
    mious = crop_miou(values[scored], NUM_CLASSES)
    return [(int(scored[i]), relative, float(mious[i])) for i, relative in sorted(picks.items())]


def read_crop_image(data: Path, crops: CropRows, row: int, shape: tuple[int, int]) -> np.ndarray:
    """The crop JPG as decoded (colour or grey) for an overlay; mid-grey of `shape` when it does not decode
    (score-only mode scores a crop from its class maps alone)."""
    image = read_image(str(data / crops.rows["jpg_path"].iloc[row]), cv2.IMREAD_UNCHANGED)
    return image if image is not None else np.full(shape, 128, np.uint8)


def per_sample_table(rows: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    """The scored crops (finite counts): name, subject, inst, inter_<class>, union_<class>, overlay."""
    scored = np.isfinite(values).all(axis=1)
    inter, union = intersections_unions(values[scored], NUM_CLASSES)
    table = pd.DataFrame({"name": rows["crop_id"].to_numpy()[scored], "subject": rows["subject"].to_numpy()[scored],
                          "inst": rows["inst"].to_numpy()[scored]})
    for k, name in enumerate(CLASS_NAMES):
        table[f"inter_{name}"] = inter[:, k].astype(np.int64)
    for k, name in enumerate(CLASS_NAMES):
        table[f"union_{name}"] = union[:, k].astype(np.int64)
    picks = pick_overlays(table["name"].to_numpy(), values[scored], NUM_CLASSES)
    table["overlay"] = [picks.get(i, "") for i in range(len(table))]
    return table


def counts_of(per_sample: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) intersections and unions of the per-sample table."""
    return (per_sample[[f"inter_{c}" for c in CLASS_NAMES]].to_numpy(dtype=np.float64),
            per_sample[[f"union_{c}" for c in CLASS_NAMES]].to_numpy(dtype=np.float64))


def score(per_sample: pd.DataFrame) -> tuple[float, tuple[float, float] | None]:
    """mIoU over the 3 classes of the summed counts (= one dataset-level confusion matrix), 95 % CI over subjects."""
    inter, union = counts_of(per_sample)
    return float(miou_from_counts(inter.sum(axis=0), union.sum(axis=0))), miou_ci(
        inter, union, per_sample["subject"].to_numpy())


def extra_metrics(per_sample: pd.DataFrame) -> dict[str, Any]:
    """Per-class IoU and the summed counts behind the mIoU, for metrics.json `extra`."""
    inter, union = (counts.sum(axis=0) for counts in counts_of(per_sample))
    iou = iou_from_counts(inter, union)
    return {"classes": list(CLASS_NAMES), "include_background": True,
            "iou_per_class": {c: float(v) for c, v in zip(CLASS_NAMES, iou)},
            "intersections": {c: int(v) for c, v in zip(CLASS_NAMES, inter)},
            "unions": {c: int(v) for c, v in zip(CLASS_NAMES, union)},
            "overlays": [p for p in per_sample["overlay"] if p]}


TASK = ValidationTask(test="rit", metric=metric_of("rit"), read_split=read_seg_crops,
                      predict_with_model=predict_with_model,
                      predict_from_file=predict_from_folder, per_sample=per_sample_table, score=score,
                      resolve_data=resolve_crops, extra_metrics=extra_metrics)


@click.command(context_settings={"show_default": True})
@validation_options(weights_help="our checkpoint (ritnet/train.py) or an original RITnet state_dict; a 4-class "
                                 "OpenEDS one (the published best_model.pkl) runs at its own framing and is scored "
                                 "on the NIA classes (sclera -> eye region, iris and pupil -> iris)",
                    predictions_help="score-only: a folder of class-map PNGs {crop id}.png (0 background, "
                                     f"1 eye region, 2 iris; the crop's size), {KEYS_HELP}; no model is loaded")
def cli(**options: Any) -> dict[str, Any]:
    """Validate RIT-Net eye segmentation: mIoU >= 80 % over the 3 classes passes.

    Writes OUT/metrics.json, OUT/per_sample.csv and OUT/overlays/ (an earlier
    run's are removed first), prints one verdict line and exits 0 (PASS),
    1 (FAIL) or 2 (no verdict: could not run, or the submission left crops
    unscored; PARTIAL with --allow-partial).

    \b
    Example:
      python ritnet/test.py --data build/crops --weights build/train/rit_demo/best.pt --out results/rit
      python ritnet/test.py --data build/crops --weights best_model.pkl --out results/rit_openeds
      python -m ritnet.test --data build/crops --predictions preds/ --out results/rit
    """
    return run_validation(TASK, Options(**options))


def main() -> None:
    run_entry_point(cli)


if __name__ == "__main__":
    main()
