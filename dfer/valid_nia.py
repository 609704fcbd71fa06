"""Acceptance test 3: Former-DFER observer state, weighted average recall (WAR) on a clip dataset split.

Reads the clips of one split (`nia clips` output), predicts each clip's
state F/S/D/A/N with the given weights (or reads predictions made elsewhere
with `--predictions`), scores WAR (= accuracy over clips) with a 95 % CI over
subjects, and writes OUT/metrics.json + OUT/per_sample.csv; metrics.json's
`extra` adds UAR, the per-class recall and the confusion matrix (rows =
truth, columns = prediction, in the order of `classes`). The skeleton
(options, data, skips, provenance, results, exit codes 0 PASS / 1 FAIL / 2
no verdict) is the shared one of `common.engine.validate`; this file holds
Former-DFER's part.

Test-time input as published: 16 frames (8 segments x 2, centred), the
clip's region resized to 112 x 112, [0, 1]; float32, deterministic cuDNN.
"""
from __future__ import annotations

from common.script import start_script

start_script(__package__, __file__)  # first: the repo root on sys.path, OpenMP's wait policy before torch loads

from functools import partial  # noqa: E402
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from common.cli.entry import run_entry_point, validation_options
from common.cli.prepared_input import resolve_clips
from common.engine.batches import worker_init
from common.engine.device import set_cudnn_mode
from common.engine.inference import run_inference
from common.engine.streams import InStreams
from common.engine.validate import Options, Predicted, ValidationTask, model_skips, run_validation
from common.metrics.bootstrap import mean_ci
from common.metrics.classification import confusion_matrix, recall_per_class, uar
from common.report.sensitivity import REGION_PREFIX
from common.targets.crop_rows import CropRows
from common.verdicts.results import metric_of
from common.verdicts.submissions import ExpectedNames, read_state_predictions
from dfer.checkpoint import load_model
from dfer.config import STATES
from dfer.dataset import UNREADABLE, StateClips, prepare_batch, read_state_clips
from dfer.regions import VARIANTS, variant_rows


def predicted_state(outputs: torch.Tensor) -> torch.Tensor:
    """(B, 5) scores -> (B, 1) index of the highest, NaN where a score is not finite."""
    outputs = outputs.float()
    best = outputs.argmax(dim=1, keepdim=True).float()
    return torch.where(torch.isfinite(outputs).all(dim=1, keepdim=True), best, torch.full_like(best, float("nan")))


def for_inference(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model on `device` in channels_last, eval mode; on the CPU one clip per pass in one stream per torch
    thread (`common.engine.streams`: no barrier between cores, so a core that another process holds slows
    only its own clips; each clip's scores are a one-thread pass over it alone, whatever the batch or cores)."""
    model = model.to(device).to(memory_format=torch.channels_last).eval()
    return InStreams(model, streams=torch.get_num_threads()).eval() if device.type == "cpu" else model


def predict_with_model(clips: CropRows, _data: Path, options: Options, device: torch.device,
                       region_variants: tuple[str, ...] = ()) -> Predicted:
    """(N, 1 + V) predicted class index (NaN where the video could not be read or the output is not finite):
    column 0 with each clip's own region, one more per `region_variants` name (`dfer.regions`), whose
    unreadable clips are not counted again."""
    set_cudnn_mode(reproducible=True)
    loaded = load_model(options.weights)
    config = loaded.config
    model = for_inference(loaded.model, device)

    def run(rows: pd.DataFrame) -> Any:
        loader = DataLoader(StateClips(rows, config, train=False), batch_size=options.batch_size,
                            num_workers=options.workers, worker_init_fn=worker_init, pin_memory=device.type == "cuda")
        return run_inference(model, loader, device, prepare=prepare_batch, decode=lambda out, _: predicted_state(out))

    result = run(clips.rows)
    values = [result.values] + [run(variant_rows(clips.rows, name)).values for name in region_variants]
    facts = {**loaded.facts, "region_variants": list(region_variants)} if region_variants else loaded.facts
    if isinstance(model, InStreams):
        facts = {**facts, "cpu_forward": f"{model.streams} one-thread stream(s), {model.size} clip per pass"}
        model.close()
    return Predicted(np.hstack(values), model_skips(result, unreadable=UNREADABLE), facts)


def predict_from_file(clips: CropRows, path: Path, _data: Path, _options: Options) -> Predicted:
    """Predictions read from a `name,label` CSV (label F/S/D/A/N) keyed by the video stem (`X` or `X.mp4`),
    NaN for clips it lacks or repeats."""
    names = list(clips.rows["clip_id"])
    table, alignment = read_state_predictions(path, ExpectedNames.of(names), STATES)
    pred = table.set_index("name")["pred"].reindex(names).to_numpy(dtype=np.float64)[:, None]
    return Predicted(pred, alignment.skipped(), {"weights_format": "score-only", "predictions": alignment.summary()})


def per_sample_table(rows: pd.DataFrame, pred: np.ndarray, region_variants: tuple[str, ...] = ()) -> pd.DataFrame:
    """The scored clips (a prediction) in the per-sample CSV layout: `name, subject, inst, pred, truth`, and
    `pred_region_<variant>` (empty where that run had none) per column of `pred` after the first."""
    scored = np.isfinite(pred[:, 0])
    letters = np.array(STATES, dtype=object)
    table = pd.DataFrame({"name": rows["clip_id"].to_numpy()[scored], "subject": rows["subject"].to_numpy()[scored],
                          "inst": rows["inst"].to_numpy()[scored], "pred": letters[pred[scored, 0].astype(np.int64)],
                          "truth": rows["state"].to_numpy()[scored]})
    for column, name in enumerate(region_variants, start=1):
        other = pred[scored, column]
        known = np.isfinite(other)
        table[f"{REGION_PREFIX}{name}"] = np.where(known, letters[np.where(known, other, 0).astype(np.int64)], "")
    return table


def _indices(column: pd.Series) -> np.ndarray:
    return column.map({s: i for i, s in enumerate(STATES)}).to_numpy(dtype=np.int64)


def score(per_sample: pd.DataFrame) -> tuple[float, tuple[float, float] | None]:
    """WAR (accuracy over clips) and its 95 % CI over subjects."""
    correct = (per_sample["pred"] == per_sample["truth"]).to_numpy(dtype=np.float64)
    return float(correct.mean()), mean_ci(correct, per_sample["subject"].to_numpy())


def state_metrics(per_sample: pd.DataFrame) -> dict[str, Any]:
    """UAR, per-class recall (null for a state absent from the split) and the confusion matrix."""
    matrix = confusion_matrix(_indices(per_sample["pred"]), _indices(per_sample["truth"]), len(STATES))
    recall = recall_per_class(matrix)
    return {"classes": list(STATES), "uar": uar(matrix),
            "recall_per_class": {s: None if np.isnan(r) else float(r) for s, r in zip(STATES, recall)},
            "confusion_matrix": matrix.tolist(), "confusion_matrix_axes": "rows = truth, columns = prediction"}


def make_task(videos: Path | None = None, region_variants: tuple[str, ...] = ()) -> ValidationTask:
    return ValidationTask(test="dfer", metric=metric_of("dfer"), read_split=partial(read_state_clips, videos=videos),
                          predict_with_model=partial(predict_with_model, region_variants=region_variants),
                          predict_from_file=predict_from_file,
                          per_sample=partial(per_sample_table, region_variants=region_variants), score=score,
                          resolve_data=resolve_clips,
                          extra_metrics=state_metrics)


@click.command(context_settings={"show_default": True})
@validation_options(weights_help="our checkpoint (dfer/train.py) or an original Former-DFER checkpoint",
                    predictions_help="score-only: CSV name,label (label one of F, S, D, A, N) made elsewhere, "
                                     "rows keyed by the video's file name or stem (X.mp4 or X; a path is cut to "
                                     "its file name); no model is loaded")
@click.option("--videos", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="folder the clip index's video paths are relative to [default: the index's dataset root]")
@click.option("--region-sensitivity", is_flag=True, default=False,
              help=f"also run the model on each clip cut {len(VARIANTS)} other ways ({', '.join(VARIANTS)}; "
                   "dfer/regions.py) and write those predictions to per_sample.csv for nia report's assumption "
                   "sensitivity; a model run only, each way one more pass")
def cli(videos: Path | None, region_sensitivity: bool, **options: Any) -> dict[str, Any]:
    """Validate Former-DFER observer-state classification: WAR >= 70 % passes.

    `--data` takes a clip dataset (`nia clips` output), a manifest or a
    dataset root (indexed, split and clipped into --work-dir first). Writes
    OUT/metrics.json (WAR, its CI, UAR, per-class recall, confusion matrix)
    and OUT/per_sample.csv (an earlier run's are removed first), prints one
    verdict line and exits 0 (PASS), 1 (FAIL) or 2 (no verdict: could not
    run, or the submission left clips unscored; PARTIAL with --allow-partial).

    \b
    Example:
      python dfer/valid_nia.py --data build/dfer/clips --weights build/weights/dfer_demo.pt --out results/dfer
      python dfer/valid_nia.py --data /data/nia_root --weights dfer.pt --out results/dfer
      python -m dfer.valid_nia --data build/dfer/clips --predictions states.csv --out results/dfer
    """
    if region_sensitivity and options.get("predictions") is not None:
        raise click.UsageError("--region-sensitivity runs the model: give --weights, not --predictions")
    return run_validation(make_task(videos, tuple(VARIANTS) if region_sensitivity else ()), Options(**options))


def main() -> None:
    run_entry_point(cli)


if __name__ == "__main__":
    main()
