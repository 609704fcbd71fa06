"""ritnet/train.py on the shared engine: it learns, resume equals an uninterrupted run, the CLI keeps a
resumed run's config, 2 DDP processes equal one, the learning-rate rules."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from common.engine.checkpoint import read_checkpoint
from ritnet.checkpoint import READ_FORMATS, load_model
from ritnet.config import lr_at, preset
from ritnet.train import main
from tests.click_runner import separate_streams_runner
from tests.procs import run_two_processes
from tests.rit_fakes import make_seg_crops
from tests.train_runs import dataset_and_trained_run

# tiny network and input; no dropout and frozen BatchNorm statistics, so that 2 DDP processes compute
# exactly what one process computes (dropout draws and batch statistics are per process)
TINY = {"channels": 4, "input_width": 32, "input_height": 16, "batch_size": 8, "workers": 0, "dropout": 0.0,
        "init": "torch", "lr": 5e-3, "lr_schedule": "plateau", "bn_mode": "frozen"}
TINY_ARGS = ["--preset", "demo", "--channels", "4", "--input-size", "32x16", "--batch-size", "8", "--workers", "0",
             "--dropout", "0", "--init", "torch", "--lr", "5e-3", "--lr-schedule", "plateau", "--bn-mode", "frozen",
             "--device", "cpu"]


def train(data: Path, out: Path, epochs: int, resume: bool = False):
    config = preset("demo", epochs=epochs, **TINY)
    return main(data, out, config, device_name="cpu", resume=resume, train_split="train", val_split="val")


def read_log(out: Path) -> list[dict[str, str]]:
    with (out / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


# three epochs of the tiny network: a few seconds on 2 cores
crops, trained = dataset_and_trained_run(lambda root: make_seg_crops(root, {"train": 48, "val": 8, "test": 8}),
                                         train, data_name="crops")


class Killed(Exception):
    """Stands for a kill between two epochs (after the earlier one's last.pt was written)."""


def train_until_killed(data: Path, out: Path, epochs: int, killed_at: int) -> None:
    from common.engine.train import fit
    from ritnet.train import build_task

    task = build_task(preset("demo", epochs=epochs, **TINY), data, "train", "val")
    planned = task.lr_at

    def lr_or_kill(epoch: int, history):
        if epoch == killed_at:
            raise Killed
        return planned(epoch, history)

    task.lr_at = lr_or_kill
    with pytest.raises(Killed):
        fit(task, out, device_name="cpu")


def test_training_learns_and_writes_its_outputs(trained: Path) -> None:
    rows = read_log(trained)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) == {"epoch", "train_loss", "val_miou", "lr", "seconds"}
    mious = [float(r["val_miou"]) for r in rows]
    losses = [float(r["train_loss"]) for r in rows]
    assert mious[-1] > mious[0] + 0.1 and losses[-1] < losses[0]  # it learns
    best = read_checkpoint(trained / "best.pt", READ_FORMATS)
    assert best["progress"]["best"] == pytest.approx(max(mious), abs=1e-4)
    assert best["init"] == "random (torch)" and best["config"]["channels"] == 4
    loaded = load_model(trained / "best.pt")  # safetensors: no unpickler
    assert loaded.config == preset("demo", epochs=3, **TINY) and loaded.facts["weights_format"] == "nia-rit/1"
    assert (trained / "curves.png").is_file() and json.loads((trained / "config.json").read_text())["epochs"] == 3


@pytest.mark.slow  # two more trainings (21 s of the loaded fast tier); the fast tier keeps `trained`
def test_resume_after_kill_gives_the_same_weights(crops: Path, trained: Path, tmp_path: Path) -> None:
    """Held on both stacks: on the current one it failed in about 3 runs of 8 while the surface loss's
    distance maps came from OpenCV's IPP path, which is not repeatable (ritnet/targets.py, `_without_ipp`)."""
    train_until_killed(crops, tmp_path, epochs=3, killed_at=3)
    assert [r["epoch"] for r in read_log(tmp_path)] == ["1", "2"]
    train(crops, tmp_path, epochs=3, resume=True)
    resumed = read_checkpoint(tmp_path / "last.pt", READ_FORMATS)
    straight = read_checkpoint(trained / "last.pt", READ_FORMATS)
    for key, value in straight["model"].items():
        assert torch.allclose(resumed["model"][key].float(), value.float(), atol=1e-6), key
    assert resumed["progress"]["history"] == pytest.approx(straight["progress"]["history"], abs=1e-6)
    assert [r["epoch"] for r in read_log(tmp_path)] == ["1", "2", "3"]


def test_cli_resume_keeps_the_saved_config(trained: Path, crops: Path, tmp_path: Path) -> None:
    """`--resume` takes the saved config (width 4, not the demo preset's) from last.pt."""
    import ritnet.train

    (tmp_path / "last.pt").write_bytes((trained / "last.pt").read_bytes())
    result = separate_streams_runner().invoke(ritnet.train.cli, ["--data", str(crops), "--out", str(tmp_path),
                                                                   "--resume", "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    assert "from epoch 4" in result.stderr  # 3 epochs done of 3: nothing left to train
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["channels"] == 4 and saved["input_width"] == 32 and saved["epochs"] == 3


def test_learning_rate_rules() -> None:
    official = preset("official", lr=1e-3, plateau_patience=2)
    assert official.lr_schedule == "plateau"
    assert lr_at(official, 1, []) == 1e-3
    # the reference's ReduceLROnPlateau, on val mIoU (higher is better): a 3rd epoch without a gain cuts it
    assert lr_at(official, 5, [0.5, 0.6, 0.6, 0.6]) == pytest.approx(1e-3)
    assert lr_at(official, 6, [0.5, 0.6, 0.6, 0.6, 0.59]) == pytest.approx(1e-4)
    demo = preset("demo", lr=2e-3, epochs=4)
    assert demo.lr_schedule == "cosine" and lr_at(demo, 3, [0.1, 0.9]) == pytest.approx(1e-3)


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process(crops: Path, trained: Path, tmp_path: Path) -> None:
    """torchrun, 2 gloo processes x batch 4 vs 1 process x batch 8, same global batches.

    The validation confusion matrices are summed over the 2 shards, and the
    gradient all-reduce sums in another order, so the two runs agree to float32
    rounding at first; Adam then turns rounding noise in near-zero gradients
    into steps of up to lr each (m / sqrt(v) is about +-1 for a gradient that
    is only noise), so single weights drift apart by a few lr over 18 steps.
    What must hold: the same per-epoch losses (the first to 1e-5, relative), the same
    validation mIoU, and weights within 2 % of their norm (measured: 0.4 %;
    with the gradients not averaged, each process trains on its half alone and
    ends 20 % away, with other losses from the first epoch).
    """
    run_two_processes("ritnet/train.py", [*TINY_ARGS, "--epochs", "3", "--data", str(crops),
                                          "--out", str(tmp_path / "ddp")], "on cpu x2", OMP_NUM_THREADS="1")
    ddp = read_checkpoint(tmp_path / "ddp" / "last.pt", READ_FORMATS)
    single = read_checkpoint(trained / "last.pt", READ_FORMATS)
    assert ddp["config"]["batch_size"] == single["config"]["batch_size"] == 8
    ddp_losses = [float(r["train_loss"]) for r in read_log(tmp_path / "ddp")]
    single_losses = [float(r["train_loss"]) for r in read_log(trained)]
    assert ddp_losses[0] == pytest.approx(single_losses[0], rel=1e-5)  # no drift yet (measured: 7e-7)
    assert ddp_losses == pytest.approx(single_losses, rel=1e-3)
    weights = [key for key, value in single["model"].items() if value.is_floating_point() and "running" not in key]
    distance = sum(float(((ddp["model"][k].float() - single["model"][k].float()) ** 2).sum()) for k in weights)
    norm = sum(float((single["model"][k].float() ** 2).sum()) for k in weights)
    assert (distance / norm) ** 0.5 < 0.02
    assert ddp["progress"]["history"] == pytest.approx(single["progress"]["history"], abs=1e-3)
