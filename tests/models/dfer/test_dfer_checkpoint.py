"""dfer.checkpoint: original-format files (DataParallel prefix, CUDA storages, a pickled __main__ class) open
on a CPU without running anything from the file; foreign or broken files are one-line errors naming the file."""
from __future__ import annotations

import io
import os
import pickle
import sys
import zipfile
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from common.engine.safe_load import read_pickled as read_checkpoint
from common.engine.safe_load import read_pickled_details as read_checkpoint_details
from dfer.checkpoint import load_model, load_original_into, model_kwargs_of, state_dict_of
from dfer.config import preset
from dfer.model import FormerDFER, build_model

TINY = {"base_width": 8, "num_frames": 4, "input_size": 32, "t_depth": 1}


class RecorderMeter:
    """Like the reference's recorder (numpy arrays inside), but loading it leaves a visible trace."""

    calls: list[str] = []

    def __init__(self, total_epoch: int) -> None:
        RecorderMeter.calls.append(f"init {total_epoch}")
        self.total_epoch = total_epoch
        self.epoch_losses = np.zeros((total_epoch, 2), dtype=np.float32)

    def __reduce__(self) -> tuple:
        return RecorderMeter, (self.total_epoch,), self.__dict__

    def __setstate__(self, state: dict) -> None:
        RecorderMeter.calls.append("setstate")
        self.__dict__.update(state)


RecorderMeter.__module__ = "__main__"  # as pickled by `python main_DFEW.py`


@pytest.fixture
def recorder_in_main(monkeypatch: pytest.MonkeyPatch) -> type[RecorderMeter]:
    """pickle looks the class up under its module to save it, as it would in the reference's script."""
    monkeypatch.setattr(sys.modules["__main__"], "RecorderMeter", RecorderMeter, raising=False)
    RecorderMeter.calls.clear()
    return RecorderMeter


def tiny_model(num_classes: int = 7, seed: int = 0, **overrides: Any) -> FormerDFER:
    torch.manual_seed(seed)
    return FormerDFER(num_classes=num_classes, **{**TINY, **overrides})


def original_checkpoint(model: FormerDFER) -> dict[str, Any]:
    """What main_DFEW.save_checkpoint writes after an epoch: DataParallel keys, SGD state, best_acc, recorder."""
    wrapped = torch.nn.DataParallel(model)
    optimizer = torch.optim.SGD(wrapped.parameters(), 0.01, momentum=0.9, weight_decay=1e-4)
    loss = wrapped(torch.rand(2, 4, 3, 32, 32)).sum()
    loss.backward()
    optimizer.step()
    return {"epoch": 3, "state_dict": wrapped.state_dict(), "best_acc": torch.tensor(61.25),
            "optimizer": optimizer.state_dict(), "recorder": RecorderMeter(100)}


def save_as_cuda(obj: Any, path: Path) -> None:
    """torch.save on this CPU, then the storages' location tag changed from 'cpu' to 'cuda:0' in data.pkl.

    That tag is the only trace a CUDA device leaves in the file (torch.save copies every storage to host
    memory first): a protocol-2 BINUNICODE string, opcode 'X' + 4-byte length + text, memoised after its
    first use. The test below checks that torch.load then fails exactly as on a real GPU-saved file.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    rewrite_zip(buffer.getvalue(), path, pickle_edit=lambda data: _retag(data))


def _retag(data: bytes) -> bytes:
    old, new = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"
    assert data.count(old) >= 1
    return data.replace(old, new)


def rewrite_zip(raw: bytes, path: Path, *, pickle_edit=lambda d: d, prefix: str | None = None,
                extra: dict[str, bytes] | None = None, drop: str | None = None) -> None:
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            folder, rest = info.filename.split("/", 1)
            data = src.read(info)
            if rest == "data.pkl":
                data = pickle_edit(data)
            if rest == drop:
                continue
            dst.writestr(f"{prefix or folder}/{rest}", data)
        for rest, data in (extra or {}).items():
            dst.writestr(f"{prefix or folder}/{rest}", data)


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_original_file_opens_on_cpu_without_running_its_class(tmp_path: Path, recorder_in_main) -> None:
    model = tiny_model()
    checkpoint = original_checkpoint(model)
    path = tmp_path / "set1-model_best.pth"
    save_as_cuda(checkpoint, path)
    recorder_in_main.calls.clear()

    details = read_checkpoint_details(path)

    assert recorder_in_main.calls == []                       # neither __init__ nor __setstate__ ran
    assert details.locations == ("cuda:0",)
    assert "__main__.RecorderMeter" in details.placeholders
    obj = details.obj
    assert obj["epoch"] == 3 and repr(obj["recorder"]) == "<ignored __main__.RecorderMeter>"
    assert obj["best_acc"].item() == 61.25 and obj["best_acc"].device.type == "cpu"
    assert_same_tensors(obj["state_dict"], checkpoint["state_dict"])
    assert all(k.startswith("module.") for k in obj["state_dict"])
    assert obj["optimizer"]["param_groups"] == checkpoint["optimizer"]["param_groups"]
    for index, saved in checkpoint["optimizer"]["state"].items():
        assert torch.equal(obj["optimizer"]["state"][index]["momentum_buffer"], saved["momentum_buffer"])
    assert_same_tensors(state_dict_of(obj, path), model.state_dict())


def test_the_simulated_file_defeats_plain_loading(tmp_path: Path, recorder_in_main) -> None:
    """Why the reader exists: torch's full unpickler fails on the CUDA tag and, with map_location, runs the
    class's code (so the side effect above is a real one); weights_only refuses the class.

    torch.load's default is the full unpickler before torch 2.6 and weights_only from 2.6 on: the
    default's behaviour is checked as whichever of the two this torch has.
    """
    path = tmp_path / "model.pth"
    save_as_cuda(original_checkpoint(tiny_model()), path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=False)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):  # 1.13 stops at the floats
        torch.load(path, map_location="cpu", weights_only=True)
    recorder_in_main.calls.clear()
    torch.load(path, map_location="cpu", weights_only=False)
    assert recorder_in_main.calls == ["init 100", "setstate"]
    recorder_in_main.calls.clear()
    try:
        torch.load(path, map_location="cpu")
    except pickle.UnpicklingError as exc:  # the default is weights_only (torch >= 2.6): nothing ran
        assert "Weights only load failed" in str(exc) and recorder_in_main.calls == []
    else:  # the default is the full unpickler (torch < 2.6): the class ran
        assert recorder_in_main.calls == ["init 100", "setstate"]


@pytest.mark.parametrize("func,name", [(os.system, f"{os.system.__module__}.system"), (eval, "__builtin__.eval")])
def test_a_pickle_that_calls_a_function_is_refused(tmp_path: Path, func, name: str) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (func, (f"open({str(marker)!r}, 'w')" if func is eval else f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": tiny_model().state_dict(), "extra": Payload()}, path)
    with pytest.raises(ValueError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: refused: the pickle calls {name}")
    assert not marker.exists()


def test_views_and_dtypes_come_back_equal(tmp_path: Path) -> None:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    obj = {"base": base, "t": base.t(), "tail": base[1:, 2:], "half": base.half(), "long": torch.arange(5),
           "flag": torch.tensor([True, False]), "scalar": torch.tensor(7), "empty": torch.zeros(0, 3),
           "plain": [1, 2.5, "x", None, (True,)], "set": {3, 4}}
    path = tmp_path / "mixed.pt"
    torch.save(obj, path)
    back = read_checkpoint(path)
    for key in ("base", "t", "tail", "half", "long", "flag", "scalar", "empty"):
        assert back[key].dtype == obj[key].dtype and back[key].shape == obj[key].shape
        assert torch.equal(back[key], obj[key]), key
    assert back["plain"] == obj["plain"] and back["set"] == {3, 4}


def test_torch2_layout_reads(tmp_path: Path) -> None:
    """torch 2.x names the folder 'archive' and adds version/byteorder records; the pickle is the same."""
    buffer = io.BytesIO()
    state = tiny_model().state_dict()
    torch.save(state, buffer)
    path = tmp_path / "torch2.pth"
    rewrite_zip(buffer.getvalue(), path, prefix="archive",
                extra={".format_version": b"1", ".storage_alignment": b"64", "byteorder": b"little",
                       ".data/serialization_id": b"0123"})
    assert_same_tensors(read_checkpoint(path), state)
    big = tmp_path / "big.pth"
    rewrite_zip(buffer.getvalue(), big, prefix="archive", extra={"byteorder": b"big"})
    with pytest.raises(ValueError, match=f"^{big}: a big-endian checkpoint"):
        read_checkpoint(big)


def test_broken_and_foreign_files_are_one_line_errors(tmp_path: Path) -> None:
    good = io.BytesIO()
    torch.save(tiny_model().state_dict(), good)
    raw = good.getvalue()
    cases = {
        "truncated.pth": raw[: len(raw) // 2],
        "random.pth": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty.pth": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    short = tmp_path / "short_storage.pth"
    rewrite_zip(raw, short, drop="data/0", extra={"data/0": b"\0" * 8})
    no_pickle = tmp_path / "no_pickle.pth"
    rewrite_zip(raw, no_pickle, drop="data.pkl")
    for path in [tmp_path / name for name in cases] + [short, no_pickle]:
        with pytest.raises(ValueError) as info:
            read_checkpoint(path)
        assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value), str(info.value)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_checkpoint(tmp_path / "missing.pth")


def test_other_model_is_refused_by_name(tmp_path: Path) -> None:
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    path = tmp_path / "resnet.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(ValueError, match=f"^{path}: not a Former-DFER checkpoint"):
        state_dict_of(read_checkpoint(path), path)
    with pytest.raises(ValueError, match=f"^{path}: not a Former-DFER checkpoint"):
        load_model(path)


def test_seven_class_original_initialises_all_but_the_classifier(tmp_path: Path, recorder_in_main) -> None:
    original = tiny_model(num_classes=7, seed=1)
    path = tmp_path / "dfew.pth"
    save_as_cuda(original_checkpoint(original), path)
    ours = tiny_model(num_classes=5, seed=2)
    fc_before = ours.fc.weight.detach().clone()

    report = load_original_into(ours, state_dict_of(read_checkpoint(path), path), source=str(path))

    assert report.skipped == {"fc.weight": "shape (7, 64) in the file, (5, 64) in the model",
                              "fc.bias": "shape (7,) in the file, (5,) in the model"}
    assert len(report.loaded) == len(ours.state_dict()) - 2
    assert "kept 2 as initialised" in report.summary()
    assert torch.equal(ours.fc.weight, fc_before)
    theirs = original.state_dict()
    for key, value in ours.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, theirs[key]), key


def test_a_backbone_that_does_not_fit_is_an_error(tmp_path: Path) -> None:
    wider = tiny_model(base_width=16).state_dict()
    with pytest.raises(ValueError, match=r"^wide.pth: weights do not fit FormerDFER: s_former.pos_embedding: "
                                         r"shape \(1, 4, 64\) in the file, \(1, 4, 32\) in the model; .* more\)$"):
        load_original_into(tiny_model(), wider, source="wide.pth")
    partial = {k: v for k, v in tiny_model().state_dict().items() if "layer4" not in k}
    with pytest.raises(ValueError, match="s_former.layer4.0.conv1.weight: not in the file"):
        load_original_into(tiny_model(), partial, source="partial.pth")


def test_load_model_rebuilds_and_matches_the_saved_network(tmp_path: Path, recorder_in_main) -> None:
    original = tiny_model(num_classes=7, seed=3).eval()
    path = tmp_path / "orig.pth"
    save_as_cuda(original_checkpoint(original), path)
    original.eval()
    loaded = load_model(path)
    model, info = loaded.model, loaded.facts
    assert info["model_kwargs"] == {"num_classes": 7, "base_width": 8, "num_frames": 4, "input_size": 32,
                                    "s_depth": 1, "t_depth": 1}
    assert info["epoch"] == 3 and info["saved_on"] == ["cuda:0"]
    clips = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(clips), original(clips))


def test_our_format_and_bare_state_dicts(tmp_path: Path) -> None:
    state = tiny_model(num_classes=5).state_dict()
    ours = tmp_path / "best.pt"
    torch.save({"format": "nia-dfer/1", "model": state, "json": "{}"}, ours)
    bare = tmp_path / "bare.pt"
    torch.save(OrderedDict(state), bare)
    for path in (ours, bare):
        assert_same_tensors(state_dict_of(read_checkpoint(path), path), state)
    assert model_kwargs_of(state)["num_classes"] == 5


def test_load_model_with_a_config_and_one_that_does_not_fit(tmp_path: Path) -> None:
    config = preset("demo", frames=4, segments=2, input_size=32, heads=4)
    torch.manual_seed(0)
    trained = build_model(config).eval()
    path = tmp_path / "best.pt"
    torch.save({"model": trained.state_dict()}, path)
    loaded = load_model(path, config)
    model, info = loaded.model, loaded.facts
    assert loaded.config == config
    assert model.s_former.spatial_transformer.layers[0][0].fn.fn.heads == 4 and info["tensors"] == len(
        trained.state_dict())
    clips = torch.rand(1, 4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(clips), trained(clips))
    with pytest.raises(ValueError, match=f"^{path}: weights do not fit FormerDFER: fc.weight: shape"):
        load_model(path, replace(config, num_classes=7))
