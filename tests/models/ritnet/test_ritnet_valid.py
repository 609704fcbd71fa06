"""ritnet/test.py: exact counts, PASS / FAIL / no verdict, the coverage rule, score-only folders,
original OpenEDS checkpoints at their framing, overlays in the report."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from common.engine.checkpoint import save_checkpoint
from common.metrics.segmentation import ConfusionMatrix
from common.verdicts.thresholds import ERROR, FAIL, PARTIAL, PASS
from ritnet.checkpoint import FORMAT
from ritnet.config import preset
from ritnet.model import DenseNet2D
from ritnet.test import TASK
from common.engine.validate import Options, run_validation
from tests.rit_fakes import make_seg_crops
from tests.paths import REPO

W, H = 32, 16


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_seg_crops(tmp_path_factory.mktemp("crops"), {"train": 4, "val": 4, "test": 8}, width=W, height=H)


@pytest.fixture()
def crops(source: Path, tmp_path: Path) -> Path:
    """A copy each test may damage."""
    return Path(shutil.copytree(source, tmp_path / "crops"))


def split_rows(crops: Path) -> pd.DataFrame:
    index = pd.read_parquet(crops / "index.parquet")
    return index[index["split"] == "test"].reset_index(drop=True)


def validate(crops: Path, out: Path, *, weights: Path | None = None, predictions: Path | None = None,
             allow_partial: bool = False) -> dict:
    options = Options(data=crops, weights=weights, out=out, work_dir=None, split="test", device_name="cpu",
                      batch_size=4, workers=0, predictions=predictions, allow_partial=allow_partial)
    return run_validation(TASK, options)


def truth_as_predictions(crops: Path, folder: Path) -> Path:
    folder.mkdir()
    for row in split_rows(crops).itertuples():
        shutil.copy(crops / row.png_path, folder / f"{row.crop_id}.png")
    return folder


def our_weights(path: Path, channels: int = 4) -> Path:
    torch.manual_seed(0)
    config = preset("demo", channels=channels, input_width=W, input_height=H)
    model = DenseNet2D(channels=channels, dropout=0.0, init="torch")
    save_checkpoint(path, {"model": model.state_dict(), "config": config.to_dict(), "epoch": 1, "init": "test"},
                    FORMAT)
    return path


def test_perfect_predictions_pass_with_exact_counts_and_overlays(crops: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    result = validate(crops, out, predictions=truth_as_predictions(crops, tmp_path / "pred"))
    assert result["verdict"] == PASS and result["value"] == 1.0 and result["n_samples"] == 16
    per_sample = pd.read_csv(out / "per_sample.csv", keep_default_na=False)
    assert list(per_sample.columns) == ["name", "subject", "inst", "inter_background", "inter_eye_region",
                                        "inter_iris", "union_background", "union_eye_region", "union_iris",
                                        "overlay"]
    for row in split_rows(crops).itertuples():
        truth = cv2.imread(str(crops / row.png_path), cv2.IMREAD_UNCHANGED)
        line = per_sample.set_index("name").loc[row.crop_id]
        for k, name in enumerate(("background", "eye_region", "iris")):
            assert line[f"inter_{name}"] == line[f"union_{name}"] == (truth == k).sum()
    assert result["extra"]["iou_per_class"] == {"background": 1.0, "eye_region": 1.0, "iris": 1.0}
    overlays = [p for p in per_sample["overlay"] if p]
    assert len(overlays) == 6 and sorted(overlays) == sorted(result["extra"]["overlays"])
    assert all(cv2.imread(str(out / p)).shape == (H + 14, 3 * W + 4, 3) for p in overlays)
    assert result["provenance"]["model"]["weights_format"] == "score-only"


def test_missing_and_duplicated_pngs_give_no_verdict(crops: Path, tmp_path: Path) -> None:
    folder = truth_as_predictions(crops, tmp_path / "pred")
    names = list(split_rows(crops)["crop_id"])
    (folder / f"{names[0]}.png").unlink()
    shutil.copy(folder / f"{names[1]}.png", folder / f"{names[1]}.PNG")  # the same crop twice
    (folder / "stray.png").write_bytes((folder / f"{names[2]}.png").read_bytes())
    result = validate(crops, tmp_path / "res", predictions=folder)
    assert result["verdict"] == ERROR and result["value"] is None and result["passed"] is None
    assert result["skipped"] == {"missing_prediction": 1, "duplicated_prediction": 1}
    assert result["n_samples"] == 14 and result["provenance"]["model"]["predictions"]["extra"] == ["stray"]
    partial = validate(crops, tmp_path / "res2", predictions=folder, allow_partial=True)
    assert partial["verdict"] == PARTIAL and partial["value"] == 1.0
    done = subprocess.run([sys.executable, "ritnet/test.py", "--data", str(crops), "--predictions", str(folder),
                           "--out", str(tmp_path / "res3"), "--workers", "0"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "no verdict" in done.stderr  # exit 2: never read as PASS or FAIL


def test_wrong_prediction_png_stops_the_run_naming_it(crops: Path, tmp_path: Path) -> None:
    folder = truth_as_predictions(crops, tmp_path / "pred")
    name = split_rows(crops)["crop_id"][3]
    cv2.imwrite(str(folder / f"{name}.png"), np.full((H, W), 3, np.uint8))
    with pytest.raises(Exception, match=f"{name}.png: holds class id 3"):
        validate(crops, tmp_path / "res", predictions=folder)
    cv2.imwrite(str(folder / f"{name}.png"), np.zeros((H, W + 1), np.uint8))
    with pytest.raises(Exception, match=f"{name}.png: has size"):
        validate(crops, tmp_path / "res", predictions=folder)


def test_model_run_fails_and_counts_the_data_skips(crops: Path, tmp_path: Path) -> None:
    rows = split_rows(crops)
    (crops / rows["png_path"][0]).unlink()                        # set aside: missing_class_map (data)
    (crops / rows["jpg_path"][1]).write_bytes(b"not a jpeg")      # unreadable_image (data)
    weights = our_weights(tmp_path / "w.pt")
    out = tmp_path / "res"
    result = validate(crops, out, weights=weights)
    assert result["verdict"] == FAIL and result["value"] < 0.8     # random weights
    assert result["skipped"] == {"missing_class_map": 1, "unreadable_image": 1}
    assert result["n_samples"] + result["n_skipped"] == result["n_in_split"] == 16
    assert result["provenance"]["model"]["weights_format"] == FORMAT
    per_sample = pd.read_csv(out / "per_sample.csv")
    inter = per_sample[["inter_background", "inter_eye_region", "inter_iris"]].to_numpy().sum(axis=0)
    union = per_sample[["union_background", "union_eye_region", "union_iris"]].to_numpy().sum(axis=0)
    assert result["value"] == pytest.approx(np.nanmean(np.where(union > 0, inter / np.maximum(union, 1), np.nan)))
    done = subprocess.run([sys.executable, "ritnet/test.py", "--data", str(crops), "--weights", str(weights),
                           "--out", str(tmp_path / "res2"), "--workers", "0"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1 and "-> FAIL (n=14, skipped 2" in done.stdout


def test_model_at_a_smaller_input_is_scored_at_the_crop_pixels(crops: Path, tmp_path: Path) -> None:
    """A model trained at half the crop size: its scores are resized to the crop before scoring."""
    torch.manual_seed(0)
    config = preset("demo", channels=4, input_width=W // 2, input_height=H)
    model = DenseNet2D(channels=4, dropout=0.0, init="torch")
    save_checkpoint(tmp_path / "w.pt", {"model": model.state_dict(), "config": config.to_dict()}, FORMAT)
    result = validate(crops, tmp_path / "res", weights=tmp_path / "w.pt")
    assert result["provenance"]["model"]["input"] == f"{W // 2}x{H}"
    assert result["provenance"]["model"]["scored_at"] == f"{W}x{H}"
    per_sample = pd.read_csv(tmp_path / "res" / "per_sample.csv")
    assert (per_sample[["union_background", "union_eye_region", "union_iris"]].sum(axis=1) >= W * H).all()


def test_original_openeds_checkpoint_runs_at_its_framing_and_maps_classes(crops: Path, tmp_path: Path) -> None:
    """A random-weight 4-class OpenEDS model in the reference's file format, made to say "pupil" everywhere.

    The 32x16 crop (margin 0.25) is scaled x18.75 to 600x300 and centred in
    the 400x640 frame: resized columns 100..499 are inside. Area averaging
    back to the crop gives crop column j the resized columns
    [floor(18.75 j), ceil(18.75 (j + 1))): columns 5..26 are at least 65 %
    inside, so pupil -> iris wins there; the rest is background.
    """
    torch.manual_seed(0)
    model = DenseNet2D(num_classes=4, channels=4)
    with torch.no_grad():
        model.out_conv1.weight.zero_()
        model.out_conv1.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 5.0]))
    torch.save(model.state_dict(), tmp_path / "best_model.pkl", _use_new_zipfile_serialization=False)
    out = tmp_path / "res"
    result = validate(crops, out, weights=tmp_path / "best_model.pkl")
    facts = result["provenance"]["model"]
    assert facts["weights_format"] == "original-ritnet" and facts["input"] == "400x640"
    assert facts["openeds"]["margin_source"] == "index metadata"
    assert facts["openeds"]["framing"]["resized_width"] == 600
    expected = np.zeros((H, W), np.uint8)
    expected[:, 5:27] = 2
    per_sample = pd.read_csv(out / "per_sample.csv").set_index("name")
    for row in split_rows(crops).itertuples():
        truth = cv2.imread(str(crops / row.png_path), cv2.IMREAD_UNCHANGED)
        matrix = ConfusionMatrix(3)
        matrix.update(expected, truth)
        line = per_sample.loc[row.crop_id]
        assert [line["inter_background"], line["inter_eye_region"], line["inter_iris"]] == \
            matrix.intersections().tolist()
        assert [line["union_background"], line["union_eye_region"], line["union_iris"]] == matrix.unions().tolist()


def test_report_shows_the_overlays(crops: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    validate(crops, out, predictions=truth_as_predictions(crops, tmp_path / "pred"))
    done = subprocess.run([sys.executable, "-m", "common", "report", str(out), "--out", str(tmp_path / "report")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("class='overlay'") == 6
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["tests"][0]["details"]["recomputed_value"] == 1.0


def test_score_only_needs_no_readable_crop_image(crops: Path, tmp_path: Path) -> None:
    """Predictions are scored against the class maps: a damaged JPG costs no crop (its overlay is grey)."""
    rows = split_rows(crops)
    for jpg in rows["jpg_path"]:
        (crops / jpg).write_bytes(b"damaged")
    result = validate(crops, tmp_path / "res", predictions=truth_as_predictions(crops, tmp_path / "pred"))
    assert result["verdict"] == PASS and result["n_samples"] == 16 and result["n_skipped"] == 0
    assert len(list((tmp_path / "res" / "overlays").glob("*.png"))) == 6
