"""Hostile submissions to ritnet/test.py and dfer/valid_nia.py: prediction folders and files, weights files
(tests/hostile_corpus.py, the ``rit_*`` and ``dfer_*`` cases of the predictions and weights areas).

As for L2CS-Net (tests/hostile/test_hostile_submissions.py): every case exits 2 with
one ``error:`` line naming the file, or scores what it must; a submission
that leaves samples unscored leaves the ERROR record, one that could not run
leaves no metrics.json; a weights file whose unpickling would run code never
runs it.
"""
from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from common.engine.checkpoint import save_checkpoint
from tests.hostile_corpus import (DATASETS, DFER_PREDICTIONS, DFER_WEIGHTS, MARKER_NAME, RIT_PREDICTIONS, RIT_WEIGHTS,
                                  Case, by_id, weights_kind, write_hostile_weights)
from tests.hostile_env import Outcome, assert_one_error, run_click

RIT_SIZE = (32, 16)            # crop width, height


def rit_valid(*args) -> Outcome:
    from ritnet.test import cli

    return run_click(cli, [*args, "--device", "cpu", "--workers", "0"])


def dfer_valid(*args) -> Outcome:
    from dfer.valid_nia import cli

    return run_click(cli, [*args, "--device", "cpu", "--workers", "0"])


@pytest.fixture(scope="module")
def rit_crops(tmp_path_factory) -> Path:
    from tests.rit_fakes import make_seg_crops

    return make_seg_crops(tmp_path_factory.mktemp("rit"), {"test": 4}, width=RIT_SIZE[0], height=RIT_SIZE[1])


@pytest.fixture(scope="module")
def dfer_clips(tmp_path_factory) -> Path:
    from tests.dfer_fakes import balanced_clips, write_clip_set

    return write_clip_set(tmp_path_factory.mktemp("dfer"), balanced_clips({"test": 5}))


def scored_split_rows(dataset: Path) -> pd.DataFrame:
    """The test split's rows of a crop or clip dataset's index.parquet (the truth a submission is scored on)."""
    index = pd.read_parquet(dataset / "index.parquet")
    return index[index["split"] == "test"].reset_index(drop=True)


def assert_outcome(case: Case, outcome: Outcome, out: Path, file: Path, n_in_split: int) -> dict | None:
    """The case's one line and exit code; the metrics.json it must (or must not) leave. Returns metrics.json
    of a run that scored."""
    if case.code == 2:
        assert_one_error(outcome, 2, *case.expected(str(file)))
        if "no verdict" in case.line:  # it scored the rest: the ERROR record
            metrics = json.loads((out / "metrics.json").read_text())  # the ERROR record: no value, the counts
            assert metrics["verdict"] == "ERROR" and metrics["value"] is None
            assert metrics["n_samples"] + metrics["n_skipped"] == n_in_split
        else:
            assert not (out / "metrics.json").exists()  # could not run: no verdict file
        return None
    assert outcome.code == 0 and "-> PASS" in outcome.out, outcome.err[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == n_in_split and metrics["value"] == 1.0 and metrics["skipped"] == {}
    return metrics


# --- RIT-Net: a folder of class-map PNGs ------------------------------------------------------------------------

def _rit_predictions(case_id: str, crops: Path, folder: Path) -> Path:
    """The case's prediction folder (the truth's class maps, then the case's damage); returns the {file}."""
    truth = scored_split_rows(crops)
    folder.mkdir()
    for row in truth.itertuples():
        shutil.copy(crops / row.png_path, folder / f"{row.crop_id}.png")
    names = list(truth["crop_id"])
    target = folder / f"{names[1]}.png"
    if case_id == "rit_pred_missing_png":
        target.unlink()
    elif case_id == "rit_pred_extra_png":
        shutil.copy(target, folder / "NIA22EYE_S1_999_T1_S01_S_rgb_F_D_T_99999_r_eye.png")
        (folder / "readme.txt").write_text("ours")
        (folder / "old").mkdir()
    elif case_id == "rit_pred_duplicated":
        shutil.copy(target, target.with_suffix(".PNG"))
    elif case_id == "rit_pred_class_out_of_range":
        class_map = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
        class_map[0, 0] = 255
        cv2.imwrite(str(target), class_map)
    elif case_id == "rit_pred_escaping_link":
        target.unlink()
        os.symlink(crops / truth["png_path"][1], target)
    elif case_id == "rit_pred_wrong_size":
        cv2.imwrite(str(target), np.zeros((RIT_SIZE[1], RIT_SIZE[0] + 1), np.uint8))
    elif case_id == "rit_pred_colour":
        cv2.imwrite(str(target), np.zeros((RIT_SIZE[1], RIT_SIZE[0], 3), np.uint8))
    elif case_id == "rit_pred_16bit":
        for path in folder.iterdir():
            cv2.imwrite(str(path), cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.uint16))
        assert cv2.imread(str(target), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    elif case_id == "rit_pred_empty_file":
        target.write_bytes(b"")
    elif case_id == "rit_pred_binary":
        target.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif case_id in ("rit_pred_pixel_bomb", "rit_pred_over_opencv_limit"):
        from tests.hostile_corpus import png

        side = 20000 if case_id == "rit_pred_pixel_bomb" else 40000
        target.write_bytes(png(side, side, idat=zlib.compress(b"\0" * (side + 1) * 16)))
    elif case_id == "rit_pred_symlink_loop":
        target.unlink()
        os.symlink(target.name, target)
    elif case_id == "rit_pred_not_a_folder":
        shutil.rmtree(folder)
        folder.write_text("not a folder")
        return folder
    return target


@pytest.mark.parametrize("case", RIT_PREDICTIONS, ids=lambda c: c.id)
def test_hostile_rit_predictions(rit_crops: Path, tmp_path: Path, case: Case) -> None:
    folder, out = tmp_path / "pred", tmp_path / "res"
    file = _rit_predictions(case.id, rit_crops, folder)
    outcome = rit_valid("--data", rit_crops, "--predictions", folder, "--out", out)
    metrics = assert_outcome(case, outcome, out, file, n_in_split=len(scored_split_rows(rit_crops)))
    if case.id == "rit_pred_extra_png":  # listed, and they skip no crop
        extra = metrics["provenance"]["model"]["predictions"]["extra"]
        assert extra == ["NIA22EYE_S1_999_T1_S01_S_rgb_F_D_T_99999_r_eye", "other:old/", "other:readme.txt"]


def test_a_link_inside_the_folder_is_read(rit_crops: Path, tmp_path: Path) -> None:
    """The control of rit_pred_escaping_link: a link to a file of the folder itself is the submission's."""
    folder = tmp_path / "pred"
    target = _rit_predictions("none", rit_crops, folder)
    (folder / "kept").mkdir()
    target.rename(folder / "kept" / "map.png")
    os.symlink(Path("kept") / "map.png", target)
    assert rit_valid("--data", rit_crops, "--predictions", folder, "--out", tmp_path / "res").code == 0


# --- Former-DFER: CSV name,label --------------------------------------------------------------------------------

def _dfer_predictions(case_id: str, clips: Path) -> bytes:
    truth = scored_split_rows(clips)
    names, labels = list(truth["clip_id"]), list(truth["state"])
    if case_id == "dfer_pred_missing_row":
        names, labels = names[1:], labels[1:]
    elif case_id == "dfer_pred_extra_row":
        names, labels = names + ["NIA22EYE_S1_999_T1_S01_S_rgb_F_D_T"], labels + ["F"]
    elif case_id == "dfer_pred_duplicated":
        names, labels = names + [f"{names[0]}.mp4"], labels + ["N"]
    elif case_id == "dfer_pred_nan":
        labels[2] = "nan"
    elif case_id == "dfer_pred_unknown_label":
        labels[0] = labels[0].lower()
    elif case_id == "dfer_pred_escaping_names":
        names, labels = names + ["../../../etc/passwd", "/abs/x.mp4", "C:\\x.mp4"], labels + ["F"] * 3
    elif case_id == "dfer_pred_missing_column":
        return ("name\n" + "".join(f"{n}\n" for n in names)).encode()
    elif case_id == "dfer_pred_empty_file":
        return b""
    elif case_id == "dfer_pred_binary":
        return np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return ("name,label\n" + "".join(f"{n},{s}\n" for n, s in zip(names, labels))).encode()


@pytest.mark.parametrize("case", DFER_PREDICTIONS, ids=lambda c: c.id)
def test_hostile_dfer_predictions(dfer_clips: Path, tmp_path: Path, case: Case) -> None:
    path, out = tmp_path / "states.csv", tmp_path / "res"
    path.write_bytes(_dfer_predictions(case.id, dfer_clips))
    outcome = dfer_valid("--data", dfer_clips, "--predictions", path, "--out", out)
    metrics = assert_outcome(case, outcome, out, path, n_in_split=len(scored_split_rows(dfer_clips)))
    if metrics is not None:
        predictions = metrics["provenance"]["model"]["predictions"]
        assert predictions["n_extra"] == (1 if case.id == "dfer_pred_extra_row" else 3), predictions
        if case.id == "dfer_pred_escaping_names":  # listed as given; only their file names were ever compared
            assert "../../../etc/passwd" in predictions["extra"]


# --- weights ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Untrained tiny checkpoints of each test in our format: loading, not accuracy, is tested."""
    from dfer.checkpoint import FORMAT as DFER_FORMAT
    from dfer.config import preset as dfer_preset
    from dfer.model import build_model
    from l2cs.checkpoint import FORMAT as L2CS_FORMAT
    from l2cs.config import preset as l2cs_preset
    from l2cs.model import build_model as build_l2cs
    from ritnet.checkpoint import FORMAT as RIT_FORMAT
    from ritnet.config import preset as rit_preset
    from ritnet.model import DenseNet2D

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    made = {
        "l2cs": (l2cs_preset("demo", base_width=8, input_width=64, input_height=32), build_l2cs, L2CS_FORMAT),
        "rit": (rit_preset("demo", channels=4, input_width=RIT_SIZE[0], input_height=RIT_SIZE[1]),
                lambda c: DenseNet2D(channels=c.channels, dropout=0.0, init="torch"), RIT_FORMAT),
        "dfer": (dfer_preset("demo", base_width=8, frames=4, segments=2, input_size=32), build_model, DFER_FORMAT),
    }
    paths = {}
    for name, (config, build, tag) in made.items():
        paths[name] = folder / f"{name}.pt"
        save_checkpoint(paths[name], {"model": build(config).state_dict(), "config": config.to_dict(), "epoch": 1,
                                      "init": "random"}, tag)
    return paths


WEIGHTS_SETUP = {  # test -> (format, config entries of another width, the other test's checkpoint)
    "rit": ("nia-rit/1", {"channels": 8}, "l2cs"),
    "dfer": ("nia-dfer/1", {"base_width": 16}, "rit"),
}


@pytest.mark.parametrize("case", RIT_WEIGHTS + DFER_WEIGHTS, ids=lambda c: c.id)
def test_hostile_weights(rit_crops: Path, dfer_clips: Path, checkpoints: dict[str, Path], tmp_path: Path,
                         case: Case) -> None:
    test = case.id.split("_")[0]
    tag, wider, other = WEIGHTS_SETUP[test]
    path, marker, out = tmp_path / "weights.pt", tmp_path / MARKER_NAME, tmp_path / "res"
    write_hostile_weights(weights_kind(case), path, checkpoints[test], marker, format_tag=tag, wider=wider,
                          other_test=checkpoints[other])
    if test == "rit":
        outcome = rit_valid("--data", rit_crops, "--weights", path, "--out", out)
    else:
        outcome = dfer_valid("--data", dfer_clips, "--weights", path, "--out", out)
    assert_one_error(outcome, case.code, *case.expected(str(path)))
    assert not (out / "metrics.json").exists()
    assert not marker.exists()


def test_our_weights_do_load(rit_crops: Path, dfer_clips: Path, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """The control: both entry points score with the untouched checkpoints (random weights: PASS or FAIL)."""
    rit = rit_valid("--data", rit_crops, "--weights", checkpoints["rit"], "--out", tmp_path / "rit")
    dfer = dfer_valid("--data", dfer_clips, "--weights", checkpoints["dfer"], "--out", tmp_path / "dfer")
    for outcome, out in ((rit, tmp_path / "rit"), (dfer, tmp_path / "dfer")):
        assert outcome.code in (0, 1) and (out / "metrics.json").exists(), outcome.err[-2000:]


# --- a damaged --data index, a data error in a DataLoader worker (DATASETS) -----------------------------------------

DATA_CASE = by_id(DATASETS)


def _with_null_subject(index: Path, id_column: str) -> None:
    """The index with the subject of its first test row set to null; its nia.* metadata kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(index)
    frame = table.to_pandas()
    frame["subject"] = frame["subject"].astype(object)
    frame.loc[frame.index[frame["split"] == "test"][0], "subject"] = None
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata),
                   index)
    assert pd.read_parquet(index)["subject"].isna().sum() == 1, id_column


@pytest.mark.parametrize("case_id", ["data_index_garbage", "data_index_truncated", "data_null_subject"])
def test_a_damaged_crop_index_is_named(rit_crops: Path, tmp_path: Path, case_id: str) -> None:
    case = DATA_CASE[case_id]
    predictions = tmp_path / "pred"
    _rit_predictions("none", rit_crops, predictions)   # the truth's maps: only the index is damaged
    data = Path(shutil.copytree(rit_crops, tmp_path / "data"))
    index = data / "index.parquet"
    if case_id == "data_index_garbage":
        index.write_bytes(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif case_id == "data_index_truncated":
        index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])
    else:
        _with_null_subject(index, "crop_id")
    outcome = rit_valid("--data", data, "--predictions", predictions, "--out", tmp_path / "res")
    assert_one_error(outcome, case.code, *case.expected(str(index)))


def test_a_null_clip_subject_is_named(dfer_clips: Path, tmp_path: Path) -> None:
    case = DATA_CASE["data_clip_null_subject"]
    predictions = tmp_path / "pred.csv"
    predictions.write_bytes(_dfer_predictions("none", dfer_clips))
    data = Path(shutil.copytree(dfer_clips, tmp_path / "data"))
    _with_null_subject(data / "index.parquet", "clip_id")
    outcome = dfer_valid("--data", data, "--predictions", predictions, "--out", tmp_path / "res")
    assert_one_error(outcome, case.code, *case.expected(str(data / "index.parquet")))


def test_a_clip_index_given_as_a_manifest_is_refused(dfer_clips: Path, tmp_path: Path) -> None:
    case = DATA_CASE["data_clip_index_as_manifest"]
    index = dfer_clips / "index.parquet"
    outcome = rit_valid("--data", index, "--predictions", tmp_path, "--out", tmp_path / "res",
                        "--work-dir", tmp_path / "work")
    assert_one_error(outcome, case.code, *case.expected(str(index)))


class _UndecodableSample(torch.utils.data.Dataset):
    """Item 3 raises the data error a dataset raises for a PNG that does not decode."""

    def __init__(self, png: Path) -> None:
        self.png = png

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> int:
        if index == 3:
            raise ValueError(f"{self.png}: could not decode the PNG")
        return index


def test_a_data_error_in_a_worker_is_its_own_one_line(tmp_path: Path) -> None:
    """torch re-raises a worker's error with the worker's whole traceback as its message (1.5 kB on the error
    line and as the suite table's reason); the entry point gives the original message."""
    import click

    case = DATA_CASE["data_error_in_worker"]
    png = tmp_path / "test" / "x_eyes.png"

    @click.command()
    def read_all() -> None:
        for _ in torch.utils.data.DataLoader(_UndecodableSample(png), batch_size=2, num_workers=2):
            pass

    line = assert_one_error(run_click(read_all, []), case.code, *case.expected(str(png)))
    assert line == f"error: {png}: could not decode the PNG"
