"""common.atomic: temp file beside the target, replaced on success, removed on error."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.atomic import atomic_path, temp_path_for, write_text_atomic


def test_success_moves_the_file_into_place(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old", encoding="utf-8")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_text("new", encoding="utf-8")
        assert target.read_text(encoding="utf-8") == "old"  # not visible before the block ends
    assert target.read_text(encoding="utf-8") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_error_inside_keeps_old_target_and_leaves_no_temp(tmp_path: Path, error: type[BaseException]) -> None:
    target = tmp_path / "out.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(error):
        with atomic_path(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise error("boom")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_replace_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # os.replace cannot put a file onto a directory
    with pytest.raises(OSError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_suffix_kept_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "crop.png"
    assert temp_path_for(target, keep_suffix=True).suffix == ".png"
    assert temp_path_for(target).suffix == ".tmp"  # a leftover is never taken for a PNG


def test_kept_suffix_lets_cv2_choose_the_codec(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    target = tmp_path / "crop.png"
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    with atomic_path(target, keep_suffix=True) as tmp:
        assert cv2.imwrite(str(tmp), image)
    assert target.read_bytes().startswith(b"\x89PNG")
    assert np.array_equal(cv2.imread(str(target), cv2.IMREAD_UNCHANGED), image)


def test_temp_names_are_unique_per_call(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    assert temp_path_for(target) != temp_path_for(target)


def test_target_in_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with atomic_path("here.txt") as tmp:
        assert tmp.parent == Path(".")
        tmp.write_text("ok", encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.txt"]
    assert (tmp_path / "here.txt").read_text(encoding="utf-8") == "ok"


def test_fixed_temp_name_is_used_and_must_be_beside_the_target(tmp_path: Path) -> None:
    target = tmp_path / "best.pt"
    with atomic_path(target, temp=tmp_path / "best.pt.tmp") as tmp:
        assert tmp == tmp_path / "best.pt.tmp"
        tmp.write_bytes(b"w")
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="must be in"):
        with atomic_path(target, temp=tmp_path / "sub" / "best.pt.tmp"):
            pass
    assert target.read_bytes() == b"w"


def test_write_text_atomic_writes_the_same_bytes_as_write_text(tmp_path: Path) -> None:
    text = "a,b\n1,눈\n"
    write_text_atomic(tmp_path / "atomic.csv", text)
    (tmp_path / "plain.csv").write_text(text, encoding="utf-8")
    assert (tmp_path / "atomic.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()


class WriterError(Exception):
    """A writer library's own exception class (safetensors, OpenCV, torch raise their own)."""


@pytest.mark.parametrize(("error", "expected"), [
    (WriterError("Error while serializing: I/O error: Disk quota exceeded (os error 122)"), "Disk quota exceeded"),
    (WriterError("could not write"), None),  # says nothing, and the disk has room: passed on as it is
])
def test_a_writer_library_error_is_translated_by_what_it_says(tmp_path: Path, error: Exception,
                                                              expected: str | None) -> None:
    target = tmp_path / "w.pt"
    with pytest.raises(Exception) as info:
        with atomic_path(target):
            raise error
    if expected is None:
        assert info.value is error
    else:
        assert isinstance(info.value, OSError) and info.value.filename == str(target)
        assert info.value.strerror == expected and info.value.__cause__ is error


def test_an_os_error_behind_a_library_error_names_the_target(tmp_path: Path) -> None:
    target = tmp_path / "w.pt"
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            try:
                raise OSError(28, "No space left on device", str(tmp))
            except OSError as cause:
                raise RuntimeError("file write failed") from cause
    assert info.value.filename == str(target) and info.value.strerror == "No space left on device"
