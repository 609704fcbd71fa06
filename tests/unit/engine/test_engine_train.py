"""The shared engine on a tiny task: resume, early stopping both ways, learning-rate rules, DDP, 4-D and 5-D batches."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from common.engine.batches import normalize_batch
from common.engine.checkpoint import read_checkpoint
from common.engine.schedule import cosine_lr, plateau_lr, step_lr
from common.engine.train import fit
from tests.engine_tiny import tiny_task
from tests.procs import run_torchrun
from tests.paths import REPO

TAGS = ("nia-tiny/1",)


def weights(out: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return read_checkpoint(out / name, TAGS)["model"]


def log_rows(out: Path) -> list[dict[str, str]]:
    with (out / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("clips", [False, True], ids=["4-D images", "5-D clips"])
def test_tiny_task_learns_on_4d_and_5d_batches(tmp_path: Path, clips: bool) -> None:
    progress = fit(tiny_task(clips=clips, epochs=4), tmp_path, device_name="cpu")
    assert progress.epoch == 4 and progress.best >= 0.75  # two classes: chance is 0.5
    assert [r["epoch"] for r in log_rows(tmp_path)] == ["1", "2", "3", "4"]
    assert (tmp_path / "curves.png").stat().st_size > 1000 and (tmp_path / "best.pt").is_file()


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    fit(tiny_task(epochs=4), straight, device_name="cpu")
    fit(tiny_task(epochs=2), killed, device_name="cpu")  # stopped after epoch 2
    (killed / "log.csv").write_text((killed / "log.csv").read_text() + "3,9,9,9,9\r\n")  # a half-finished epoch 3
    fit(tiny_task(epochs=4), killed, device_name="cpu", resume=True)
    for key, value in weights(straight).items():
        assert torch.equal(weights(killed)[key], value), key
    assert [r["lr"] for r in log_rows(killed)] == [r["lr"] for r in log_rows(straight)]
    assert [r["epoch"] for r in log_rows(killed)] == ["1", "2", "3", "4"]


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_early_stopping_follows_the_metric_direction(tmp_path: Path, higher_is_better: bool) -> None:
    """A learning rate of 0 from epoch 2 freezes the metric: no epoch improves on epoch 1, so patience 2 stops at 3."""
    task = tiny_task(epochs=10, patience=2, higher_is_better=higher_is_better,
                     lr_rule=lambda epoch, _history: 0.05 if epoch == 1 else 0.0)
    progress = fit(task, tmp_path, device_name="cpu")
    values = [float(r[task.metric.column]) for r in log_rows(tmp_path)]
    assert progress.epoch == 3 and progress.best_epoch == 1 and len(values) == 3
    assert values[0] == values[1] == values[2]
    best = read_checkpoint(tmp_path / "best.pt", TAGS)
    assert best["epoch"] == 1 and best["progress"]["best"] == pytest.approx(values[0])


def test_the_best_checkpoint_follows_the_direction(tmp_path: Path) -> None:
    """The same run read as 'higher is better' and as 'lower is better' keeps opposite epochs as best."""
    history_up = fit(tiny_task(epochs=3, higher_is_better=True), tmp_path / "up", device_name="cpu").history
    down = fit(tiny_task(epochs=3, higher_is_better=False), tmp_path / "down", device_name="cpu")
    assert history_up == pytest.approx([1.0 - v for v in down.history])
    assert down.best == min(down.history) and down.best_epoch == down.history.index(min(down.history)) + 1


def test_unreadable_items_are_left_out_of_training(tmp_path: Path) -> None:
    task = tiny_task(epochs=1, unreadable=range(8))  # the whole first batch of some epoch cannot be read
    progress = fit(task, tmp_path, device_name="cpu")
    assert progress.epoch == 1 and float(log_rows(tmp_path)[0]["train_loss"]) > 0


def test_datasets_are_told_the_epoch(tmp_path: Path) -> None:
    task = tiny_task(epochs=3)
    fit(task, tmp_path, device_name="cpu")
    assert task.train_set.epochs_seen == [1, 2, 3]


def test_step_and_cosine_rules_match_torch() -> None:
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=40, gamma=0.1)
    for epoch in range(1, 121):
        assert step_lr(0.01, epoch, 40, 0.1) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12), epoch
        optimizer.step()
        scheduler.step()
    assert cosine_lr(1.0, 1, 10) == 1.0 and cosine_lr(1.0, 6, 10) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="step_size 0"):
        step_lr(0.1, 1, 0, 0.5)


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_plateau_rule_replays_torch_reduce_on_plateau(higher_is_better: bool) -> None:
    """The history-based rule takes the same decisions as torch's scheduler stepped each epoch."""
    history = [0.5, 0.6, 0.6, 0.59, 0.6, 0.7, 0.7, 0.7, 0.7, float("nan"), 0.71, 0.7, 0.7, 0.7, 0.7, 0.7]
    if not higher_is_better:
        history = [1.0 - v for v in history]
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max" if higher_is_better else "min",
                                                           factor=0.5, patience=2)
    for epoch in range(1, len(history) + 1):
        ours = plateau_lr(1e-3, history[:epoch - 1], higher_is_better=higher_is_better, factor=0.5, patience=2)
        assert ours == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12), epoch
        scheduler.step(history[epoch - 1])
    assert optimizer.param_groups[0]["lr"] < 1e-3  # the history did reach plateaus


def test_normalize_batch_takes_4d_and_5d() -> None:
    images = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2, 1).expand(2, 3, 2, 2).contiguous()
    batch = normalize_batch(images, torch.device("cpu"), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert batch.shape == (2, 3, 2, 2) and batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(batch[0, :, 0], torch.tensor(-1.0)) and torch.allclose(batch[0, :, 1], torch.tensor(1.0))
    clips = images.unsqueeze(0).repeat(2, 1, 1, 1, 1)  # (N=2, T=2, C=3, H=2, W=2)
    clip_batch = normalize_batch(clips, torch.device("cpu"), (0.0, 0.5, 1.0), (1.0, 0.5, 0.25))
    assert clip_batch.shape == (2, 2, 3, 2, 2)
    assert torch.allclose(clip_batch[1, 0, :, 1, 0], torch.tensor([1.0, 1.0, 0.0]), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("clips", [False, True], ids=["4-D images", "5-D clips"])
def test_two_gloo_processes_equal_one_process(tmp_path: Path, clips: bool) -> None:
    """torchrun, 2 processes x batch 4 vs 1 process x batch 8: the same global batches, the same weights."""
    extra = ["--clips"] if clips else []
    fit(tiny_task(epochs=3, clips=clips), tmp_path / "one", device_name="cpu")
    done = run_torchrun(REPO / "tests" / "engine_tiny.py", [str(tmp_path / "two"), "--epochs", "3", *extra],
                        OMP_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr[-2000:]
    for key, value in weights(tmp_path / "one").items():
        assert torch.allclose(weights(tmp_path / "two")[key], value, atol=1e-5), key
    assert [r["val_accuracy"] for r in log_rows(tmp_path / "two")] == \
        [r["val_accuracy"] for r in log_rows(tmp_path / "one")]
