"""The validation entry point every test shares: one option set, one skeleton.

A test's script (`l2cs/run_valid_l2cs.py`, `ritnet/test.py`,
`dfer/valid_nia.py`) builds a `ValidationTask` with what is its own: how to
read its split, how to predict with a model built from its weights, how to
read predictions made elsewhere, how to turn predictions into per-sample
rows, and its metric. `run_validation` does the rest in the same order for
all three: resolve `--data`, read the split, predict (weights xor
predictions), merge the skip counts, score, collect provenance, write
`metrics.json` + `per_sample.csv`. The shared click options are
`common.cli.entry.validation_options`; exit codes and the verdict line come
from `common.cli.entry.run_entry_point`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from common.parquet_read import read_schema
from common.targets.crop_rows import CropRows
from common.targets.crops import CROP_INDEX_NAME
from common.engine.device import core_plan, pick_device
from common.verdicts.provenance import collect_provenance, utc_now
from common.atomic import check_writable_folder
from common.engine.inference import Outputs
from common.verdicts.results import RunError, clear_results, write_results


@dataclass(frozen=True)
class Predicted:
    """Predictions for each usable row of the split (NaN where there is none), skips they caused, and facts."""

    values: np.ndarray
    skipped: dict[str, int]
    facts: dict[str, Any]


@dataclass(frozen=True)
class Options:
    """The shared options of every validation entry point (`validation_options`)."""

    data: Path
    weights: Path | None
    out: Path
    work_dir: Path | None
    split: str
    device_name: str
    batch_size: int
    workers: int | None  # DataLoader decode processes; None: chosen from the free cores (`common.cores`)
    predictions: Path | None
    allow_partial: bool = False


@dataclass(frozen=True)
class ValidationTask:
    """What a test's validation script provides."""

    test: str                                                     # l2cs, rit, dfer
    metric: str                                                   # its metric name in thresholds.json
    read_split: Callable[[Path, str], CropRows]                   # usable rows + the data's own skips
    predict_with_model: Callable[[CropRows, Path, Options, torch.device], Predicted]
    predict_from_file: Callable[[CropRows, Path, Path, Options], Predicted]  # (rows, --predictions, data, options)
    per_sample: Callable[[pd.DataFrame, np.ndarray], pd.DataFrame]  # the scored rows, per-sample CSV layout
    score: Callable[[pd.DataFrame], tuple[float, tuple[float, float] | None]]  # value, 95 % CI
    resolve_data: Callable[[Path, Path], Path]                    # (--data, work dir) -> the folder with the index
    index_name: str = CROP_INDEX_NAME
    extra_metrics: Callable[[pd.DataFrame], dict[str, Any]] | None = None  # more numbers for metrics.json `extra`


def run_validation(task: ValidationTask, options: Options) -> dict[str, Any]:
    """Score one split with a model or a predictions file; write and return metrics.json's content.

    An earlier run's results in OUT are removed first, so a run that stops
    leaves no verdict behind that could be filed as its own. Every sample of
    the split is scored or counted under a skip reason (`write_results`
    checks it); a skip caused by the submission gives no PASS.
    """
    check_writable_folder(options.out)
    clear_results(options.out)
    if (options.weights is None) == (options.predictions is None):
        raise RunError("give exactly one of --weights (run the model) or --predictions (score only)")
    started = utc_now()
    work_dir = options.work_dir if options.work_dir is not None else options.out / "prepared"
    data = task.resolve_data(options.data, work_dir)
    split = task.read_split(data, options.split)
    device = pick_device("cpu" if options.predictions is not None else options.device_name)
    cores: dict[str, Any] = {}
    if options.predictions is not None:
        predicted = task.predict_from_file(split, options.predictions, data, options)
    else:
        plan = core_plan(options.workers, device)
        print(plan.line(), file=sys.stderr, flush=True)
        cores = {"cores": plan.provenance()}
        predicted = task.predict_with_model(split, data, replace(options, workers=plan.workers), device)
    per_sample = task.per_sample(split.rows, predicted.values)
    skipped = dict(split.skipped)
    for reason, count in predicted.skipped.items():  # a reason both name (e.g. unreadable) adds up
        skipped[reason] = skipped.get(reason, 0) + count
    skipped = {k: v for k, v in skipped.items() if v}
    if per_sample.empty:
        raise RunError(f"{data}: none of the {len(split.rows)} '{options.split}' items could be scored ({skipped})")
    value, ci95 = task.score(per_sample)
    provenance = collect_provenance(
        manifest_path=data / task.index_name, weights_path=options.weights, device=device, start_time=started,
        extra={"crop_index": index_metadata(data / task.index_name), "split": options.split,
               "model": predicted.facts, **cores})
    return write_results(options.out, test=task.test, metric=task.metric, value=value, per_sample=per_sample,
                         n_skipped=sum(skipped.values()), skipped=skipped, ci95=ci95, provenance=provenance,
                         n_in_split=split.n_in_split, allow_partial=options.allow_partial,
                         extra={"split": options.split, "n_crops_in_split": split.n_in_split,
                                **(task.extra_metrics(per_sample) if task.extra_metrics is not None else {})})


def model_skips(outputs: Outputs, unreadable: str = "unreadable_image") -> dict[str, int]:
    """Items a model run could not score: unreadable (the data's; `unreadable` names the reason, e.g.
    "unreadable_video" for a clip) and non-finite outputs (the weights')."""
    nonfinite = outputs.ok & ~np.isfinite(outputs.values).all(axis=1)
    return {unreadable: int((~outputs.ok).sum()), "nonfinite_output": int(nonfinite.sum())}


def index_metadata(index_path: Path) -> dict[str, str]:
    """The `nia.*` key-value metadata of an index parquet (ties the prepared data to its manifest)."""
    metadata = read_schema(index_path).metadata or {}
    return {k.decode(): v.decode() for k, v in metadata.items() if k.startswith(b"nia.")}
