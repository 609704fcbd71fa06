"""The hostile corpus itself: big enough, every area of issue 14 covered, made by code, listed in docs/reliability.md."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.hostile_corpus import ALL, CASES_FILE, _cases, counts, markdown_table
from tests.paths import REPO

AREAS = {"labels", "media", "coverage", "indexes", "deliveries", "trees", "predictions", "weights", "reports", "outputs",
         "options", "suite", "datasets"}


def test_at_least_40_cases_in_every_area_with_unique_names() -> None:
    assert len(ALL) >= 40
    assert set(counts()) == AREAS
    assert len({c.id for c in ALL}) == len(ALL)
    assert all(c.code in (0, 1, 2) for c in ALL)


def test_every_case_of_the_data_file_is_in_the_corpus() -> None:
    tables = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    in_file = [row[0] for table in tables.values() for row in table["cases"]]
    assert sorted(set(in_file) - {c.id for c in ALL}) == []
    assert len(in_file) == len(set(in_file))


def test_a_maker_for_no_case_of_its_table_is_refused() -> None:
    with pytest.raises(KeyError, match="table TREES has no case tree_typo"):
        _cases("TREES", {"tree_typo": lambda root: None})


def test_the_issue_s_seen_cases_are_all_there() -> None:
    ids = {c.id for c in ALL}
    seen = {"zip_bomb_member", "zip_member_duplicate", "zip_merge_truncated", "zip_bad_crc", "tree_symlink_loop",
            "out_index_is_folder", "out_stats_read_only", "out_crops_read_only", "out_split_read_only",
            "out_train_read_only", "full_crops", "full_stats", "full_split", "full_train",
            "opt_index_workers_negative", "opt_split_counts_over"}
    assert seen <= ids, seen - ids


def test_no_binary_input_is_committed_under_tests() -> None:
    files = subprocess.run(["git", "ls-files", "tests"], cwd=REPO, capture_output=True, text=True).stdout.split()
    binary = [f for f in files if Path(f).suffix.lower() in (".zip", ".png", ".jpg", ".mp4", ".pt", ".pth", ".pkl")]
    assert binary == []


def test_reliability_page_holds_the_table_of_cases() -> None:
    assert markdown_table() in (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")


def test_reliability_page_counts_the_cases_of_every_area() -> None:
    page = " ".join((REPO / "docs" / "reliability.md").read_text(encoding="utf-8").split())
    assert f"{len(ALL)} bad inputs made by code" in page
    assert "; " + ", ".join(f"{area} {n}" for area, n in counts().items()) + ";" in page
