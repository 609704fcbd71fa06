"""Result folders of the three tests with NIA file names, for the report's group, compare and browser tests.

Unlike tests/unit/report/test_report.py's fakes (plain names), every sample here is named
as the suite names it (`NIA22EYE_site_subject_try_scenario_device_type_state_posture_direction[_frame]`
+ the crop), so the report can split it by display, image type, state,
posture, direction and subject. l2cs has a block of off-screen crops in state
N with errors near 40 deg: the group that must come first.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.metrics import angular_errors_deg, mean_ci
from common.verdicts.provenance import collect_provenance
from common.verdicts.results import write_results
from ritnet.scoring import CLASS_NAMES

SUBJECTS = ["101", "102", "103", "104", "105", "106"]
DEVICES = ["S", "T", "L", "V", "M"]
STATES = ["F", "S", "D", "A", "N"]
SEG_CLASSES = list(CLASS_NAMES)  # the names RIT-Net's per_sample.csv uses (the report checks the class set)
N_GAZE, N_OFF_SCREEN, N_SEG, N_CLIPS = 240, 20, 24, 60


def nia_stem(i: int, *, state: str | None = None, frame: int | None = None) -> str:
    """A well-formed NIA stem whose fields cycle with ``i`` (state forced when given)."""
    fields = ["NIA22EYE", "A", SUBJECTS[i % len(SUBJECTS)], str(i), "2", DEVICES[i % 5], ["rgb", "ir"][i % 2],
              state or STATES[i % 4], ["S", "D"][i % 2], ["T", "L", "R"][i % 3]]
    return "_".join(fields + ([f"{frame:04d}"] if frame is not None else []))


def gaze_frame(seed: int = 0, noise_deg: float = 2.0, off_screen_bias: float = 40.0) -> pd.DataFrame:
    """l2cs per-sample rows: the last N_OFF_SCREEN crops are off-screen looks in state N, far off."""
    rng = np.random.default_rng(seed)
    true = rng.uniform(-15, 15, size=(N_GAZE, 2))
    off = np.arange(N_GAZE) >= N_GAZE - N_OFF_SCREEN
    true[off, 0] = rng.uniform(-57, -40, off.sum())
    pred = true + rng.normal(0, noise_deg, size=true.shape)
    pred[off, 0] += off_screen_bias
    names = [f"{nia_stem(i, state='N' if off[i] else None, frame=i)}_eyes" for i in range(N_GAZE)]
    return pd.DataFrame({
        "name": names, "subject": [n.split("_")[2] for n in names], "inst": [n.split("_")[5] for n in names],
        "pred_pitch": pred[:, 0], "pred_yaw": pred[:, 1], "true_pitch": true[:, 0], "true_yaw": true[:, 1],
        "error_deg": angular_errors_deg(pred, true), "on_screen": ~off,
    })


def write_gaze(out: Path, frame: pd.DataFrame, **provenance: object) -> dict:
    errors = frame["error_deg"].to_numpy()
    return write_results(out, test="l2cs", metric="mean_angular_error_deg", value=float(errors.mean()),
                         per_sample=frame, n_skipped=0, skipped={}, n_in_split=len(frame),
                         ci95=mean_ci(errors, frame["subject"], n_boot=100),
                         provenance=collect_provenance(extra={"gaze_method": "geometric", **provenance}))


def segmentation_frame(seed: int = 0) -> pd.DataFrame:
    """rit per-sample rows: ir crops have half the iris intersection of rgb ones."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(N_SEG):
        ir = i % 2 == 1
        union = np.array([900.0, 300.0, 100.0]) + rng.integers(0, 20, 3)
        inter = union * np.array([0.97, 0.85, 0.4 if ir else 0.8])
        row = {"name": f"{nia_stem(i, frame=i)}_r_eye", "subject": SUBJECTS[i % len(SUBJECTS)], "inst": DEVICES[i % 5]}
        row.update({f"inter_{c}": float(v) for c, v in zip(SEG_CLASSES, np.floor(inter))})
        row.update({f"union_{c}": float(v) for c, v in zip(SEG_CLASSES, union)})
        rows.append(row)
    return pd.DataFrame(rows)


def write_segmentation(out: Path, frame: pd.DataFrame) -> dict:
    inter = frame[[f"inter_{c}" for c in SEG_CLASSES]].to_numpy().sum(axis=0)
    union = frame[[f"union_{c}" for c in SEG_CLASSES]].to_numpy().sum(axis=0)
    return write_results(out, test="rit", metric="miou", value=float(np.mean(inter / union)), per_sample=frame,
                         n_skipped=0, skipped={}, ci95=None, n_in_split=len(frame),
                         provenance=collect_provenance(extra={"classes": SEG_CLASSES}),
                         extra={"include_background": True})


def state_frame(seed: int = 0, flip: tuple[int, ...] = ()) -> pd.DataFrame:
    """dfer per-sample rows: posture D clips are wrong half the time; ``flip`` changes those clips' pred."""
    rng = np.random.default_rng(seed)
    truth = np.array([STATES[i % 5] for i in range(N_CLIPS)])
    wrong = (np.arange(N_CLIPS) % 2 == 1) & (rng.random(N_CLIPS) < 0.5)
    pred = np.where(wrong, np.roll(truth, 1), truth)
    for i in flip:
        pred[i] = STATES[(STATES.index(pred[i]) + 2) % 5]
    names = [nia_stem(i, state=str(truth[i])) for i in range(N_CLIPS)]
    return pd.DataFrame({"name": names, "subject": [n.split("_")[2] for n in names], "inst": "T",
                         "pred": pred, "truth": truth})


def write_state(out: Path, frame: pd.DataFrame, **provenance: object) -> dict:
    correct = (frame["pred"] == frame["truth"]).to_numpy()
    return write_results(out, test="dfer", metric="war", value=float(correct.mean()), per_sample=frame,
                         n_skipped=0, skipped={}, n_in_split=len(frame),
                         ci95=mean_ci(correct, frame["subject"], n_boot=100),
                         provenance=collect_provenance(extra={"classes": STATES, **provenance}),
                         extra={"classes": STATES})


def write_all(root: Path, seed: int = 0) -> dict[str, Path]:
    """The three result folders under ``root``; returns test -> folder."""
    dirs = {test: root / test for test in ("l2cs", "rit", "dfer")}
    write_gaze(dirs["l2cs"], gaze_frame(seed))
    write_segmentation(dirs["rit"], segmentation_frame(seed))
    write_state(dirs["dfer"], state_frame(seed))
    return dirs
