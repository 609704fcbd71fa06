"""Hostile submissions to l2cs/run_valid_l2cs.py: prediction files and weights files (tests/hostile_corpus.py).

Every case exits 2 with one ``error:`` line naming the file, or scores what
it must; no case leaves a metrics.json it should not (no file = no verdict);
a weights file whose unpickling would run code never runs it.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from common.metrics.angular import REFERENCE_COS_CLAMP
from tests.hostile_corpus import (L2CS_PREDICTIONS, L2CS_WEIGHTS, MARKER_NAME, Case, RunsCode, predictions_csv,
                                  weights_kind, write_hostile_weights)
from tests.hostile_env import Outcome, assert_one_error, run_click
from tests.l2cs_fakes import make_fake_crops

TINY = {"base_width": 8, "input_width": 64, "input_height": 32}


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return make_fake_crops(tmp_path_factory.mktemp("crops"), {"test": 8}, width=64, height=32, seed=3)


@pytest.fixture(scope="module")
def truth(crops: Path) -> pd.DataFrame:
    index = pd.read_parquet(crops / "index.parquet")
    return index[(index["split"] == "test") & (index["crop"] == "eyes")].reset_index(drop=True)


def valid(*args) -> Outcome:
    from l2cs.run_valid_l2cs import cli

    return run_click(cli, [*args, "--device", "cpu", "--workers", "0"])


# --- predictions --------------------------------------------------------------------------------------------

def _predictions(case_id: str, truth: pd.DataFrame) -> bytes:
    names, pitch, yaw = list(truth["crop_id"]), list(truth["gaze_pitch_deg"]), list(truth["gaze_yaw_deg"])
    if case_id == "pred_missing_row":
        names, pitch, yaw = names[1:], pitch[1:], yaw[1:]
    elif case_id == "pred_extra_row":
        names, pitch, yaw = names + ["NIA22EYE_S1_999_T1_S01_S_rgb_F_D_T_99999_eyes"], pitch + [1.0], yaw + [2.0]
    elif case_id == "pred_duplicated":
        names, pitch, yaw = names + names[:1], pitch + [0.0], yaw + [0.0]
    elif case_id == "pred_nan":
        pitch[2] = float("nan")
    elif case_id == "pred_inf":
        yaw[3] = float("inf")
    elif case_id == "pred_escaping_names":
        names += ["../../../etc/passwd", "/abs/x.png", "C:\\x.jpg"]
        pitch, yaw = pitch + [0.0] * 3, yaw + [0.0] * 3
    elif case_id == "pred_missing_column":
        return ("name,pitch\n" + "".join(f"{n},{p}\n" for n, p in zip(names, pitch))).encode()
    elif case_id == "pred_not_a_number":
        text = predictions_csv(names, pitch, yaw).splitlines()
        text[3] = f"{names[2]},abc,{yaw[2]}"
        return ("\n".join(text) + "\n").encode()
    elif case_id == "pred_empty_file":
        return b""
    elif case_id == "pred_binary":
        return np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return predictions_csv(names, pitch, yaw).encode()


@pytest.mark.parametrize("case", L2CS_PREDICTIONS, ids=lambda c: c.id)
def test_hostile_predictions(crops: Path, truth: pd.DataFrame, tmp_path: Path, case: Case) -> None:
    path = tmp_path / "preds.csv"
    path.write_bytes(_predictions(case.id, truth))
    out = tmp_path / "res"
    outcome = valid("--data", crops, "--predictions", path, "--out", out)
    if case.code == 2:
        assert_one_error(outcome, 2, *case.expected(str(path)))
        if case.id in ("pred_missing_row", "pred_duplicated", "pred_nan", "pred_inf"):
            metrics = json.loads((out / "metrics.json").read_text())  # the ERROR record: no value, the counts
            assert metrics["verdict"] == "ERROR" and metrics["value"] is None
            assert metrics["n_samples"] + metrics["n_skipped"] == len(truth)
        else:
            assert not (out / "metrics.json").exists()  # could not run: no verdict file
        return
    assert outcome.code == 0 and "-> PASS" in outcome.out, outcome.err
    metrics = json.loads((out / "metrics.json").read_text())
    floor = np.degrees(np.arccos(REFERENCE_COS_CLAMP))  # exact answers score the reference's clamp, 0.0256 deg
    assert metrics["n_samples"] == len(truth) and metrics["value"] == pytest.approx(floor, abs=1e-9)
    predictions = metrics["provenance"]["model"]["predictions"]
    assert predictions["n_extra"] == (1 if case.id == "pred_extra_row" else 3), predictions
    if case.id == "pred_escaping_names":  # listed as given; only their file names were ever compared
        assert "../../../etc/passwd" in predictions["extra"]


# --- weights ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def our_weights(tmp_path_factory) -> Path:
    """Our format (safetensors + JSON) for the tiny network, untrained: loading, not accuracy, is tested."""
    from common.engine.checkpoint import save_checkpoint
    from l2cs.checkpoint import FORMAT
    from l2cs.config import preset
    from l2cs.model import build_model

    config = preset("demo", **TINY)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "ours.pt"
    save_checkpoint(path, {"model": build_model(config).state_dict(), "config": config.to_dict(), "epoch": 1,
                           "init": "random"}, FORMAT)
    return path


@pytest.mark.parametrize("case", L2CS_WEIGHTS, ids=lambda c: c.id)
def test_hostile_weights(crops: Path, our_weights: Path, tmp_path: Path, case: Case) -> None:
    path, marker = tmp_path / "weights.pt", tmp_path / MARKER_NAME
    from l2cs.checkpoint import FORMAT

    write_hostile_weights(weights_kind(case), path, our_weights, marker, format_tag=FORMAT,
                          wider={"base_width": 16})  # the header says 16 channels, the tensors have 8
    out = tmp_path / "res"
    outcome = valid("--data", crops, "--weights", path, "--out", out)
    assert_one_error(outcome, case.code, *case.expected(str(path)))
    assert not (out / "metrics.json").exists()
    assert not marker.exists()


def test_a_plain_pickle_that_runs_code_is_not_run_either(crops: Path, tmp_path: Path) -> None:
    path, marker = tmp_path / "weights.pkl", tmp_path / MARKER_NAME
    path.write_bytes(pickle.dumps({"fc_yaw_gaze.weight": RunsCode(marker)}))
    outcome = valid("--data", crops, "--weights", path, "--out", tmp_path / "res")
    assert_one_error(outcome, 2, str(path))
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the payload is real: plain unpickling does run it
    assert marker.exists()


def test_our_weights_do_load(crops: Path, our_weights: Path, tmp_path: Path) -> None:
    """The control: the same entry point scores with the untruncated file."""
    outcome = valid("--data", crops, "--weights", our_weights, "--out", tmp_path / "res")
    assert outcome.code in (0, 1) and (tmp_path / "res" / "metrics.json").exists(), outcome.err
