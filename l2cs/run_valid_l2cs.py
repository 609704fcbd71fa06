"""Acceptance test 1: L2CS-Net gaze, mean angular error on a crop dataset split.

Reads the two-eye crops of one split, predicts (pitch, yaw) with the given
weights (or reads predictions made elsewhere with `--predictions`), scores
the mean angular error with a 95 % CI over subjects, and writes
OUT/metrics.json + OUT/per_sample.csv through `common.results`. Exit code
0 = PASS, 1 = FAIL, 2 = could not run.

Speed: OpenCV decodes in DataLoader workers into uint8 tensors; scaling and
normalisation run once per batch on the device; the network runs in
channels_last with its BatchNorms folded into the convolutions, under
`torch.inference_mode`.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python l2cs/run_valid_l2cs.py`: import the package, not the folder's modules
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from typing import Any

import click
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader

from common.metrics.angular import angular_errors_deg
from common.metrics.bootstrap import mean_ci
from common.pipeline import resolve_crops
from common.predictions import KEYS_HELP, ExpectedNames, read_gaze_predictions
from common.provenance import collect_provenance, utc_now
from common.results import RunError, allow_partial_option, clear_results, run_entry_point, write_results
from common.torch_utils import DEVICE_CHOICES, pick_device, set_cudnn_mode
from l2cs.bins import BinSpec
from l2cs.checkpoint import load_model
from l2cs.dataset import INDEX_NAME, CropRows, EyeCrops, read_eye_crops, worker_init
from l2cs.model import fold_batchnorm
from l2cs.predict import predict

TEST, METRIC = "l2cs", "mean_angular_error_deg"


def predict_with_model(crops: CropRows, data: Path, weights: Path, device: torch.device, batch_size: int,
                       workers: int) -> tuple[np.ndarray, dict[str, int], dict[str, Any]]:
    """(N, 2) predicted [pitch, yaw] deg (NaN where the crop could not be decoded), skips, model facts.

    Full float32 (no AMP) with deterministic cuDNN: a rerun gives the same numbers.
    The weights are read on the CPU whatever device saved them, then moved.
    """
    set_cudnn_mode(reproducible=True)
    model, config, info = load_model(weights, map_location="cpu")
    model = fold_batchnorm(model).to(device).to(memory_format=torch.channels_last)
    dataset = EyeCrops.from_rows(data, crops.rows, width=config.input_width, height=config.input_height)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, worker_init_fn=worker_init,
                        pin_memory=device.type == "cuda")
    result = predict(model, loader, BinSpec.from_config(config), device)
    # issue 10: a decoded crop whose output is NaN/inf is the weights' skip, counted (it used to vanish)
    nonfinite = result.ok & ~np.isfinite(result.pitch_yaw).all(axis=1)
    skipped = {"unreadable_image": int((~result.ok).sum()), "nonfinite_output": int(nonfinite.sum())}
    return result.pitch_yaw, skipped, {**info, "model_config": config.to_dict()}


def predict_from_file(crops: CropRows, path: Path) -> tuple[np.ndarray, dict[str, int], dict[str, Any]]:
    """Predictions read from a `name,pitch,yaw` CSV, NaN for names it lacks or repeats."""
    names = list(crops.rows["crop_id"])
    # issue 10: rows may be keyed by the NIA file name or stem (the eyes crop is one per image) as well
    table, alignment = read_gaze_predictions(path, ExpectedNames.of(names, stems=list(crops.rows["sample_id"])))
    by_name = table.set_index("name")[["pitch", "yaw"]]
    pitch_yaw = by_name.reindex(names).to_numpy(dtype=np.float64)
    return pitch_yaw, alignment.skipped(), {"weights_format": "score-only", "predictions": alignment.summary()}


def per_sample_table(rows: pd.DataFrame, pitch_yaw: np.ndarray) -> pd.DataFrame:
    """The scored rows (finite prediction) in the per-sample CSV layout of `common.results`."""
    scored = np.isfinite(pitch_yaw).all(axis=1)
    truth = rows[["gaze_pitch_deg", "gaze_yaw_deg"]].to_numpy(dtype=np.float64)[scored]
    pred = pitch_yaw[scored]
    table = pd.DataFrame({"name": rows["crop_id"].to_numpy()[scored], "subject": rows["subject"].to_numpy()[scored],
                          "inst": rows["inst"].to_numpy()[scored], "pred_pitch": pred[:, 0], "pred_yaw": pred[:, 1],
                          "true_pitch": truth[:, 0], "true_yaw": truth[:, 1]})
    table["error_deg"] = angular_errors_deg(pred, truth) if len(table) else np.empty(0)
    return table


def crop_index_metadata(data: Path) -> dict[str, str]:
    """The `nia.*` key-value metadata of index.parquet (ties the crops to their manifest)."""
    metadata = pq.read_schema(data / INDEX_NAME).metadata or {}
    return {k.decode(): v.decode() for k, v in metadata.items() if k.startswith(b"nia.")}


@click.command(context_settings={"show_default": True})
@click.option("--data", required=True, type=click.Path(exists=True, path_type=Path),
              help="a crop dataset (folder with index.parquet from `nia crops`), a manifest .parquet "
                   "(`nia index`), or a dataset root (extracted delivery or `nia synth` output); the last "
                   "two are indexed/split/cropped into --work-dir first")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="our checkpoint (l2cs/train.py) or an original L2CS-Net state_dict")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder for metrics.json and per_sample.csv (an earlier run's are removed first)")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where a manifest or dataset root is prepared into crops  [default: OUT/prepared]")
@click.option("--split", default="test", help="split of the crop dataset to score")
@click.option("--device", "device_name", type=click.Choice(DEVICE_CHOICES), default="auto",
              help="auto takes CUDA when visible; cuda without a GPU falls back to the CPU with a warning")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, help="crops per batch")
@click.option("--workers", type=click.IntRange(min=0), default=2, help="DataLoader decode processes")
@click.option("--predictions", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help=f"score-only: CSV name,pitch,yaw (deg) made elsewhere, {KEYS_HELP}; no model is loaded")
@allow_partial_option  # issue 10
def cli(data: Path, weights: Path | None, out: Path, work_dir: Path | None, split: str, device_name: str,
        batch_size: int, workers: int, predictions: Path | None, allow_partial: bool) -> dict[str, Any]:
    """Validate L2CS-Net gaze estimation: mean angular error <= 10 deg passes.

    Writes OUT/metrics.json and OUT/per_sample.csv, prints one verdict line
    and exits 0 (PASS), 1 (FAIL) or 2 (no verdict: could not run, or the
    submission left crops unscored; PARTIAL with --allow-partial).

    \b
    Example:
      python l2cs/run_valid_l2cs.py --data build/crops --weights build/weights/l2cs_demo.pt --out results/l2cs
      python -m l2cs.run_valid_l2cs --data build/crops --predictions preds.csv --out results/l2cs
      python l2cs/run_valid_l2cs.py --data /data/nia_root --weights l2cs.pt --out results/l2cs
    """
    clear_results(out)  # issue 10: a run that stops must not leave an earlier verdict behind
    if (weights is None) == (predictions is None):
        raise click.UsageError("give exactly one of --weights (run the model) or --predictions (score only)")
    started = utc_now()
    data = resolve_crops(data, work_dir if work_dir is not None else out / "prepared")
    crops = read_eye_crops(data, split)  # a ValueError (e.g. no such split) exits 2 like a RunError
    device = pick_device("cpu" if predictions is not None else device_name)
    if predictions is not None:
        pitch_yaw, skipped, facts = predict_from_file(crops, predictions)
    else:
        pitch_yaw, skipped, facts = predict_with_model(crops, data, weights, device, batch_size, workers)
    per_sample = per_sample_table(crops.rows, pitch_yaw)
    skipped = {k: v for k, v in {**crops.skipped, **skipped}.items() if v}
    if per_sample.empty:
        raise RunError(f"{data}: none of the {len(crops.rows)} '{split}' crops could be scored ({skipped})")
    errors = per_sample["error_deg"].to_numpy()
    provenance = collect_provenance(
        manifest_path=data / INDEX_NAME, weights_path=weights, device=device, start_time=started,
        extra={"crop_index": crop_index_metadata(data), "split": split, "model": facts})
    n_in_split = len(crops.rows) + sum(crops.skipped.values())
    return write_results(out, test=TEST, metric=METRIC, value=float(errors.mean()), per_sample=per_sample,
                         n_skipped=sum(skipped.values()), skipped=skipped,
                         ci95=mean_ci(errors, per_sample["subject"].to_numpy()), provenance=provenance,
                         n_in_split=n_in_split, allow_partial=allow_partial,  # issue 10: coverage rule
                         extra={"split": split, "n_crops_in_split": n_in_split})


def main() -> None:
    run_entry_point(cli)


if __name__ == "__main__":
    main()
