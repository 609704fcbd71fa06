"""Hostile deliveries for `nia prepare` and hostile trees for `nia index` (tests/hostile_corpus.py).

Each bad archive sits in SRC beside a good one: the run must prepare the good
one, print one line naming the bad one (a ``refused:`` or ``warning:``
line), exit as the case says, write nothing outside DEST and leave no
partial file, merged copy or temporary file behind.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from common.atomic import TEMP_NAME
from common.delivery.prepare import STATE_DIR
from tests.conftest import write_tree
from tests.hostile_corpus import DELIVERIES, GOOD_ARCHIVE, TREES, Case, by_id, zip_bytes
from tests.hostile_env import Outcome, assert_one_error, run_nia

PREPARE = ["--min-free", "0"]  # the tests' disks are small; the free-space guard has its own case


def _src_with(case: Case, src: Path) -> Path:
    src.mkdir(parents=True)
    name, members = GOOD_ARCHIVE
    (src / name).write_bytes(zip_bytes(members))
    case.make(src)
    return src


def _leftovers(dest: Path) -> list[str]:
    """Temporary or partial files anywhere under DEST, and merged zips left in its state folder."""
    found = []
    for folder, _, files in os.walk(dest):
        found += [os.path.join(folder, f) for f in files if TEMP_NAME.match(f)]
    state = dest / STATE_DIR
    found += [str(p) for p in state.glob("*.zip")] + [str(p) for p in state.glob("partial/*")]
    return found


@pytest.mark.parametrize("case", DELIVERIES, ids=lambda c: c.id)
def test_bad_archive_is_one_line_and_the_rest_is_prepared(tmp_path: Path, case: Case) -> None:
    src, dest = _src_with(case, tmp_path / "src"), tmp_path / "dest"
    outcome = run_nia("prepare", src, dest, *PREPARE)
    assert outcome.code == case.code, outcome.err
    assert "Traceback" not in outcome.err
    naming = outcome.lines_naming("bad.zip")
    if case.line:
        assert len(naming) == 1, outcome.err
        for part in case.expected():
            assert part in naming[0], (part, naming[0])
    else:
        assert naming == [] and outcome.err == "", outcome.err
    if case.code:
        assert len(outcome.error_lines) == 1 and "1 archive(s) refused" in outcome.error_lines[0]
    assert (dest / "g" / "a.json").read_bytes() == b'{"a": 1}'  # the good archive, prepared all the same
    assert not (tmp_path / "escape.txt").exists() and not Path("/abs/escape.txt").exists()
    assert _leftovers(dest) == []
    _check_case(case.id, dest, outcome)


def _check_case(case_id: str, dest: Path, outcome: Outcome) -> None:
    """What each case must have written, or not."""
    if case_id == "zip_member_duplicate":
        assert (dest / "d" / "a.json").read_bytes() == b"first"
    elif case_id == "zip_member_symlink":
        assert (dest / "ok" / "kept.json").exists() and not os.path.lexists(dest / "ok" / "link")
    elif case_id == "zip_bad_crc":
        assert (dest / "ok" / "first.json").read_bytes() == b"fine" and not (dest / "ok" / "damaged.json").exists()
        assert not (dest / STATE_DIR / "bad.zip.done").exists()  # a rerun tries it again
    elif case_id == "zip_cp949_names":
        assert (dest / "원천데이터" / "눈.png").read_bytes() == b"cp949"
    elif case_id.startswith("zip_bomb"):
        assert not (dest / "z").exists() and not (dest / "z.bin").exists()  # refused before a byte is written
    elif case_id in ("zip_member_dotdot", "zip_member_absolute"):
        assert not (dest / "fine.txt").exists()  # refused before a byte is written


def test_one_run_over_every_bad_archive_goes_on_and_counts_them(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    name, members = GOOD_ARCHIVE
    (src / name).write_bytes(zip_bytes(members))
    for case in DELIVERIES:
        (src / case.id).mkdir()
        case.make(src / case.id)
    outcome = run_nia("prepare", src, dest, *PREPARE)
    refused = [c for c in DELIVERIES if c.code == 2]
    warned = [c for c in DELIVERIES if c.code == 0 and c.line]
    assert outcome.code == 2
    assert len([line for line in outcome.err.splitlines() if line.startswith("refused: ")]) == len(refused)
    assert len([line for line in outcome.err.splitlines() if line.startswith("warning: ")]) == len(warned)
    assert assert_one_error(outcome, 2, f"{len(refused)} archive(s) refused")
    extracted = int(re.search(r"extracted (\d+) archive", outcome.out)[1])
    assert extracted == 1 + len(DELIVERIES) - len(refused)
    assert _leftovers(dest) == []
    again = run_nia("prepare", src, dest, *PREPARE)  # the rerun skips what is done, refuses the same ones
    assert again.code == 2 and f"skipped {extracted} finished archive(s)" in again.out


# --- trees -------------------------------------------------------------------------------------------------

TREE = by_id(TREES)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "nia"
    write_tree(root, n_subjects=1, videos_per_subject=2, frames_per_video=2, with_mp4=False, with_video_json=False)
    return root


def _index(root: Path, out: Path) -> tuple[Outcome, "object"]:
    from common.delivery.manifest import read_manifest

    outcome = run_nia("index", root, "--out", out, "--workers", "1")
    df = read_manifest(out)[0] if out.exists() else None
    return outcome, df


def _check_line(case: Case, text: str, file: str = "") -> None:
    lines = [line for line in text.splitlines() if all(part in line for part in case.expected(file))]
    assert len(lines) == 1, text


@pytest.mark.parametrize("case_id", ["tree_symlink_loop", "tree_symlink_twice"])
def test_a_folder_reached_twice_is_indexed_once(tree: Path, tmp_path: Path, case_id: str) -> None:
    plain, df_plain = _index(tree, tmp_path / "plain.parquet")
    if case_id == "tree_symlink_loop":
        (tree / "01.데이터" / "loop").symlink_to("..", target_is_directory=True)
    else:
        (tree / "again").symlink_to(tree / "01.데이터" / "1.Training", target_is_directory=True)
    outcome, df = _index(tree, tmp_path / "m.parquet")
    assert outcome.code == TREE[case_id].code, outcome.err
    _check_line(TREE[case_id], outcome.out)
    assert sorted(df["png_path"].dropna()) == sorted(df_plain["png_path"].dropna())  # real paths, each once
    assert df["valid"].all()


def test_unreadable_folder_is_named_and_the_rest_indexed(tree: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tree / "01.데이터" / "1.Training" / "원천데이터" / "TS_S"
    if os.geteuid() == 0:  # root reads any folder: the listing fails as it would for a user
        real = os.scandir

        def scandir(path=".", *args):
            if os.fspath(path) == str(locked):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path, *args)

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        locked.chmod(0)
    try:
        outcome, df = _index(tree, tmp_path / "m.parquet")
    finally:
        locked.chmod(0o755)
    case = TREE["tree_unreadable_folder"]
    assert outcome.code == case.code
    _check_line(case, outcome.err, str(locked))
    assert_one_error(outcome, 2, "1 folder(s) could not be listed")
    # the images of TS_S are not listed: their labels stay as label_only rows; the other video is whole
    assert df["kind"].value_counts().to_dict() == {"label_only": 2, "frame": 2}


def test_names_with_spaces_are_indexed(tmp_path: Path) -> None:
    from tests.conftest import make_label_dict, png_bytes

    folder = tmp_path / "nia" / "a folder with spaces"
    folder.mkdir(parents=True)
    (folder / "my frame 1.png").write_bytes(png_bytes(1920, 1080))
    (folder / "my frame 1.json").write_text(__import__("json").dumps(make_label_dict()), encoding="utf-8")
    outcome, df = _index(tmp_path / "nia", tmp_path / "m.parquet")
    assert outcome.code == TREE["tree_names_with_spaces"].code, outcome.err
    row = df.set_index("sample_id").loc["my frame 1"]
    assert row["kind"] == "frame" and row["png_path"] == "a folder with spaces/my frame 1.png"
    assert row["subject"] is None or row["subject"] != row["subject"]  # the name does not parse: no fields


def test_dangling_symlink_is_named_in_its_row(tree: Path, tmp_path: Path) -> None:
    png = next(tree.rglob("*.png"))
    png.unlink()
    png.symlink_to(tmp_path / "gone.png")
    outcome, df = _index(tree, tmp_path / "m.parquet")
    case = TREE["tree_dangling_symlink"]
    assert outcome.code == case.code, outcome.err
    rel = png.relative_to(tree).as_posix()
    row = df.set_index("sample_id").loc[png.stem]
    assert not row["valid"] and all(part in row["error"] for part in case.expected(rel)), row["error"]
    assert df["valid"].sum() == len(df) - 1


def test_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    outcome, _ = _index(tmp_path / "file", tmp_path / "m.parquet")
    assert_one_error(outcome, TREE["tree_root_is_a_file"].code, *TREE["tree_root_is_a_file"].expected(str(tmp_path / "file")))
