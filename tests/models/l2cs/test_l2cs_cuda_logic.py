"""The engine's CUDA-only decisions for L2CS-Net training, checked on a CPU-only machine.

No GPU runs here: these tests pin what the code decides for a GPU (AMP,
SyncBatchNorm, pinned memory, DDP device ids, nccl, the device under
torchrun) and that checkpoints cross between CUDA and CPU machines.
"""
from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from common.engine.checkpoint import save_checkpoint
from common.engine.safe_load import read_pickled_details
from common.engine.device import DeviceSetup, device_setup, grad_scaler
from common.engine.distributed import start_process
from common.engine.progress import Progress
from common.engine.train import Metric, checkpoint_state, read_last, restore
from l2cs.checkpoint import FORMAT, READ_FORMATS, load_model
from l2cs.config import preset
from l2cs.model import build_model
from l2cs.train import cli

METRIC = Metric("val_mae_deg", "val MAE", higher_is_better=False)

TINY = preset("demo", base_width=8, input_width=64, input_height=32)
CUDA_SCALER = {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
               "_growth_tracker": 7}


@pytest.mark.parametrize(("device", "world_size", "bn_mode", "amp", "expected"), [
    ("cpu", 1, "train", True, DeviceSetup(amp=False, sync_batchnorm=False, pin_memory=False, ddp_device_ids=None)),
    ("cpu", 2, "train", True, DeviceSetup(amp=False, sync_batchnorm=False, pin_memory=False, ddp_device_ids=None)),
    ("cuda:0", 1, "train", True, DeviceSetup(amp=True, sync_batchnorm=False, pin_memory=True, ddp_device_ids=None)),
    ("cuda:1", 2, "train", True, DeviceSetup(amp=True, sync_batchnorm=True, pin_memory=True, ddp_device_ids=[1])),
    ("cuda:1", 2, "frozen", False, DeviceSetup(amp=False, sync_batchnorm=False, pin_memory=True,
                                               ddp_device_ids=[1])),
])
def test_device_setup(device: str, world_size: int, bn_mode: str, amp: bool, expected: DeviceSetup) -> None:
    config = preset("demo", bn_mode=bn_mode, amp=amp)
    setup = device_setup(torch.device(device), world_size, amp=config.amp, trains_batchnorm=config.bn_mode == "train")
    assert setup == expected


def test_device_setup_refuses_ddp_on_an_unnamed_gpu() -> None:
    with pytest.raises(ValueError, match="GPU index"):
        device_setup(torch.device("cuda"), 2, amp=True, trains_batchnorm=True)


def test_cuda_asked_without_gpu_warns_and_trains_on_cpu_with_gloo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name, value in (("RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    backends: list[str] = []
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend, **_: backends.append(backend))
    with pytest.warns(RuntimeWarning, match="no CUDA GPU is visible: running on the CPU"):
        assert start_process("cuda") == (torch.device("cpu"), 1, 2)
    assert backends == ["gloo"]


def test_torchrun_process_gets_its_local_gpu_and_nccl(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", torch.device(device))))
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend, **_: calls.append(("init", backend)))
    for name, value in (("RANK", "3"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    assert start_process("auto") == (torch.device("cuda:1"), 3, 4)
    assert calls[-1] == ("init", "nccl") and ("set_device", torch.device("cuda:1")) in calls[:-1]
    calls.clear()
    assert start_process("cpu") == (torch.device("cpu"), 3, 4)
    assert calls == [("init", "gloo")]


def _enabled_scaler(monkeypatch: pytest.MonkeyPatch) -> torch.cuda.amp.GradScaler:
    """An enabled GradScaler without a GPU: its scale tensor is only made on first use, so loading works.

    The scaler disables itself when `amp_definitely_not_available()` says so. torch 1.13's
    torch.cuda.amp.grad_scaler imported that name; torch 2.x's torch.amp.grad_scaler looks it up in
    torch.cuda.amp.common on each call: it is replaced wherever this torch's scaler module has it.
    """
    scaler_module = sys.modules[type(grad_scaler(False)).__module__]
    for module in (torch.cuda.amp.common, scaler_module):
        if hasattr(module, "amp_definitely_not_available"):
            monkeypatch.setattr(module, "amp_definitely_not_available", lambda: False)
    scaler = grad_scaler(True)
    assert scaler.is_enabled()
    return scaler


def _save_last(path, scaler_state: dict, monkeypatch: pytest.MonkeyPatch | None = None) -> dict:
    """A last.pt of a tiny model after one Adam step.

    Without `monkeypatch`: our safetensors format (tensors carry no device).
    With it: our older pickled format (`nia-l2cs/1`, still read) written as a
    GPU run wrote it, every storage tagged cuda:0.
    """
    model = build_model(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sum(p.sum() for p in model.parameters()).backward()
    optimizer.step()
    scaler = SimpleNamespace(state_dict=lambda: scaler_state)  # a GPU run's GradScaler, as far as saving goes
    progress = Progress(epoch=2, best=5.0, best_epoch=2, history=[7.0, 5.0])
    state = checkpoint_state(model, optimizer, scaler, TINY, progress, "random", METRIC, 5.0)
    if monkeypatch is None:
        save_checkpoint(path / "last.pt", state, FORMAT)
    else:
        plain = {k: v for k, v in state.items() if k not in ("model", "optimizer")}
        plain["optimizer_param_groups"] = state["optimizer"]["param_groups"]
        legacy = {"format": "nia-l2cs/1", "model": state["model"], "optimizer_state": state["optimizer"]["state"],
                  "json": json.dumps(plain)}
        with monkeypatch.context() as patch:  # what torch.save writes for tensors that live on GPU 0
            patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
            torch.save(legacy, path / "last.pt")
    return state


def _resume(out, scaler: torch.cuda.amp.GradScaler) -> tuple[Progress, torch.nn.Module, torch.optim.Optimizer]:
    model = build_model(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    progress = restore(read_last(out, True, READ_FORMATS), model, optimizer, scaler)
    return progress, model, optimizer


@pytest.mark.parametrize("legacy_cuda_file", [False, True])
def test_checkpoint_written_on_cuda_resumes_on_cpu(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                   legacy_cuda_file: bool) -> None:
    saved = _save_last(tmp_path, CUDA_SCALER, monkeypatch if legacy_cuda_file else None)
    if legacy_cuda_file:  # the file really names a GPU
        assert read_pickled_details(tmp_path / "last.pt").locations == ("cuda:0",)
    progress, model, optimizer = _resume(tmp_path, grad_scaler(False))
    assert progress == Progress(epoch=2, best=5.0, best_epoch=2, history=[7.0, 5.0])
    for key, value in saved["model"].items():
        assert torch.equal(model.state_dict()[key], value), key
    moments = next(iter(optimizer.state.values()))
    assert moments["exp_avg"].device.type == "cpu" and moments["step"].device.type == "cpu"
    model_again = load_model(tmp_path / "last.pt").model  # the validation entry point's read
    assert torch.equal(model_again.fc_yaw.weight, saved["model"]["fc_yaw.weight"])


def test_cuda_scaler_state_is_restored_into_an_amp_run(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    _save_last(tmp_path, CUDA_SCALER, monkeypatch)
    scaler = _enabled_scaler(monkeypatch)
    _resume(tmp_path, scaler)
    assert scaler.state_dict() == CUDA_SCALER


def test_checkpoint_without_amp_resumes_into_an_amp_run(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU (or --no-amp) run saves an empty scaler state, which GradScaler.load_state_dict refuses."""
    _save_last(tmp_path, {})
    scaler = _enabled_scaler(monkeypatch)
    with pytest.raises(RuntimeError, match="source state dict is empty"):
        scaler.load_state_dict({})  # why restore must skip it
    progress, _, _ = _resume(tmp_path, scaler)
    assert progress.epoch == 2 and scaler.state_dict()["scale"] == 2.0 ** 16  # a fresh scaler


@pytest.mark.parametrize("text", ["224x", "axb", "224x112x3", ""])
def test_input_size_error_names_the_option_and_the_form(tmp_path, text: str) -> None:
    result = CliRunner().invoke(cli, ["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--input-size", text])
    assert result.exit_code == 2
    assert "--input-size" in result.output and "WIDTHxHEIGHT (or N for NxN) such as 224x112" in result.output
    assert repr(text) in result.output


@pytest.mark.parametrize("text,overrides", [("64x32", {"input_width": 64, "input_height": 32}),
                                            ("64X32", {"input_width": 64, "input_height": 32}),
                                            ("48", {"input_width": 48, "input_height": 48})])
def test_input_size_is_wxh_or_one_side_in_every_train_script(text: str, overrides: dict) -> None:
    """One syntax for the three train scripts: WxH, or N for NxN; Former-DFER's frames are square."""
    import click

    from common.cli.entry import input_size_option

    def parsed(square: bool, value: str) -> dict:
        command = input_size_option("224x112", "size", square=square)(click.command()(lambda input_size: input_size))
        return command.main(["--input-size", value], standalone_mode=False)

    assert parsed(False, text) == overrides
    if overrides["input_width"] == overrides["input_height"]:
        assert parsed(True, text) == {"input_size": overrides["input_width"]}
    else:
        with pytest.raises(click.BadParameter, match="expected a square size"):
            parsed(True, text)
