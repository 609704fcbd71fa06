"""nia prepare: numeric part order, refused merges, name encodings, escapes, resume."""
import io
import re
import zipfile

import pytest

import common.delivery.prepare as prep
from common.delivery.prepare import PrepareError, prepare

SOURCE = "01.데이터/1.Training/원천데이터"


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def zip_raw_names(members: dict[bytes, bytes]) -> bytes:
    """A zip whose names are the given raw bytes with the UTF-8 flag clear (as old Korean
    Windows tools write CP949): zipfile would set the flag, so ASCII stand-ins of the same
    length are written and swapped for the raw bytes afterwards."""
    stand_ins = {f"{i}".rjust(len(raw), "Q").encode(): raw for i, raw in enumerate(members)}
    data = zip_bytes({s.decode(): members[raw] for s, raw in stand_ins.items()})
    for s, raw in stand_ins.items():
        assert data.count(s) == 2  # local header + central directory
        data = data.replace(s, raw)
    return data


def write_parts(folder, name: str, data: bytes, n: int) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(data) // n)
    paths = []
    for i in reversed(range(n)):  # written out of order on purpose
        path = folder / f"{name}.part{i}"
        path.write_bytes(data[i * size:(i + 1) * size])
        paths.append(path)
    return paths


def test_parts_merge_in_numeric_order_into_the_korean_layout(tmp_path):
    members = {f"S1/001/f{i}.json": f"{{\"i\": {i}}}".encode() * 40 for i in range(30)}
    data = zip_bytes(members)
    write_parts(tmp_path / "src" / SOURCE, "TS_1.zip", data, 12)  # part10, part11 sort before part2 as text
    result = prepare(tmp_path / "src", tmp_path / "dest")
    assert result.extracted == [f"{SOURCE}/TS_1.zip"] and result.n_files == 30
    out = tmp_path / "dest" / SOURCE / "S1" / "001"
    assert (out / "f7.json").read_bytes() == members["S1/001/f7.json"]
    assert not list((tmp_path / "dest" / ".nia-prepare").glob("*.zip"))  # merged copy removed


def test_missing_part_is_named(tmp_path):
    paths = write_parts(tmp_path / "src", "a.zip", zip_bytes({"x": b"1" * 100}), 4)
    next(p for p in paths if p.name.endswith("part2")).unlink()
    refused = prepare(tmp_path / "src", tmp_path / "dest").refused
    assert list(refused) == ["a.zip"] and re.match(r"a.zip: part\(s\) .part2 missing", refused["a.zip"])


def test_truncated_merge_is_refused_naming_the_parts(tmp_path):
    paths = write_parts(tmp_path / "src", "a.zip", zip_bytes({"x": b"123" * 500}), 3)
    last = next(p for p in paths if p.name.endswith("part2"))
    last.write_bytes(last.read_bytes()[:-30])
    refused = prepare(tmp_path / "src", tmp_path / "dest").refused
    assert re.match(r"a.zip: not a complete zip .*a.zip.part0 .*a.zip.part2", refused["a.zip"])
    assert not list((tmp_path / "dest" / ".nia-prepare").glob("*.zip"))  # the refused merge is removed


def test_empty_merge_is_refused(tmp_path):
    (tmp_path / "src").mkdir()
    for i in range(2):
        (tmp_path / "src" / f"a.zip.part{i}").write_bytes(b"")
    refused = prepare(tmp_path / "src", tmp_path / "dest").refused
    assert re.match(r"a.zip: merged archive is empty \(0 bytes\)", refused["a.zip"])


@pytest.mark.parametrize("evil", ["../escape.txt", "ok/../../escape.txt", "/abs/escape.txt"])
def test_entries_escaping_dest_are_refused(tmp_path, evil):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.zip").write_bytes(zip_bytes({"fine.txt": b"1", evil: b"2"}))
    assert "outside DEST" in prepare(tmp_path / "src", tmp_path / "dest").refused["a.zip"]
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "dest" / "fine.txt").exists()  # checked before anything is written


def test_cp949_utf8_unflagged_and_flagged_names(tmp_path):
    (tmp_path / "src").mkdir()
    raw = zip_raw_names({"원천데이터/눈_cp949.png".encode("cp949"): b"cp949",
                         "라벨링데이터/눈_utf8.json".encode("utf-8"): b"utf8"})
    (tmp_path / "src" / "raw.zip").write_bytes(raw)
    (tmp_path / "src" / "flagged.zip").write_bytes(zip_bytes({"라벨링데이터/플래그.json": b"flag"}))
    prepare(tmp_path / "src", tmp_path / "dest")
    assert (tmp_path / "dest" / "원천데이터" / "눈_cp949.png").read_bytes() == b"cp949"
    assert (tmp_path / "dest" / "라벨링데이터" / "눈_utf8.json").read_bytes() == b"utf8"
    assert (tmp_path / "dest" / "라벨링데이터" / "플래그.json").read_bytes() == b"flag"


def test_interrupted_prepare_resumes(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    members = {f"d/{i}.bin": bytes([i]) * 1000 for i in range(4)}
    (tmp_path / "src" / "a.zip").write_bytes(zip_bytes(members))
    real_copy, calls = prep.shutil.copyfileobj, []

    def dies_on_third(src, dst, length=0):
        calls.append(1)
        if len(calls) == 3:
            dst.write(b"partial")
            raise KeyboardInterrupt
        real_copy(src, dst, length)

    monkeypatch.setattr(prep.shutil, "copyfileobj", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "src", tmp_path / "dest")
    out = tmp_path / "dest" / "d"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["0.bin", "1.bin"]
    monkeypatch.setattr(prep.shutil, "copyfileobj", real_copy)
    again = prepare(tmp_path / "src", tmp_path / "dest")
    assert (again.n_files, again.n_reused_files) == (2, 2)
    assert all((out / n.split("/")[1]).read_bytes() == d for n, d in members.items())
    third = prepare(tmp_path / "src", tmp_path / "dest")
    assert third.skipped == ["a.zip"] and third.extracted == []


def test_no_archives_is_an_error(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "readme.txt").write_text("x")
    with pytest.raises(PrepareError, match="no \\*.zip"):
        prepare(tmp_path / "src", tmp_path / "dest")
