"""l2cs/train.py: learning, the pitch/yaw naming, resume, and DDP = one process."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from l2cs.checkpoint import load_model, read_checkpoint
from l2cs.config import IMAGENET_MEAN, IMAGENET_STD, preset
from l2cs.bins import BinSpec
from common.engine.batches import normalize_batch
from l2cs.train import main
from tests.click_runner import separate_streams_runner
from tests.l2cs_fakes import make_fake_crops, render_eyes
from tests.procs import run_two_processes
from tests.train_runs import dataset_and_trained_run
from tests.paths import REPO

# tiny network and input; frozen BatchNorm statistics so that 2 DDP processes
# compute exactly what one process computes (no SyncBatchNorm on CPU)
TINY = {"base_width": 8, "input_width": 64, "input_height": 32, "batch_size": 8, "workers": 0,
        "bn_mode": "frozen", "flip_prob": 0.5}
TINY_ARGS = ["--preset", "demo", "--lr-schedule", "constant", "--base-width", "8", "--input-size", "64x32", "--batch-size", "8",
             "--workers", "0", "--bn-mode", "frozen", "--device", "cpu"]


def train(data: Path, out: Path, epochs: int, resume: bool = False):
    # constant lr: a run stopped by `epochs=2` then resumed with `epochs=3` is then the same as
    # a killed 3-epoch run (a cosine schedule depends on the planned epochs; it is tested apart)
    config = preset("demo", epochs=epochs, lr_schedule="constant", **TINY)
    return main(data, out, config, device_name="cpu", pretrained=None, resume=resume,
                train_split="train", val_split="val")


# three epochs of the tiny network: a few seconds on 2 cores
crops, trained = dataset_and_trained_run(lambda root: make_fake_crops(root, {"train": 64, "val": 16, "test": 16}),
                                         train, data_name="crops")


def test_training_writes_checkpoints_and_log(trained: Path) -> None:
    with (trained / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) == {"epoch", "train_loss", "val_mae_deg", "lr", "seconds"}
    maes = [float(r["val_mae_deg"]) for r in rows]
    assert maes[-1] < maes[0]  # it learns
    best = read_checkpoint(trained / "best.pt")
    assert best["progress"]["best"] == pytest.approx(min(maes), abs=1e-4)
    curves = cv2.imread(str(trained / "curves.png"))
    assert curves is not None and curves.shape[0] > 100 and curves.std() > 0  # a drawn plot, not a blank
    assert best["init"].startswith("random")
    assert read_checkpoint(trained / "last.pt")["epoch"] == 3


def predict_angles(model: torch.nn.Module, image: np.ndarray) -> tuple[float, float]:
    batch = normalize_batch(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None],
                            torch.device("cpu"), IMAGENET_MEAN, IMAGENET_STD)
    bins = BinSpec(90, 4.0, -180.0)
    with torch.inference_mode():
        pitch_logits, yaw_logits = model(batch)
    return bins.decode(pitch_logits).item(), bins.decode(yaw_logits).item()


def test_names_pitch_vertical_yaw_horizontal_by_flipping(trained: Path) -> None:
    """A mirrored crop must flip the sign of *yaw* (horizontal) and keep *pitch*.

    Had the heads been swapped (as the reference's variable names are),
    the sign change would show up in the value we call pitch.
    """
    model = load_model(trained / "best.pt").model
    for true_pitch, true_yaw in ((12.0, 22.0), (-10.0, -20.0)):
        image = render_eyes(true_pitch, true_yaw, 64, 32)
        pitch, yaw = predict_angles(model, image)
        flipped_pitch, flipped_yaw = predict_angles(model, image[:, ::-1])
        assert np.sign(yaw) == np.sign(true_yaw) == -np.sign(flipped_yaw)
        assert min(abs(yaw), abs(flipped_yaw)) > 10.0
        assert np.sign(pitch) == np.sign(flipped_pitch) == np.sign(true_pitch)
        assert abs(flipped_pitch - pitch) < abs(flipped_yaw - yaw) / 4


def test_resume_after_kill_gives_the_same_weights(crops: Path, trained: Path, tmp_path: Path) -> None:
    train(crops, tmp_path, epochs=2)  # "killed" after epoch 2
    train(crops, tmp_path, epochs=3, resume=True)
    resumed, straight = read_checkpoint(tmp_path / "last.pt"), read_checkpoint(trained / "last.pt")
    for key, value in straight["model"].items():
        assert torch.allclose(resumed["model"][key].float(), value.float(), atol=1e-6), key
    with (tmp_path / "log.csv").open() as handle:
        assert [r["epoch"] for r in csv.DictReader(handle)] == ["1", "2", "3"]


def test_cli_resume_reads_last_pt_once_and_keeps_its_config(trained: Path, crops: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`--resume` takes the saved config (base width 8, not the demo preset's 16) from one read of last.pt."""
    import l2cs.train

    (tmp_path / "last.pt").write_bytes((trained / "last.pt").read_bytes())
    reads: list[Path] = []
    import common.engine.train

    real_read = common.engine.train.read_checkpoint
    monkeypatch.setattr(common.engine.train, "read_checkpoint",
                        lambda path, tags: reads.append(path) or real_read(path, tags))
    result = separate_streams_runner().invoke(l2cs.train.cli, ["--data", str(crops), "--out", str(tmp_path),
                                                                 "--resume", "--device", "cpu", "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    assert reads == [tmp_path / "last.pt"]
    assert "from epoch 4" in result.stderr  # 3 epochs done of 3: nothing left to train
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["base_width"] == 8 and saved["workers"] == 0 and saved["epochs"] == 3


def test_a_batch_of_unreadable_crops_leaves_the_epoch_loss_finite() -> None:
    """All of one batch unreadable: nothing to learn from it, and the epoch's mean loss is that of the rest."""
    from l2cs.loss import l2cs_loss
    from common.nn.batchnorm import freeze_batchnorm_stats
    from l2cs.model import build_model
    from common.engine.device import grad_scaler
    from common.engine.train import train_one_epoch
    from l2cs.dataset import prepare_batch

    config = preset("demo", **TINY)
    targets = torch.tensor([[10.0, 20.0], [-5.0, 15.0], [0.0, -25.0], [12.0, -8.0]])
    images = torch.stack([torch.from_numpy(np.ascontiguousarray(render_eyes(p, y, 64, 32).transpose(2, 0, 1)))
                          for p, y in targets.tolist()])
    index = torch.arange(4)
    good = (images, targets, index, torch.ones(4, dtype=torch.bool))
    unreadable = (torch.zeros_like(images), targets, index, torch.zeros(4, dtype=torch.bool))
    model = build_model(config)
    model.train()
    freeze_batchnorm_stats(model)
    with torch.no_grad():
        batch = normalize_batch(images, torch.device("cpu"), IMAGENET_MEAN, IMAGENET_STD)
        expected, _ = l2cs_loss(*model(batch), targets, BinSpec.from_config(config), config.alpha)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    bins = BinSpec.from_config(config)
    task = SimpleNamespace(train_mode=freeze_batchnorm_stats, prepare=prepare_batch,
                           loss=lambda outputs, target, _: l2cs_loss(*outputs, target, bins, config.alpha)[0])
    loss = train_one_epoch(model, task, [unreadable, good], optimizer, grad_scaler(False),
                           torch.device("cpu"), 1)
    assert loss == pytest.approx(float(expected), rel=1e-5)  # the empty batch moved no weight


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process(crops: Path, trained: Path, tmp_path: Path) -> None:
    """torchrun, 2 gloo processes x batch 4 vs 1 process x batch 8, same global batches.

    Tolerance: the gradient all-reduce sums in another order than one
    process, so float32 weights agree to ~1e-6 after 3 epochs (we allow
    atol 1e-4 on weights, 1e-3 deg on the validation MAE).
    """
    run_two_processes("l2cs/train.py", [*TINY_ARGS, "--epochs", "3", "--data", str(crops),
                                        "--out", str(tmp_path / "ddp")], "on cpu x2", OMP_NUM_THREADS="1")
    ddp, single = read_checkpoint(tmp_path / "ddp" / "last.pt"), read_checkpoint(trained / "last.pt")
    assert ddp["config"]["batch_size"] == single["config"]["batch_size"] == 8
    for key, value in single["model"].items():
        assert torch.allclose(ddp["model"][key].float(), value.float(), atol=1e-4), key
    assert ddp["progress"]["best"] == pytest.approx(single["progress"]["best"], abs=1e-3)


@pytest.mark.slow
def test_demo_preset_trains_and_validates_to_pass(tmp_path: Path) -> None:
    """End to end on fake crops of the real size (224x112): demo training, then the validation entry point."""
    data = make_fake_crops(tmp_path / "crops", {"train": 256, "val": 32, "test": 64}, width=224, height=112)
    trained = subprocess.run([sys.executable, str(REPO / "l2cs" / "train.py"), "--preset", "demo", "--epochs", "5",
                              "--device", "cpu", "--data", str(data), "--out", str(tmp_path / "run")],
                             capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr[-2000:]
    validated = subprocess.run([sys.executable, "-m", "l2cs.run_valid_l2cs", "--data", str(data), "--weights",
                                str(tmp_path / "run" / "best.pt"), "--out", str(tmp_path / "res")],
                               cwd=REPO, capture_output=True, text=True, timeout=300)
    assert validated.returncode == 0, validated.stdout + validated.stderr[-2000:]
    assert "-> PASS (n=64, skipped 0" in validated.stdout


def test_learning_rate_schedules_are_pure_functions_of_the_epoch() -> None:
    from l2cs.config import lr_at

    official = preset("official")
    assert official.lr_schedule == "constant" and lr_at(official, 1) == lr_at(official, 100) == official.lr
    cosine = preset("demo", lr=1e-3, epochs=10)
    assert cosine.lr_schedule == "cosine"
    assert lr_at(cosine, 1) == pytest.approx(1e-3)
    assert lr_at(cosine, 6) == pytest.approx(0.5e-3)  # half way: cos(pi/2) = 0
    assert lr_at(cosine, 10) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.9)))
    with pytest.raises(ValueError, match="config.lr_schedule: 'step'"):
        preset("demo", lr_schedule="step")
