"""``kill -9`` in the middle of each long step: the rerun equals an uninterrupted run, does not redo what was
finished, and no worker process outlives the killed command.

Each command runs as a real process, stopped at a chosen point of its work
by tests/stall.py (for points inside workers, the worker stops while the
others go on), and killed with SIGKILL there: no ``finally`` runs, as with
the OOM killer or a pulled plug. The rerun and the uninterrupted reference
run in this process.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from common.atomic import TEMP_NAME
from tests.conftest import write_tree
from tests.hostile_corpus import coded_frames, write_parts, zip_bytes
from tests.hostile_env import REPO, alive, env, kill_hard, run_nia, wait_for

pytestmark = pytest.mark.slow

START_TIMEOUT = 120  # seconds for a stalled command to reach its point on a loaded 2-core machine


def stalled(tmp_path: Path, point: str, *command: str) -> tuple[subprocess.Popen, list[int]]:
    """Start ``command`` under tests/stall.py, wait until it stops at ``point``, kill -9 it.

    Returns the killed process and the worker processes it had.
    """
    reached = tmp_path / f"reached-{os.getpid()}-{time.monotonic_ns()}"
    process = subprocess.Popen([sys.executable, "-m", "tests.stall", point, str(reached), "--", *command],
                               cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(reached.exists, START_TIMEOUT, f"the stall point {point}", process)
        return process, kill_hard(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_no_worker_left(workers: list[int], timeout: float = 5.0) -> None:
    """Every worker of the killed command is gone (the kernel kills them with their parent)."""
    end = time.monotonic() + timeout
    while any(alive(pid) for pid in workers) and time.monotonic() < end:
        time.sleep(0.05)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:  # do not leave them to the next test
        os.kill(pid, 9)
    assert not left, f"worker process(es) {left} outlived the killed command"


def tree_digest(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """relative path -> SHA-256 of every file under ``folder`` (folders named in ``skip`` left out)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part in skip for part in rel.parts):
            out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def temp_leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file() and TEMP_NAME.match(p.name)]


# --- nia prepare ------------------------------------------------------------------------------------------------

def _delivery(src: Path) -> None:
    src.mkdir()
    for k in range(3):
        members = [(f"part{k}/{i:02d}.bin", os.urandom(20_000)) for i in range(12)]
        data = zip_bytes(members)
        if k == 1:
            write_parts(src, f"a{k}.zip", data, 3)
        else:
            (src / f"a{k}.zip").write_bytes(data)


def test_prepare_killed_mid_member(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _delivery(src)
    reference = tmp_path / "reference"
    assert run_nia("prepare", src, reference, "--min-free", "0").code == 0
    dest = tmp_path / "dest"
    # copies: a0's 12 members, then a1's 3 parts merged, then a1's members: stop in a1's 5th member
    stalled(tmp_path, "prepare-copy:20", "nia", "prepare", str(src), str(dest), "--min-free", "0")
    assert (dest / ".nia-prepare" / "a0.zip.done").exists() and not (dest / ".nia-prepare" / "a1.zip.done").exists()
    rerun = run_nia("prepare", src, dest, "--min-free", "0")
    assert rerun.code == 0, rerun.err
    assert "skipped 1 finished archive(s)" in rerun.out  # a0 is not extracted again
    assert "4 already complete" in rerun.out  # nor a1's four members written before the kill
    assert tree_digest(dest, (".nia-prepare",)) == tree_digest(reference, (".nia-prepare",))
    assert sorted(p.name for p in (dest / ".nia-prepare").iterdir()) == ["a0.zip.done", "a1.zip.done", "a2.zip.done"]
    assert temp_leftovers(dest) == []


# --- nia index ------------------------------------------------------------------------------------------------------

def test_index_killed_mid_parse(tmp_path: Path) -> None:
    root = tmp_path / "nia"
    write_tree(root, n_subjects=2, videos_per_subject=2, frames_per_video=6, with_mp4=False)
    manifest = tmp_path / "m.parquet"
    assert run_nia("index", root, "--out", manifest, "--workers", "2").code == 0
    previous = manifest.read_bytes()
    from tests.conftest import change_gaze_point

    changed = sorted(root.rglob("*_3.json"))[0]
    change_gaze_point(changed, [100, 200])
    reference = tmp_path / "reference.parquet"
    assert run_nia("index", root, "--out", reference, "--workers", "1", "--full").code == 0
    a_label = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json"))[8]
    _, workers = stalled(tmp_path, f"index-parse:{a_label}", "nia", "index", str(root), "--out",
                         str(manifest), "--workers", "2", "--full")
    assert len(workers) == 2
    assert_no_worker_left(workers)
    assert manifest.read_bytes() == previous  # the earlier manifest, whole
    assert temp_leftovers(tmp_path) == []
    from common.atomic import temp_path_for

    temp_path_for(manifest).write_bytes(b"PAR1 half")  # what a kill while writing the manifest would leave
    rerun = run_nia("index", root, "--out", manifest, "--workers", "2")
    assert rerun.code == 0 and "1 labels parsed" in rerun.out  # only the changed label is parsed again
    assert temp_leftovers(tmp_path) == []
    from common.delivery.manifest import read_manifest

    pd.testing.assert_frame_equal(read_manifest(manifest)[0], read_manifest(reference)[0])


# --- nia crops ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crop_input(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("crop-input")
    root = base / "nia"
    tree = write_tree(root, n_subjects=2, videos_per_subject=2, frames_per_video=4, with_mp4=False,
                      with_video_json=False)
    manifest = base / "manifest.parquet"
    assert run_nia("index", root, "--out", manifest, "--workers", "1").code == 0
    reference = base / "reference"
    assert run_nia("crops", manifest, reference, "--split-column", "none", "--workers", "1").code == 0
    return {"manifest": manifest, "reference": reference, "frames": sorted(tree.frames)}


def test_crops_killed_mid_run(tmp_path: Path, crop_input: dict) -> None:
    out = tmp_path / "crops"
    target = crop_input["frames"][5]
    _, workers = stalled(tmp_path, f"crops-row:{target}", "nia", "crops", str(crop_input["manifest"]), str(out),
                         "--split-column", "none", "--workers", "2", "--chunk-size", "2")
    assert len(workers) >= 2
    assert_no_worker_left(workers)
    assert not (out / "index.parquet").exists()
    rerun = run_nia("crops", crop_input["manifest"], out, "--split-column", "none", "--workers", "2",
                    "--chunk-size", "2")
    assert rerun.code == 0, rerun.err
    summary = json.loads((out / "crops_summary.json").read_text())
    assert summary["crops_already_present"] >= 6  # at least the killed worker's two rows: not written again
    assert summary["crops_written"] + summary["crops_already_present"] == summary["crops_in_index"] == 48
    reference = crop_input["reference"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "index.parquet"), pd.read_parquet(reference / "index.parquet"))
    skip = ("crops_summary.json", "index.parquet")  # counts of this run; the index compared above
    assert tree_digest(out, skip) == tree_digest(reference, skip)
    assert temp_leftovers(out) == []


# --- nia clips ------------------------------------------------------------------------------------------------------

def test_clips_killed_mid_probe(tmp_path: Path) -> None:
    from common.synth.mp4 import write_mp4
    from tests.conftest import SOURCE_DIR, video_stem

    root = tmp_path / "nia"
    folder = root / SOURCE_DIR / "TS_S" / "001"
    folder.mkdir(parents=True)
    stems = [video_stem(f"{s:03d}", 10 + v, "S", "rgb", "F", "D") for s in (1, 2, 3) for v in range(2)]
    for k, stem in enumerate(stems):
        write_mp4(folder / f"{stem}.mp4", coded_frames(16 + k), 30.0)
    manifest = tmp_path / "m.parquet"
    assert run_nia("index", root, "--out", manifest, "--workers", "1").code == 0
    assert run_nia("split", manifest, "--seed", "0", "--ratios", "34,33,33").code == 0
    reference = tmp_path / "reference"
    assert run_nia("clips", manifest, reference, "--workers", "1").code == 0
    out = tmp_path / "clips"
    _, workers = stalled(tmp_path, f"clips-probe:{stems[3]}", "nia", "clips", str(manifest), str(out),
                         "--workers", "2", "--chunk-size", "1")
    assert_no_worker_left(workers)
    assert not (out / "index.parquet").exists()
    rerun = run_nia("clips", manifest, out, "--workers", "2", "--chunk-size", "1")
    assert rerun.code == 0, rerun.err
    summary = json.loads((out / "clips_summary.json").read_text())
    assert summary["videos_reused"] >= 1 and summary["videos_probed"] < len(stems)  # counted before the kill
    ours, theirs = pd.read_parquet(out / "index.parquet"), pd.read_parquet(reference / "index.parquet")
    pd.testing.assert_frame_equal(ours, theirs)
    assert temp_leftovers(out) == []


# --- training scripts -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainScript:
    """A train.py with tiny settings (seconds an epoch on 2 cores) and the fixture that makes its data."""

    script: str
    args: list[str]
    steps_per_epoch: int   # optimizer steps of one epoch on the fixture's training split
    data: str              # fixture name
    format_tag: str        # its checkpoints' format


TRAIN_SCRIPTS = {
    "l2cs": TrainScript("l2cs/train.py", ["--preset", "demo", "--lr-schedule", "constant", "--base-width", "8",
                                          "--input-size", "64x32", "--batch-size", "8", "--workers", "0",
                                          "--bn-mode", "frozen", "--device", "cpu"], 2, "l2cs_data", "nia-l2cs/2"),
    # 8 samples x 2 eyes = 16 training crops, batch 8; dropout and augmentation on (their draws must resume too)
    "ritnet": TrainScript("ritnet/train.py", ["--preset", "demo", "--channels", "4", "--input-size", "32x16",
                                              "--batch-size", "8", "--workers", "0", "--lr", "5e-3", "--dropout", "0.2",
                                              "--lr-schedule", "cosine", "--device", "cpu"], 2, "rit_data",
                          "nia-rit/1"),
    # 8 training clips, batch 4; 4 frames of 32 x 32
    "dfer": TrainScript("dfer/train.py", ["--preset", "demo", "--base-width", "8", "--segments", "2",
                                          "--input-size", "32", "--batch-size", "4", "--workers", "0",
                                          "--lr", "0.01", "--lr-step", "2", "--device", "cpu"], 2, "dfer_data",
                        "nia-dfer/1"),
}


@pytest.fixture(scope="module")
def l2cs_data(tmp_path_factory) -> Path:
    from tests.l2cs_fakes import make_fake_crops

    return make_fake_crops(tmp_path_factory.mktemp("train-crops"), {"train": 16, "val": 8, "test": 8},
                           width=64, height=32)


@pytest.fixture(scope="module")
def rit_data(tmp_path_factory) -> Path:
    from tests.rit_fakes import make_seg_crops

    return make_seg_crops(tmp_path_factory.mktemp("rit-crops"), {"train": 8, "val": 4})


@pytest.fixture(scope="module")
def dfer_data(tmp_path_factory) -> Path:
    from tests.dfer_fakes import balanced_clips, write_clip_set

    return write_clip_set(tmp_path_factory.mktemp("dfer-clips"), balanced_clips({"train": 8, "val": 5}))


def _log(out: Path) -> list[dict[str, str]]:
    with (out / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("name", sorted(TRAIN_SCRIPTS))
def test_training_killed_mid_epoch_resumes_to_the_same_weights(name: str, tmp_path: Path,
                                                               request: pytest.FixtureRequest) -> None:
    train = TRAIN_SCRIPTS[name]
    data = request.getfixturevalue(train.data)
    args = [str(REPO / train.script), "--data", str(data), *train.args, "--epochs", "3"]
    reference = tmp_path / "reference"
    done = subprocess.run([sys.executable, *args, "--out", str(reference)], cwd=REPO, env=env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(_log(reference)) == 3
    out = tmp_path / "run"
    stalled(tmp_path, f"train-step:{train.steps_per_epoch + 1}", *args, "--out", str(out))  # in epoch 2
    first = _log(out)
    assert [row["epoch"] for row in first] == ["1"]  # epoch 1's last.pt and log row were written
    resumed = subprocess.run([sys.executable, *args, "--out", str(out), "--resume"], cwd=REPO, env=env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "from epoch 2" in resumed.stderr + resumed.stdout
    log, expected = _log(out), _log(reference)
    assert log[0] == first[0]  # epoch 1 was not trained again (its own seconds, kept)
    columns = [c for c in expected[0] if c != "seconds"]
    assert [[row[c] for c in columns] for row in log] == [[row[c] for c in columns] for row in expected]
    from common.engine.checkpoint import read_checkpoint

    for name_pt in ("best.pt", "last.pt"):
        ours = read_checkpoint(out / name_pt, (train.format_tag,))["model"]
        theirs = read_checkpoint(reference / name_pt, (train.format_tag,))["model"]
        assert ours.keys() == theirs.keys() and all(ours[k].equal(theirs[k]) for k in theirs), name_pt
    assert temp_leftovers(out) == []
