"""Outputs that cannot be written and options that cannot be met (tests/hostile_corpus.py, OUTPUTS and OPTIONS).

Read-only folders are real (a read-only bind mount as root, mode 0555
otherwise) and so is a full disk (a 64 KiB tmpfs, root only). Each case exits
2 with one ``error:`` line naming the folder or file, before any work where
the folder is known to be unwritable; what was there before is intact, and
no empty or partial file is left under a final name.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import cv2
import pytest

from common.atomic import TEMP_NAME
from tests.conftest import write_tree
from tests.hostile_corpus import GOOD_ARCHIVE, OPTIONS, OUTPUTS, by_id, zip_bytes
from tests.hostile_env import Outcome, assert_one_error, fill, full_disk, read_only, run_click, run_nia
from tests.l2cs_fakes import make_fake_crops

CASE = by_id(OUTPUTS + OPTIONS)
TRAIN_ARGS = ["--preset", "demo", "--base-width", "8", "--input-size", "64x32", "--batch-size", "8", "--epochs", "1",
              "--workers", "0", "--device", "cpu"]


def check(outcome: Outcome, case_id: str, file: str | Path = "") -> str:
    case = CASE[case_id]
    return assert_one_error(outcome, case.code, *case.expected(str(file)))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """A 16-frame tree (2 people), its manifest with splits."""
    base = tmp_path_factory.mktemp("outputs")
    root = base / "nia"
    write_tree(root, n_subjects=2, videos_per_subject=2, frames_per_video=4, with_mp4=False, with_video_json=False)
    manifest = base / "manifest.parquet"
    assert run_nia("index", root, "--out", manifest, "--workers", "1").code == 0
    assert run_nia("split", manifest, "--seed", "0", "--out", base / "splits").code == 0
    return {"base": base, "root": root, "manifest": manifest}


@pytest.fixture
def manifest(made: dict, tmp_path: Path) -> Path:
    copy = tmp_path / "in" / "manifest.parquet"
    copy.parent.mkdir()
    shutil.copy(made["manifest"], copy)
    return copy


@pytest.fixture
def ro(tmp_path: Path):
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        yield folder


# --- read-only folders, a file where a folder should be --------------------------------------------------------

def test_index_out_read_only(made: dict, ro: Path) -> None:
    check(run_nia("index", made["root"], "--out", ro / "m.parquet", "--workers", "1"), "out_index_read_only", ro)


def test_index_out_is_folder(made: dict, tmp_path: Path) -> None:
    check(run_nia("index", made["root"], "--out", tmp_path, "--workers", "1"), "out_index_is_folder")


def test_stats_out_read_only(manifest: Path, ro: Path) -> None:
    check(run_nia("stats", manifest, "--out", ro), "out_stats_read_only", ro)


def test_stats_out_is_file(manifest: Path) -> None:
    check(run_nia("stats", manifest, "--out", manifest), "out_stats_is_file")


def test_split_out_read_only_leaves_the_manifest(manifest: Path, ro: Path) -> None:
    before = sha(manifest)
    check(run_nia("split", manifest, "--seed", "1", "--out", ro), "out_split_read_only", ro)
    assert sha(manifest) == before


def test_split_manifest_read_only_writes_no_list(manifest: Path, tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    with read_only(manifest.parent):
        check(run_nia("split", manifest, "--seed", "1", "--out", lists), "out_split_manifest_read_only", manifest.parent)
    assert not list(lists.glob("*.txt"))


def test_crops_out_read_only(manifest: Path, ro: Path) -> None:
    check(run_nia("crops", manifest, ro, "--split-column", "none", "--workers", "1"), "out_crops_read_only", ro)


def test_crops_out_is_file(manifest: Path) -> None:
    check(run_nia("crops", manifest, manifest, "--split-column", "none"), "out_crops_is_file")


def test_clips_out_read_only(manifest: Path, ro: Path) -> None:
    check(run_nia("clips", manifest, ro, "--workers", "1"), "out_clips_read_only", ro)


def test_prepare_dest_is_file(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "file").write_text("x")
    check(run_nia("prepare", tmp_path / "src", tmp_path / "file"), "out_prepare_dest_is_file")


def test_prepare_dest_read_only(tmp_path: Path, ro: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / GOOD_ARCHIVE[0]).write_bytes(zip_bytes(GOOD_ARCHIVE[1]))
    check(run_nia("prepare", tmp_path / "src", ro, "--min-free", "0"), "out_prepare_dest_read_only", ro)


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return make_fake_crops(tmp_path_factory.mktemp("crops"), {"train": 16, "val": 8, "test": 8}, width=64, height=32)


def valid(*args) -> Outcome:
    from l2cs.run_valid_l2cs import cli

    return run_click(cli, [*args, "--device", "cpu", "--workers", "0"])


def _perfect(crops: Path, path: Path) -> Path:
    import pandas as pd

    index = pd.read_parquet(crops / "index.parquet")
    test = index[index["split"] == "test"]
    pd.DataFrame({"name": test["crop_id"], "pitch": test["gaze_pitch_deg"], "yaw": test["gaze_yaw_deg"]}).to_csv(
        path, index=False)
    return path


def test_valid_out_read_only_gives_no_verdict(crops: Path, ro: Path, tmp_path: Path) -> None:
    check(valid("--data", crops, "--predictions", _perfect(crops, tmp_path / "p.csv"), "--out", ro),
          "out_valid_read_only", ro)
    assert not (ro / "metrics.json").exists()


def test_valid_out_is_file(crops: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    check(valid("--data", crops, "--predictions", _perfect(crops, tmp_path / "p.csv"), "--out", tmp_path / "file"),
          "out_valid_is_file")


def train(*args) -> Outcome:
    from l2cs.train import cli

    return run_click(cli, [*args, *TRAIN_ARGS])


def test_train_out_read_only(crops: Path, ro: Path) -> None:
    check(train("--data", crops, "--out", ro), "out_train_read_only", ro)


# --- a full disk ----------------------------------------------------------------------------------------------

def _final_files(folder: Path) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(folder) for f in files if not f.startswith(".")]


def test_crops_on_a_full_disk_leave_no_empty_or_partial_crop(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    with full_disk(out, 64):
        outcome = run_nia("crops", manifest, out, "--split-column", "none", "--workers", "1")
        line = check(outcome, "full_crops", out)
        written = _final_files(out)
        assert len([p for p in written if p.suffix == ".jpg"]) >= 2  # the disk filled up in the middle of the run
        for path in written:  # every file under its final name is whole
            assert path.stat().st_size > 0, path
            if path.suffix in (".jpg", ".png"):
                assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None, path
            elif path.suffix == ".json":
                json.loads(path.read_text())
        assert not any(TEMP_NAME.match(p.name) for p in out.rglob(".*"))
        assert "index.parquet" not in {p.name for p in written}
    assert "error:" in line


def test_stats_on_a_full_disk_keeps_the_earlier_files(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    with full_disk(out, 64):
        assert run_nia("stats", manifest, "--out", out).code == 0
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        fill(out)
        check(run_nia("stats", manifest, "--out", out), "full_stats", out)
        after = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".filler")}
        assert after == before


def test_split_on_a_full_disk_leaves_the_manifest(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    before = sha(manifest)
    with full_disk(out, 64):
        fill(out)
        check(run_nia("split", manifest, "--seed", "1", "--out", out), "full_split", out)
    assert sha(manifest) == before


def test_prepare_into_a_nearly_full_disk_is_refused_before_writing(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / GOOD_ARCHIVE[0]).write_bytes(zip_bytes(GOOD_ARCHIVE[1]))
    dest = tmp_path / "full"
    with full_disk(dest, 64):
        outcome = run_nia("prepare", tmp_path / "src", dest)  # the default --min-free 1G does not fit in 64 KiB
        assert len(outcome.lines_naming("refused: good.zip")) == 1
        assert all(part in outcome.lines_naming("refused: good.zip")[0] for part in CASE["full_prepare"].expected())
        assert outcome.code == 2 and not (dest / "g").exists()


def test_train_on_a_full_disk(crops: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    with full_disk(out, 64):
        check(train("--data", crops, "--out", out), "full_train", out)
        assert not [p for p in _final_files(out) if p.suffix == ".pt"]


@pytest.mark.parametrize(("case_id", "number"), [("full_train_writer_cleans_up", errno.ENOSPC),
                                                 ("quota_train", errno.EDQUOT)])
def test_train_when_the_weights_writer_raises_its_own_io_error(crops: Path, tmp_path: Path, case_id: str,
                                                               number: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """safetensors' documented exception carrying an OS error, the disk not full afterwards: what
    safetensors 0.8 does on a full disk (it removes its partial file first). Its class is not the one
    0.7 raises, so the error is known by what it says, on either version installed here."""
    import safetensors.torch
    from safetensors import SafetensorError

    def writer_that_fails(tensors: dict, filename: str, metadata: dict | None = None) -> None:
        raise SafetensorError(f"Error while serializing: I/O error: {os.strerror(number)} (os error {number})")

    monkeypatch.setattr(safetensors.torch, "save_file", writer_that_fails)
    out = tmp_path / "out"
    line = check(train("--data", crops, "--out", out), case_id, out)
    assert line.split(": ")[1].endswith(".pt") and not [p for p in _final_files(out) if p.suffix == ".pt"]


# --- options that cannot be met -------------------------------------------------------------------------------

def test_index_workers_negative(made: dict, tmp_path: Path) -> None:
    check(run_nia("index", made["root"], "--out", tmp_path / "m.parquet", "--workers", "-3"), "opt_index_workers_negative")


def test_split_counts_over_the_data(manifest: Path) -> None:
    before = sha(manifest)
    check(run_nia("split", manifest, "--counts", "1000,0,0"), "opt_split_counts_over")
    assert sha(manifest) == before


def test_split_ratios_negative(manifest: Path) -> None:
    check(run_nia("split", manifest, "--ratios", "80,-10,30"), "opt_split_ratios_negative")


def test_crops_workers_zero(manifest: Path, tmp_path: Path) -> None:
    check(run_nia("crops", manifest, tmp_path / "c", "--workers", "0"), "opt_crops_workers_zero")


def test_prepare_ratio_below_one(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    check(run_nia("prepare", tmp_path / "src", tmp_path / "d", "--max-ratio", "0.5"), "opt_prepare_ratio_below_one")


def test_prepare_size_garbage(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    check(run_nia("prepare", tmp_path / "src", tmp_path / "d", "--min-free", "lots"), "opt_prepare_size_garbage")


def test_valid_batch_size_zero(crops: Path, tmp_path: Path) -> None:
    check(valid("--data", crops, "--predictions", _perfect(crops, tmp_path / "p.csv"), "--out", tmp_path / "r",
                "--batch-size", "0"), "opt_valid_batch_zero")


def test_train_with_a_thread_binding_to_a_cpu_the_machine_lacks(tmp_path: Path) -> None:
    """A mistyped OMP_PLACES: libgomp ignores the missing CPU; the run goes on and counts only the CPUs that
    exist as usable (it once counted 4095 as one of them)."""
    import json
    import os
    import subprocess
    import sys

    from tests.paths import REPO
    from tests.rit_fakes import make_seg_crops

    data = make_seg_crops(tmp_path / "data", {"train": 8, "val": 4, "test": 2}, width=80, height=48)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env.update({"OMP_PROC_BIND": "true", "OMP_PLACES": "{0},{4095}", "OMP_NUM_THREADS": "1"})
    done = subprocess.run([sys.executable, str(REPO / "ritnet" / "train.py"), "--preset", "demo", "--data", str(data),
                           "--out", str(tmp_path / "out"), "--epochs", "1", "--workers", "0", "--device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=300)
    outcome = Outcome(done.returncode, done.stdout, done.stderr)
    assert outcome.code == CASE["opt_bind_missing_cpu"].code and "Traceback" not in outcome.err, outcome.err[-2000:]
    cores = json.loads((tmp_path / "out" / "config.json").read_text())["cores"]
    assert cores["threads_bound_to"] == "{0},{4095}" and cores["usable_cores"] == 1


def test_train_dfer_at_a_width_whose_channels_last_gradient_oneDNN_gets_wrong(tmp_path: Path) -> None:
    """Former-DFER at base width 4 on the CPU: its layer-2 shortcut is a 1x1 stride-2 convolution of 4 input
    channels, whose channels_last weight gradient aborted with one thread on a Zen 3 (oneDNN 2.6). The run
    trains in the contiguous format instead, says so and records it; two runs give the same losses."""
    import csv
    import subprocess
    import sys

    from tests.dfer_fakes import balanced_clips, write_clip_set
    from tests.paths import REPO

    clips = write_clip_set(tmp_path / "clips", balanced_clips({"train": 10, "val": 5, "test": 0}), coded=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env["OMP_NUM_THREADS"] = "1"
    losses = []
    for run in ("a", "b"):
        out = tmp_path / run
        done = subprocess.run([sys.executable, str(REPO / "dfer" / "train.py"), "--preset", "demo", "--base-width", "4",
                               "--segments", "2", "--input-size", "32", "--batch-size", "4", "--workers", "0",
                               "--epochs", "2", "--data", str(clips), "--out", str(out), "--device", "cpu"],
                              env=env, capture_output=True, text=True, timeout=300)
        case = CASE["opt_dfer_base_width_4_cpu"]
        assert done.returncode == case.code and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert all(part in done.stderr for part in case.expected("")), done.stderr[-2000:]
        assert json.loads((out / "config.json").read_text())["memory_format"].startswith("contiguous, not")
        with (out / "log.csv").open() as handle:
            losses.append([row["train_loss"] for row in csv.DictReader(handle)])
    assert len(losses[0]) == 2 and losses[0] == losses[1]
