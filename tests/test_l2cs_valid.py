"""l2cs/run_valid_l2cs.py: PASS / FAIL / could-not-run, score-only mode, both ways of starting it."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from l2cs.config import preset
from l2cs.run_valid_l2cs import cli
from l2cs.train import main as train_main
from common.results import run_entry_point
from tests.l2cs_fakes import make_fake_crops

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["name", "subject", "inst", "pred_pitch", "pred_yaw", "true_pitch", "true_yaw", "error_deg"]


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return make_fake_crops(tmp_path_factory.mktemp("crops"), {"train": 64, "val": 16, "test": 16}, seed=1)


@pytest.fixture(scope="module")
def weights(crops: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    config = preset("demo", epochs=3, base_width=8, input_width=64, input_height=32, batch_size=8, workers=0)
    train_main(crops, out, config, device_name="cpu", pretrained=None, resume=False,
               train_split="train", val_split="val")
    return out / "best.pt"


def run_valid(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["run_valid_l2cs.py", *args])
    with pytest.raises(SystemExit) as exited:
        run_entry_point(cli)
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def test_script_run_passes_and_writes_results(crops: Path, weights: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(REPO / "l2cs" / "run_valid_l2cs.py"), "--data", str(crops),
                           "--weights", str(weights), "--out", str(tmp_path), "--workers", "2", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("l2cs: mean angular error") and "-> PASS (n=16, skipped 0" in done.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    per_sample = pd.read_csv(tmp_path / "per_sample.csv")
    assert list(per_sample.columns) == COLUMNS and len(per_sample) == 16
    assert metrics["value"] == pytest.approx(per_sample["error_deg"].mean()) and metrics["value"] <= 10.0
    assert metrics["provenance"]["model"]["weights_format"] == "nia-l2cs/2"
    assert metrics["provenance"]["model"]["init"].startswith("random")
    assert per_sample["name"].str.endswith("_eyes").all()


def _yaw_shifted_predictions(crops: Path, path: Path, shift: float) -> pd.DataFrame:
    index = pd.read_parquet(crops / "index.parquet")
    test = index[(index["split"] == "test") & (index["crop"] == "eyes")]
    table = pd.DataFrame({"name": test["crop_id"], "pitch": test["gaze_pitch_deg"],
                          "yaw": test["gaze_yaw_deg"] + shift})
    table.to_csv(path, index=False)
    return test


def test_score_only_fail_with_hand_computed_error(monkeypatch, capsys, crops: Path, tmp_path: Path) -> None:
    """Same pitch p, yaw off by d: the angle between the gaze vectors is 2 asin(cos p sin(d / 2))."""
    test = _yaw_shifted_predictions(crops, tmp_path / "preds.csv", 15.0)
    expected = sum(2 * math.degrees(math.asin(math.cos(math.radians(p)) * math.sin(math.radians(7.5))))
                   for p in test["gaze_pitch_deg"]) / len(test)
    code, out, _ = run_valid(monkeypatch, capsys, "--data", str(crops), "--predictions", str(tmp_path / "preds.csv"),
                             "--out", str(tmp_path / "res"))
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert code == 1 and "-> FAIL" in out
    assert metrics["value"] == pytest.approx(expected, abs=1e-6) and metrics["passed"] is False
    assert metrics["provenance"]["weights_sha256"] is None


def test_score_only_counts_missing_and_duplicated_names(monkeypatch, capsys, crops: Path, tmp_path: Path) -> None:
    _yaw_shifted_predictions(crops, tmp_path / "preds.csv", 1.0)
    table = pd.read_csv(tmp_path / "preds.csv")
    table = pd.concat([table.iloc[1:], table.iloc[[1]], pd.DataFrame({"name": ["stranger"], "pitch": [0], "yaw": [0]})])
    table.to_csv(tmp_path / "preds.csv", index=False)
    code, out, _ = run_valid(monkeypatch, capsys, "--data", str(crops), "--predictions", str(tmp_path / "preds.csv"),
                             "--out", str(tmp_path / "res"))
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert code == 0 and "(n=14, skipped 2" in out
    assert metrics["skipped"] == {"missing_prediction": 1, "duplicated_prediction": 1}
    assert metrics["provenance"]["model"]["predictions"]["extra"] == ["stranger"]


def test_unreadable_crop_is_counted(monkeypatch, capsys, crops: Path, weights: Path, tmp_path: Path) -> None:
    broken = tmp_path / "crops"
    index = pd.read_parquet(crops / "index.parquet")
    index = index[index["split"] == "test"]
    for rel in index["jpg_path"]:
        (broken / rel).parent.mkdir(parents=True, exist_ok=True)
        (broken / rel).write_bytes((crops / rel).read_bytes())
    (broken / index["jpg_path"].iloc[0]).write_bytes(b"garbage")
    index.to_parquet(broken / "index.parquet")
    code, out, _ = run_valid(monkeypatch, capsys, "--data", str(broken), "--weights", str(weights),
                             "--out", str(tmp_path / "res"), "--workers", "0")
    assert code == 0 and "(n=15, skipped 1" in out
    assert json.loads((tmp_path / "res" / "metrics.json").read_text())["skipped"] == {"unreadable_image": 1}


def test_not_a_crop_dataset_exits_2_saying_what_was_expected(monkeypatch, capsys, weights: Path, tmp_path) -> None:
    code, _, err = run_valid(monkeypatch, capsys, "--data", str(tmp_path), "--weights", str(weights),
                             "--out", str(tmp_path / "res"))
    assert code == 2 and "no valid NIA frame" in err and "expected a crop folder with index.parquet" in err
    assert not (tmp_path / "res" / "metrics.json").exists()


def test_needs_exactly_one_of_weights_or_predictions(monkeypatch, capsys, crops: Path, tmp_path: Path) -> None:
    code, _, err = run_valid(monkeypatch, capsys, "--data", str(crops), "--out", str(tmp_path))
    assert code == 2 and "exactly one of --weights" in err


def test_module_run_help_has_example() -> None:
    done = subprocess.run([sys.executable, "-m", "l2cs.run_valid_l2cs", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Example:" in done.stdout and "--predictions" in done.stdout
