"""common.engine.safe_load, the one reader of pickled weights for all three tests: TorchScript refused unrun,
the pre-1.6 stream read like the zip, storages that the file does not hold refused before allocation."""
from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from common.engine.safe_load import LEGACY_MAGIC, LEGACY_PROTOCOL, read_pickled, read_pickled_details
from tests.hostile_corpus import pickle_that_runs_code, torchscript_that_runs_code


def test_a_torchscript_archive_is_refused_without_running_it(tmp_path: Path) -> None:
    path, marker = tmp_path / "scripted.pt", tmp_path / "ran.marker"
    torchscript_that_runs_code(path, marker)
    with pytest.raises(ValueError) as info:
        read_pickled(path)
    assert str(info.value).startswith(f"{path}: refused: a TorchScript archive") and "\n" not in str(info.value)
    assert not marker.exists()
    torch.jit.load(str(path))  # the payload is real: torch's loader runs the archive's __setstate__
    assert marker.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_a_reduce_payload_is_refused_in_both_formats(tmp_path: Path, legacy: bool) -> None:
    path, marker = tmp_path / "evil.pt", tmp_path / "ran.marker"
    pickle_that_runs_code(path, marker, legacy=legacy)
    with pytest.raises(ValueError, match=f"^{path}: refused: the pickle calls posix.system"):
        read_pickled(path)
    assert not marker.exists()


def test_the_pre_1_6_stream_reads_like_the_zip(tmp_path: Path) -> None:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    obj = OrderedDict(w=base, t=base.t(), tail=base[1:, 2:], n=torch.arange(5), flag=torch.tensor([True]),
                      empty=torch.zeros(0, 2), plain=[1, "x", None])
    for legacy in (False, True):
        path = tmp_path / f"w{legacy}.pt"
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
        back = read_pickled(path)
        assert list(back) == list(obj) and back["plain"] == obj["plain"]
        for key in ("w", "t", "tail", "n", "flag", "empty"):
            assert back[key].dtype == obj[key].dtype and torch.equal(back[key], obj[key]), (legacy, key)


def _legacy_stream(numel: int, data: bytes) -> bytes:
    """A pre-1.6 stream whose one float storage declares ``numel`` elements and holds ``data``."""
    class Storage:  # pickled by persistent id, as torch's legacy writer does
        pass

    out = io.BytesIO()
    for part in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}):
        pickle.dump(part, out, protocol=2)
    storage = Storage()
    pickler = pickle.Pickler(out, protocol=2)
    pickler.persistent_id = lambda obj: (  # type: ignore[method-assign]
        ("storage", torch.FloatStorage, "0", "cpu", numel, None) if obj is storage else None)
    pickler.dump({"w": storage})
    pickle.dump(["0"], out, protocol=2)
    return out.getvalue() + struct.pack("<q", numel) + data


def test_a_storage_larger_than_the_file_is_refused_before_allocation(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pt"
    path.write_bytes(_legacy_stream(10 ** 12, b"\0" * 16))   # 4 TB declared
    with pytest.raises(ValueError, match=f"^{path}: not a loadable weights file: storage 0 declares"):
        read_pickled(path)
    short = tmp_path / "short.pt"
    short.write_bytes(_legacy_stream(4, b"\0" * 8))          # 16 bytes declared, 8 given
    with pytest.raises(ValueError, match=f"^{short}: not a loadable weights file"):
        read_pickled(short)
    good = tmp_path / "good.pt"
    good.write_bytes(_legacy_stream(2, struct.pack("<2f", 1.5, -2.0)))
    details = read_pickled_details(good)
    assert torch.equal(details.obj["w"], torch.tensor([1.5, -2.0])) and details.locations == ("cpu",)
