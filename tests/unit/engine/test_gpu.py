"""The CUDA path, on a GPU host only (`make test-gpu`; skipped where no GPU is visible).

What the CPU tests cannot show: AMP training with a GradScaler that is
really enabled, resume of its state, nccl + SyncBatchNorm under torchrun,
and that validation on a GPU is reproducible to the bit and agrees with the
CPU. Run it on the first GPU a session gets, before taking GPU timings.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest
import torch

from common.engine.loaded import LoadedModel
from l2cs.checkpoint import load_model, read_checkpoint
from l2cs.config import preset
from l2cs.train import main
from tests.l2cs_fakes import make_fake_crops
from tests.procs import run_two_processes
from tests.models.l2cs.test_l2cs_train import TINY
from tests.paths import REPO

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (make test-gpu on a GPU host)")]

CUDA_TINY = {**TINY, "bn_mode": "train"}  # trained BatchNorm statistics: SyncBatchNorm under torchrun


def opens_on_the_cpu(loaded: LoadedModel) -> bool:
    """A checkpoint saved from a GPU run loads on a CPU-only host (`load_model` maps it to the CPU)."""
    return next(loaded.model.parameters()).device.type == "cpu"


def check_resumed_to_epoch_3(last: dict, best: LoadedModel) -> None:
    """An AMP run resumed to epoch 3: finite weights in last.pt, and best.pt opens on the CPU."""
    assert last["progress"]["epoch"] == 3
    assert all(torch.isfinite(v.float()).all() for v in last["model"].values() if v.is_floating_point())
    assert opens_on_the_cpu(best)


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return make_fake_crops(tmp_path_factory.mktemp("crops"), {"train": 64, "val": 16, "test": 32})


def per_sample_on(device: str, entry: list[str], data: Path, weights: Path, out: Path,
                  **read_csv: Any) -> pd.DataFrame:
    """per_sample.csv of a validation entry point (`python ENTRY...`) run on DEVICE."""
    done = subprocess.run([sys.executable, *entry, "--data", str(data), "--weights", str(weights),
                           "--out", str(out), "--device", device, "--workers", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr[-3000:]  # a verdict (PASS or FAIL), not an error
    ran_on = json.loads((out / "metrics.json").read_text())["provenance"]["device"]
    assert ran_on.startswith(device), f"asked for {device}, ran on {ran_on}"  # no silent CPU fallback
    return pd.read_csv(out / "per_sample.csv", **read_csv)


def torchrun_two_gpus(script: str, args: list[str], out: Path, read: Callable[[Path], dict[str, Any]]) -> None:
    """Two epochs of SCRIPT (trained BatchNorm: SyncBatchNorm over nccl) on 2 GPUs into OUT: both GPUs
    ran, and last.pt (read with READ) is saved unwrapped, so it loads without DDP."""
    run_two_processes(script, [*args, "--bn-mode", "train", "--epochs", "2", "--device", "cuda", "--out", str(out)],
                      "on cuda:0 x2", timeout=600)
    state = read(out / "last.pt")
    assert not any(key.startswith("module.") for key in state["model"])
    assert state["progress"]["epoch"] == 2


def validate(crops: Path, weights: Path, out: Path, device: str) -> pd.DataFrame:
    return per_sample_on(device, ["-m", "l2cs.run_valid_l2cs"], crops, weights, out)


def test_amp_training_learns_resumes_and_loads_on_the_cpu(crops: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = preset("demo", epochs=2, lr_schedule="constant", amp=True, **CUDA_TINY)
    main(crops, out, config, device_name="cuda", pretrained=None, resume=False, train_split="train",
         val_split="val")
    first = read_checkpoint(out / "last.pt")
    assert first["scaler"], "AMP on CUDA must save an enabled GradScaler's state"
    assert first["progress"]["epoch"] == 2
    main(crops, out, preset("demo", epochs=3, lr_schedule="constant", amp=True, **CUDA_TINY), device_name="cuda",
         pretrained=None, resume=True, train_split="train", val_split="val")
    check_resumed_to_epoch_3(read_checkpoint(out / "last.pt"), load_model(out / "best.pt"))


def test_cuda_validation_is_bit_reproducible_and_agrees_with_the_cpu(crops: Path, tmp_path: Path) -> None:
    weights = tmp_path / "run"
    main(crops, weights, preset("demo", epochs=1, **CUDA_TINY), device_name="cuda", pretrained=None, resume=False,
         train_split="train", val_split="val")
    gpu_a = validate(crops, weights / "best.pt", tmp_path / "gpu_a", "cuda")
    gpu_b = validate(crops, weights / "best.pt", tmp_path / "gpu_b", "cuda")
    cpu = validate(crops, weights / "best.pt", tmp_path / "cpu", "cpu")
    columns = ["pred_pitch", "pred_yaw", "error_deg"]
    pd.testing.assert_frame_equal(gpu_a[columns], gpu_b[columns], check_exact=True)  # deterministic cuDNN, no TF32
    assert (gpu_a[columns] - cpu[columns]).abs().to_numpy().max() < 1e-3  # float32 on both: rounding only


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs for nccl")
def test_torchrun_two_gpus_nccl_syncbn(crops: Path, tmp_path: Path) -> None:
    args = ["--preset", "demo", "--base-width", "8", "--input-size", "64x32", "--batch-size", "8", "--workers", "0",
            "--data", str(crops)]
    torchrun_two_gpus("l2cs/train.py", args, tmp_path / "ddp", read_checkpoint)


# RIT-Net: the same CUDA checks on its training and validation
@pytest.fixture(scope="module")
def seg_crops(tmp_path_factory) -> Path:
    from tests.rit_fakes import make_seg_crops

    return make_seg_crops(tmp_path_factory.mktemp("seg"), {"train": 48, "val": 8, "test": 16})


def rit_validate(crops: Path, weights: Path, out: Path, device: str) -> pd.DataFrame:
    return per_sample_on(device, ["ritnet/test.py"], crops, weights, out, keep_default_na=False)


def rit_config(**overrides):
    from ritnet.config import preset
    from tests.models.ritnet.test_ritnet_train import TINY

    return preset("demo", **{**TINY, "bn_mode": "train", **overrides})


def test_rit_amp_training_learns_resumes_and_loads_on_the_cpu(seg_crops: Path, tmp_path: Path) -> None:
    from ritnet.checkpoint import READ_FORMATS
    from ritnet.checkpoint import load_model as load_rit
    from ritnet.train import main as train_rit
    from common.engine.checkpoint import read_checkpoint as read_engine_checkpoint

    out = tmp_path / "run"
    train_rit(seg_crops, out, rit_config(epochs=3, amp=True), device_name="cuda", resume=False,
              train_split="train", val_split="val")
    state = read_engine_checkpoint(out / "last.pt", READ_FORMATS)
    assert state["scaler"], "AMP on CUDA must save an enabled GradScaler's state"
    history = state["progress"]["history"]
    assert history[-1] > history[0]  # it learns under AMP
    train_rit(seg_crops, out, rit_config(epochs=4, amp=True), device_name="cuda", resume=True,
              train_split="train", val_split="val")
    assert read_engine_checkpoint(out / "last.pt", READ_FORMATS)["progress"]["epoch"] == 4
    assert opens_on_the_cpu(load_rit(out / "best.pt"))


def test_rit_cuda_validation_is_bit_reproducible_and_agrees_with_the_cpu(seg_crops: Path, tmp_path: Path) -> None:
    from ritnet.train import main as train_rit

    train_rit(seg_crops, tmp_path / "run", rit_config(epochs=2), device_name="cuda", resume=False,
              train_split="train", val_split="val")
    weights = tmp_path / "run" / "best.pt"
    gpu_a = rit_validate(seg_crops, weights, tmp_path / "gpu_a", "cuda")
    gpu_b = rit_validate(seg_crops, weights, tmp_path / "gpu_b", "cuda")
    cpu = rit_validate(seg_crops, weights, tmp_path / "cpu", "cpu")
    counts = [c for c in gpu_a.columns if c.startswith(("inter_", "union_"))]
    pd.testing.assert_frame_equal(gpu_a, gpu_b, check_exact=True)  # deterministic cuDNN, no TF32
    moved = (gpu_a[counts] - cpu[counts]).abs().to_numpy().sum() / 2
    assert moved <= 0.001 * len(cpu) * 32 * 16  # float32 on both: an arg-max flips only at near-ties


def test_rit_original_openeds_checkpoint_on_cuda_matches_the_cpu(seg_crops: Path, tmp_path: Path) -> None:
    from ritnet.model import DenseNet2D

    torch.manual_seed(0)
    torch.save(DenseNet2D(num_classes=4, channels=8).state_dict(), tmp_path / "best_model.pkl")
    gpu = rit_validate(seg_crops, tmp_path / "best_model.pkl", tmp_path / "gpu", "cuda")
    cpu = rit_validate(seg_crops, tmp_path / "best_model.pkl", tmp_path / "cpu", "cpu")
    counts = [c for c in gpu.columns if c.startswith(("inter_", "union_"))]
    assert (gpu[counts] - cpu[counts]).abs().to_numpy().sum() / 2 <= 0.001 * len(cpu) * 32 * 16


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs for nccl")
def test_rit_torchrun_two_gpus_nccl_syncbn(seg_crops: Path, tmp_path: Path) -> None:
    from ritnet.checkpoint import READ_FORMATS
    from common.engine.checkpoint import read_checkpoint as read_engine_checkpoint

    args = ["--preset", "demo", "--channels", "4", "--input-size", "32x16", "--batch-size", "8", "--workers", "0",
            "--data", str(seg_crops)]
    torchrun_two_gpus("ritnet/train.py", args, tmp_path / "ddp",
                      lambda path: read_engine_checkpoint(path, READ_FORMATS))


# --- Former-DFER -------------------------------------------------------------------------------------------

from dfer.checkpoint import load_model as load_dfer_model  # noqa: E402
from dfer.checkpoint import read_our_checkpoint as read_dfer_checkpoint  # noqa: E402
from dfer.train import main as train_dfer  # noqa: E402
from tests.dfer_fakes import balanced_clips, write_clip_set  # noqa: E402
from tests.models.dfer.test_dfer_train import TINY as DFER_TINY  # noqa: E402
from tests.models.dfer.test_dfer_train import TINY_ARGS as DFER_TINY_ARGS  # noqa: E402

DFER_CUDA_TINY = {**DFER_TINY, "bn_mode": "train"}  # trained BatchNorm statistics: SyncBatchNorm under torchrun


@pytest.fixture(scope="module")
def dfer_clips(tmp_path_factory) -> Path:
    return write_clip_set(tmp_path_factory.mktemp("dfer_clips"), balanced_clips({"train": 40, "val": 10, "test": 20}))


def dfer_config(epochs: int):
    from dfer.config import preset as dfer_preset

    return dfer_preset("demo", epochs=epochs, amp=True, **DFER_CUDA_TINY)


def validate_dfer(clips: Path, weights: Path, out: Path, device: str) -> pd.DataFrame:
    return per_sample_on(device, ["-m", "dfer.valid_nia"], clips, weights, out)


def test_dfer_amp_training_learns_resumes_and_loads_on_the_cpu(dfer_clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_dfer(dfer_clips, out, dfer_config(2), device_name="cuda", pretrained=None, resume=False)
    first = read_dfer_checkpoint(out / "last.pt")
    assert first["scaler"], "AMP on CUDA must save an enabled GradScaler's state"
    train_dfer(dfer_clips, out, dfer_config(3), device_name="cuda", pretrained=None, resume=True)
    check_resumed_to_epoch_3(read_dfer_checkpoint(out / "last.pt"), load_dfer_model(out / "best.pt"))


def test_dfer_cuda_validation_is_reproducible_and_agrees_with_the_cpu(dfer_clips: Path, tmp_path: Path) -> None:
    weights = tmp_path / "run"
    train_dfer(dfer_clips, weights, dfer_config(3), device_name="cuda", pretrained=None, resume=False)
    gpu_a = validate_dfer(dfer_clips, weights / "best.pt", tmp_path / "gpu_a", "cuda")
    gpu_b = validate_dfer(dfer_clips, weights / "best.pt", tmp_path / "gpu_b", "cuda")
    cpu = validate_dfer(dfer_clips, weights / "best.pt", tmp_path / "cpu", "cpu")
    pd.testing.assert_frame_equal(gpu_a, gpu_b, check_exact=True)
    assert (gpu_a["pred"] == cpu["pred"]).mean() >= 0.95  # float32 on both: only near-ties may flip


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs for nccl")
def test_dfer_torchrun_two_gpus_nccl_syncbn(dfer_clips: Path, tmp_path: Path) -> None:
    args = [a for a in DFER_TINY_ARGS if a not in ("frozen", "--bn-mode", "cpu", "--device")]
    torchrun_two_gpus("dfer/train.py", [*args, "--data", str(dfer_clips)], tmp_path / "ddp", read_dfer_checkpoint)
