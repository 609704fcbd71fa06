"""l2cs/run_valid_l2cs.py: PASS / FAIL / could-not-run, score-only mode, both ways of starting it,
and the coverage rule (issue 10): a sample left unscored by the submission never allows a PASS."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import l2cs.run_valid_l2cs as run_valid_l2cs
from l2cs.config import preset
from l2cs.run_valid_l2cs import cli
from l2cs.train import main as train_main
from common.cli.entry import run_entry_point
from tests.l2cs_fakes import make_fake_crops
from tests.paths import REPO

COLUMNS = ["name", "subject", "inst", "pred_pitch", "pred_yaw", "true_pitch", "true_yaw", "error_deg"]


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return make_fake_crops(tmp_path_factory.mktemp("crops"), {"train": 64, "val": 16, "test": 32}, seed=1)


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
    assert done.stdout.startswith("l2cs: mean angular error") and "-> PASS (n=32, skipped 0" in done.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    per_sample = pd.read_csv(tmp_path / "per_sample.csv")
    assert list(per_sample.columns) == COLUMNS and len(per_sample) == 32
    assert metrics["value"] == pytest.approx(per_sample["error_deg"].mean()) and metrics["value"] <= 10.0
    assert metrics["provenance"]["model"]["weights_format"] == "nia-l2cs/2"
    assert metrics["provenance"]["model"]["init"].startswith("random")
    assert per_sample["name"].str.endswith("_eyes").all()


def test_script_run_chooses_records_and_prints_how_it_spends_the_cores(crops: Path, weights: Path,
                                                                        tmp_path: Path) -> None:
    """Issue 23: no --workers, no OMP_* setting: torch on every usable core, one decode worker beside it, the
    threads sleeping while they wait (set before torch loaded); said in one line and kept in the provenance."""
    from common.cores import available_cores

    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    done = subprocess.run([sys.executable, str(REPO / "l2cs" / "run_valid_l2cs.py"), "--data", str(crops),
                           "--weights", str(weights), "--out", str(tmp_path), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("cores: ")]
    assert len(lines) == 1 and "1 decode worker (chosen), OpenMP wait PASSIVE" in lines[0]
    cores = json.loads((tmp_path / "metrics.json").read_text())["provenance"]["cores"]
    assert cores == {"torch_threads": available_cores(), "threads_from": "usable cores", "decode_workers": 1,
                     "omp_wait_policy": "PASSIVE", "usable_cores": available_cores(), "threads_bound_to": "none"}


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
    code, out, err = run_valid(monkeypatch, capsys, "--data", str(crops), "--predictions", str(tmp_path / "preds.csv"),
                               "--out", str(tmp_path / "res"), "--allow-partial")
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert code == 2 and "-> PARTIAL" in out and "(n=30, skipped 2" in out and err == ""
    assert metrics["skipped"] == {"missing_prediction": 1, "duplicated_prediction": 1}
    assert metrics["verdict"] == "PARTIAL" and metrics["passed"] is None
    assert metrics["provenance"]["model"]["predictions"]["extra"] == ["stranger"]


def test_partial_coverage_gives_no_verdict(monkeypatch, capsys, crops: Path, tmp_path: Path) -> None:
    """Issue 10 case 1: 3 exact rows of a 32-crop split used to print PASS (n=3, skipped 29) and exit 0."""
    _yaw_shifted_predictions(crops, tmp_path / "preds.csv", 0.0)
    pd.read_csv(tmp_path / "preds.csv").iloc[:3].to_csv(tmp_path / "three.csv", index=False)
    code, out, err = run_valid(monkeypatch, capsys, "--data", str(crops), "--predictions", str(tmp_path / "three.csv"),
                               "--out", str(tmp_path / "res"))
    assert code == 2 and out == "" and "PASS" not in err
    assert err == ("error: l2cs: no verdict: 29 of the 32 samples were not scored because of the submission "
                   "(missing_prediction 29); --allow-partial gives a partial score (n=3, skipped 29)\n")
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert metrics["verdict"] == "ERROR" and metrics["passed"] is None and metrics["value"] is None
    assert (metrics["n_samples"], metrics["n_skipped"], metrics["n_in_split"]) == (3, 29, 32)
    assert metrics["skipped_by_kind"] == {"data": 0, "submission": 29}

    code, out, err = run_valid(monkeypatch, capsys, "--data", str(crops), "--predictions", str(tmp_path / "three.csv"),
                               "--out", str(tmp_path / "res"), "--allow-partial")
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert code == 2 and out.startswith("l2cs: mean angular error 0.03 deg on 3 of 32 samples")
    assert "-> PARTIAL, no verdict (n=3, skipped 29" in out and "PASS" not in out
    assert metrics["verdict"] == "PARTIAL" and metrics["passed"] is None
    assert metrics["value"] == pytest.approx(0.0256, abs=1e-4)  # exact answers: the metric's floor (clamped cosine)


def test_a_duplicated_name_blocks_the_verdict(monkeypatch, capsys, crops: Path, tmp_path: Path) -> None:
    """Every crop predicted, one of them twice (with a wrong second answer): that crop is not scored."""
    _yaw_shifted_predictions(crops, tmp_path / "preds.csv", 0.0)
    table = pd.read_csv(tmp_path / "preds.csv")
    twin = table.iloc[[5]].assign(yaw=table["yaw"].iloc[5] + 90)
    pd.concat([table, twin]).to_csv(tmp_path / "preds.csv", index=False)
    code, out, err = run_valid(monkeypatch, capsys, "--data", str(crops), "--predictions", str(tmp_path / "preds.csv"),
                               "--out", str(tmp_path / "res"))
    assert code == 2 and out == "" and "(duplicated_prediction 1)" in err and "(n=31, skipped 1)" in err


def _nan_on(rows: list[int]):
    real = run_valid_l2cs.run_inference

    def run_inference(*args, **kwargs):
        result = real(*args, **kwargs)
        pitch_yaw = result.values.copy()
        pitch_yaw[rows, 1] = np.nan
        return type(result)(pitch_yaw, result.ok)

    return run_inference


def test_nan_model_outputs_are_counted_and_block_the_verdict(monkeypatch, capsys, crops: Path, weights: Path,
                                                              tmp_path: Path) -> None:
    """Issue 10 case 2: NaN outputs on 11 of 32 crops used to give a verdict on n=21 with 'skipped 0'."""
    monkeypatch.setattr(run_valid_l2cs, "run_inference", _nan_on(list(range(0, 32, 3))))
    args = ("--data", str(crops), "--weights", str(weights), "--out", str(tmp_path / "res"), "--workers", "0",
            "--device", "cpu")
    code, out, err = run_valid(monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert "11 of the 32 samples were not scored because of the submission (nonfinite_output 11)" in err
    code, out, err = run_valid(monkeypatch, capsys, *args, "--allow-partial")
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert code == 2 and "-> PARTIAL, no verdict (n=21, skipped 11" in out
    assert metrics["skipped"] == {"nonfinite_output": 11} and metrics["n_in_split"] == 32
    assert len(pd.read_csv(tmp_path / "res" / "per_sample.csv")) == 21


def test_a_failed_rerun_leaves_no_old_verdict(monkeypatch, capsys, crops: Path, tmp_path: Path) -> None:
    """Issue 10 case 3: a rerun into the same --out that exits 2 used to leave the earlier PASS in place."""
    _yaw_shifted_predictions(crops, tmp_path / "preds.csv", 0.5)
    out_dir = tmp_path / "res"
    code, _, _ = run_valid(monkeypatch, capsys, "--data", str(crops), "--predictions", str(tmp_path / "preds.csv"),
                           "--out", str(out_dir))
    assert code == 0 and (out_dir / "metrics.json").is_file()
    (out_dir / "overlays").mkdir()
    (out_dir / "overlays" / "old.png").write_bytes(b"x")
    (out_dir / "notes.txt").write_text("not ours")
    code, _, err = run_valid(monkeypatch, capsys, "--data", str(crops), "--predictions", str(tmp_path / "preds.csv"),
                             "--out", str(out_dir), "--split", "nosuch")
    assert code == 2 and "no 'eyes' crops in split 'nosuch'" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("key", ["stem", "file name"])
def test_score_only_keyed_by_nia_file_stem_or_name(monkeypatch, capsys, crops: Path, tmp_path: Path, key) -> None:
    """Issue 10: a predictions file keyed by the NIA file stems gave 'none of the ... crops could be scored'."""
    test = _yaw_shifted_predictions(crops, tmp_path / "preds.csv", 0.0)
    table = pd.read_csv(tmp_path / "preds.csv")
    table["name"] = test["sample_id"].to_numpy() + ("" if key == "stem" else ".png")
    table.to_csv(tmp_path / "preds.csv", index=False)
    code, out, err = run_valid(monkeypatch, capsys, "--data", str(crops), "--predictions", str(tmp_path / "preds.csv"),
                               "--out", str(tmp_path / "res"))
    assert code == 0 and "-> PASS (n=32, skipped 0," in out, err
    per_sample = pd.read_csv(tmp_path / "res" / "per_sample.csv")
    assert per_sample["name"].tolist() == test["crop_id"].tolist()  # results keep our crop ids


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
    assert code == 0 and "(n=31, skipped 1" in out  # the data's skip: the verdict stands
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert metrics["skipped"] == {"unreadable_image": 1} and metrics["verdict"] == "PASS"
    assert metrics["skipped_by_kind"] == {"data": 1, "submission": 0} and metrics["n_in_split"] == 32


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
    assert "--allow-partial" in done.stdout and "file name or stem" in " ".join(done.stdout.split())
