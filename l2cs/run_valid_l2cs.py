"""Acceptance test 1: L2CS-Net gaze, mean angular error on a crop dataset split.

Reads the two-eye crops of one split, predicts (pitch, yaw) with the given
weights (or reads predictions made elsewhere with `--predictions`), scores
the mean angular error with a 95 % CI over subjects, and writes
OUT/metrics.json + OUT/per_sample.csv. The skeleton (options, data, skips,
provenance, results, exit codes 0 PASS / 1 FAIL / 2 could not run) is the
shared one of `common.engine.validate`; this file holds L2CS-Net's part.

Speed: OpenCV decodes in DataLoader workers into uint8 tensors; scaling and
normalisation run once per batch on the device; the network runs in
channels_last with its BatchNorms folded into the convolutions, under
`torch.inference_mode`.
"""
from __future__ import annotations

from common.script import start_script

start_script(__package__, __file__)  # first: the repo root on sys.path, OpenMP's wait policy before torch loads

from pathlib import Path  # noqa: E402
from typing import Any

import click
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from common.targets.crop_rows import CropRows
from common.engine.batches import worker_init
from common.engine.device import set_cudnn_mode
from common.engine.inference import run_inference
from common.cli.entry import validation_options
from common.cli.prepared_input import resolve_crops
from common.engine.validate import Options, Predicted, ValidationTask, model_skips, run_validation
from common.delivery.stats import points_on_screen
from common.metrics.angular import angular_errors_deg
from common.metrics.bootstrap import mean_ci
from common.targets.gaze import METHODS
from common.verdicts.results import metric_of
from common.verdicts.submissions import KEYS_HELP, ExpectedNames, read_gaze_predictions
from common.cli.entry import run_entry_point
from l2cs.bins import BinSpec
from l2cs.checkpoint import load_model
from l2cs.dataset import EyeCrops, prepare_batch, read_eye_crops
from l2cs.model import fold_batchnorm


def predict_with_model(crops: CropRows, data: Path, options: Options, device: torch.device) -> Predicted:
    """(N, 2) predicted [pitch, yaw] deg (NaN where the crop could not be decoded).

    Full float32 (no AMP) with deterministic cuDNN: a rerun gives the same numbers.
    The weights are read on the CPU whatever device saved them, then moved.
    """
    set_cudnn_mode(reproducible=True)
    loaded = load_model(options.weights)
    config = loaded.config
    model = fold_batchnorm(loaded.model).to(device).to(memory_format=torch.channels_last)
    dataset = EyeCrops.from_rows(data, crops.rows, width=config.input_width, height=config.input_height)
    loader = DataLoader(dataset, batch_size=options.batch_size, num_workers=options.workers,
                        worker_init_fn=worker_init, pin_memory=device.type == "cuda")
    bins = BinSpec.from_config(config)
    result = run_inference(model, loader, device, prepare=prepare_batch, decode=lambda out, _: bins.decode_pair(out))
    return Predicted(result.values, model_skips(result), {**loaded.facts, "model_config": config.to_dict()})


def predict_from_file(crops: CropRows, path: Path, _data: Path, _options: Options) -> Predicted:
    """Predictions read from a `name,pitch,yaw` CSV keyed by crop id or NIA file name/stem,
    NaN for names it lacks or repeats."""
    names = list(crops.rows["crop_id"])
    table, alignment = read_gaze_predictions(path, ExpectedNames.of(names, stems=list(crops.rows["sample_id"])))
    pitch_yaw = table.set_index("name")[["pitch", "yaw"]].reindex(names).to_numpy(dtype=np.float64)
    return Predicted(pitch_yaw, alignment.skipped(), {"weights_format": "score-only",
                                                      "predictions": alignment.summary()})


def per_sample_table(rows: pd.DataFrame, pitch_yaw: np.ndarray) -> pd.DataFrame:
    """The scored rows (finite prediction) in the per-sample CSV layout of `common.verdicts.results`."""
    scored = np.isfinite(pitch_yaw).all(axis=1)
    truth = rows[["gaze_pitch_deg", "gaze_yaw_deg"]].to_numpy(dtype=np.float64)[scored]
    pred = pitch_yaw[scored]
    table = pd.DataFrame({"name": rows["crop_id"].to_numpy()[scored], "subject": rows["subject"].to_numpy()[scored],
                          "inst": rows["inst"].to_numpy()[scored], "pred_pitch": pred[:, 0], "pred_yaw": pred[:, 1],
                          "true_pitch": truth[:, 0], "true_yaw": truth[:, 1]})
    table["error_deg"] = angular_errors_deg(pred, truth) if len(table) else np.empty(0)
    if {"point_x", "point_y"} <= set(rows.columns):  # crop folders made before the index carried pose.point lack it
        known = rows["point_x"].notna() & rows["point_y"].notna()
        on_screen = points_on_screen(rows["point_x"], rows["point_y"]).astype(object).where(known, None)
        table["on_screen"] = on_screen.to_numpy()[scored]
    for method in METHODS:  # the label under each derivation: the report scores the predictions under each
        columns = [f"gaze_pitch_deg_{method}", f"gaze_yaw_deg_{method}"]
        if set(columns) <= set(rows.columns):
            other = rows[columns].to_numpy(dtype=np.float64)[scored]
            table[f"true_pitch_{method}"], table[f"true_yaw_{method}"] = other[:, 0], other[:, 1]
    return table


def score(per_sample: pd.DataFrame) -> tuple[float, tuple[float, float] | None]:
    """Mean angular error (deg) and its 95 % CI over subjects."""
    errors = per_sample["error_deg"].to_numpy()
    return float(errors.mean()), mean_ci(errors, per_sample["subject"].to_numpy())


TASK = ValidationTask(test="l2cs", metric=metric_of("l2cs"), read_split=read_eye_crops,
                      predict_with_model=predict_with_model, predict_from_file=predict_from_file,
                      per_sample=per_sample_table, score=score, resolve_data=resolve_crops)


@click.command(context_settings={"show_default": True})
@validation_options(weights_help="our checkpoint (l2cs/train.py) or an original L2CS-Net state_dict",
                    predictions_help=f"score-only: CSV name,pitch,yaw (deg) made elsewhere, {KEYS_HELP}; "
                                     "no model is loaded")
def cli(**options: Any) -> dict[str, Any]:
    """Validate L2CS-Net gaze estimation: mean angular error <= 10 deg passes.

    Writes OUT/metrics.json and OUT/per_sample.csv (an earlier run's are
    removed first), prints one verdict line and exits 0 (PASS), 1 (FAIL) or
    2 (no verdict: could not run, or the submission left crops unscored;
    PARTIAL with --allow-partial).

    \b
    Example:
      python l2cs/run_valid_l2cs.py --data build/crops --weights build/weights/l2cs_demo.pt --out results/l2cs
      python -m l2cs.run_valid_l2cs --data build/crops --predictions preds.csv --out results/l2cs
      python l2cs/run_valid_l2cs.py --data /data/nia_root --weights l2cs.pt --out results/l2cs
    """
    return run_validation(TASK, Options(**options))


def main() -> None:
    run_entry_point(cli)


if __name__ == "__main__":
    main()
