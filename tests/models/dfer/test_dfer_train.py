"""dfer/train.py: learning, outputs, resume = uninterrupted, pretrained originals, and DDP = one process."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from dfer.checkpoint import load_model, read_our_checkpoint
from dfer.config import preset
from dfer.model import build_model
from dfer.train import main
from tests.click_runner import separate_streams_runner
from tests.dfer_fakes import balanced_clips, write_clip_set
from tests.train_runs import dataset_and_trained_run
from tests.procs import run_two_processes

# a tiny network on 4 frames of 32 x 32; frozen BatchNorm statistics, so that 2 DDP processes
# compute exactly what one process computes (no SyncBatchNorm on the CPU). lr 0.005: at 0.01 this
# network's loss jumps about on the colour clips for the first few hundred steps and stays near chance
TINY = {"base_width": 8, "frames": 4, "segments": 2, "input_size": 32, "batch_size": 4, "workers": 0,
        "bn_mode": "frozen", "lr": 0.005, "lr_step": 100, "patience": 100}
TINY_ARGS = ["--preset", "demo", "--base-width", "8", "--segments", "2", "--input-size", "32", "--batch-size", "4",
             "--workers", "0", "--bn-mode", "frozen", "--lr", "0.005", "--lr-step", "100", "--patience", "100",
             "--device", "cpu"]
EPOCHS = 5


def tiny(epochs: int, **changes):
    return preset("demo", epochs=epochs, **{**TINY, **changes})


def train(data: Path, out: Path, epochs: int, resume: bool = False, **changes):
    return main(data, out, tiny(epochs, **changes), device_name="cpu", pretrained=None, resume=resume)


# clips of one colour per state (no frame codes): 150 steps of the tiny network learn them
clips, trained = dataset_and_trained_run(
    lambda root: write_clip_set(root, balanced_clips({"train": 120, "val": 20, "test": 10}), coded=False),
    train, data_name="clips", epochs=EPOCHS)


def test_training_learns_and_writes_its_outputs(trained: Path) -> None:
    with (trained / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == [str(e) for e in range(1, EPOCHS + 1)]
    assert set(rows[0]) == {"epoch", "train_loss", "val_war", "lr", "seconds"}
    losses = [float(r["train_loss"]) for r in rows]
    assert min(losses[1:]) < 0.6 * losses[0]  # measured 1.82 -> 0.70 (1 thread, AMD EPYC)
    wars = [float(r["val_war"]) for r in rows]
    assert max(wars) >= 0.6  # 20 clips of 5 colours, chance 0.2 (12 right by chance: p < 1e-4); measured 0.8
    best = read_our_checkpoint(trained / "best.pt")
    assert best["progress"]["best"] == pytest.approx(max(wars), abs=1e-4)
    assert best["config"]["base_width"] == 8 and best["init"].startswith("random")
    assert (trained / "curves.png").stat().st_size > 1000 and (trained / "config.json").is_file()


def test_our_checkpoint_loads_with_its_config(trained: Path) -> None:
    loaded = load_model(trained / "best.pt")
    model, info = loaded.model, loaded.facts
    assert info["weights_format"] == "nia-dfer/1" and info["model_config"]["frames"] == 4 == loaded.config.frames
    assert not model.training and model(torch.rand(2, 4, 3, 32, 32)).shape == (2, 5)


@pytest.mark.slow  # two more trainings (43 s of the loaded fast tier); the fast tier keeps `trained`
def test_resume_after_kill_gives_the_same_weights(clips: Path, trained: Path, tmp_path: Path) -> None:
    train(clips, tmp_path, epochs=EPOCHS - 1)  # "killed" after the epoch before the last
    train(clips, tmp_path, epochs=EPOCHS, resume=True)
    resumed, straight = read_our_checkpoint(tmp_path / "last.pt"), read_our_checkpoint(trained / "last.pt")
    for key, value in straight["model"].items():
        assert torch.allclose(resumed["model"][key].float(), value.float(), atol=1e-6), key
    with (tmp_path / "log.csv").open() as handle:
        assert [r["epoch"] for r in csv.DictReader(handle)] == [str(e) for e in range(1, EPOCHS + 1)]


@pytest.mark.slow  # a 3-epoch training (35 s of the loaded fast tier)
def test_the_step_schedule_is_applied(clips: Path, tmp_path: Path) -> None:
    train(clips, tmp_path, epochs=3, lr_step=2, lr=0.04)
    with (tmp_path / "log.csv").open() as handle:
        assert [float(r["lr"]) for r in csv.DictReader(handle)] == pytest.approx([0.04, 0.04, 0.004])


@pytest.mark.slow  # a 7-class model and a training (18 s of the loaded fast tier)
def test_a_seven_class_original_initialises_all_but_the_classifier(clips: Path, tmp_path: Path) -> None:
    """--pretrained with the reference's file layout (7 classes, `module.`, `state_dict`): the backbone is
    the file's, the 5-class classifier is fresh."""
    original = build_model(tiny(1, num_classes=7))
    path = tmp_path / "original.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in original.state_dict().items()}}, path)
    main(clips, tmp_path / "run", tiny(1, lr=1e-9), device_name="cpu", pretrained=path, resume=False)
    state = read_our_checkpoint(tmp_path / "run" / "last.pt")
    assert state["init"].startswith(f"original Former-DFER:{path}; fresh fc.bias, fc.weight")
    conv = "s_former.conv1.weight"
    assert torch.allclose(state["model"][conv], original.state_dict()[conv], atol=1e-6)
    assert state["model"]["fc.weight"].shape == (5, original.fc.weight.shape[1])  # 5 fresh classes, same features


def test_early_stopping_on_the_test_split_is_refused(clips: Path, tmp_path: Path) -> None:
    from dfer.train import cli

    result = separate_streams_runner().invoke(cli, ["--data", str(clips), "--out", str(tmp_path),
                                                      "--val-split", "test"], standalone_mode=False)
    assert "early stopping on the test split" in str(result.exception)


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process(tmp_path_factory, tmp_path: Path) -> None:
    """torchrun, 2 gloo processes x 2 clips vs 1 process x 4 clips, same global batches and draws.

    The gradient all-reduce adds in another order than one process does, so
    float32 weights agree to rounding: atol 1e-4 after 5 epochs of 40 clips
    (50 steps; after the 150 steps of the learning test's set they differ by
    up to 4e-4).
    """
    clips = write_clip_set(tmp_path_factory.mktemp("dfer_ddp"), balanced_clips({"train": 40, "val": 10, "test": 10}),
                           coded=False)
    trained = tmp_path / "single"
    train(clips, trained, epochs=EPOCHS)
    out = tmp_path / "ddp"
    out.mkdir()
    run_two_processes("dfer/train.py", [*TINY_ARGS, "--epochs", str(EPOCHS), "--data", str(clips), "--out", str(out)],
                      "on cpu x2", OMP_NUM_THREADS="1")
    ddp, single = read_our_checkpoint(out / "last.pt"), read_our_checkpoint(trained / "last.pt")
    assert ddp["config"] == single["config"]
    for key, value in single["model"].items():
        assert torch.allclose(ddp["model"][key].float(), value.float(), atol=1e-4), key
    assert ddp["progress"]["history"] == pytest.approx(single["progress"]["history"], abs=1e-6)
