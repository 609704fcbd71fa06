"""--data resolution: a dataset root or a manifest becomes a crop dataset through the nia commands."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from common.cli import main as nia
from common.cli.prepared_input import resolve_crops
from common.verdicts.results import RunError


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline") / "synth"
    result = CliRunner().invoke(nia, ["synth", str(root), "--subjects", "3", "--videos-per-subject", "1",
                                      "--frames-per-video", "16", "--size", "480x270", "--seed", "1",
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    return root


def test_dataset_root_is_indexed_split_and_cropped(synth_root: Path, tmp_path: Path, capsys) -> None:
    crops = resolve_crops(synth_root, tmp_path / "work")
    assert crops == tmp_path / "work" / "crops"
    manifest, splits = tmp_path / "work" / "manifest.parquet", tmp_path / "work" / "splits"
    printed = capsys.readouterr()
    assert printed.out == ""  # stdout stays the verdict line's
    commands = [line for line in printed.err.splitlines() if line.startswith("nia ")]
    assert commands == [f"nia index {synth_root} --out {manifest}", f"nia split {manifest} --out {splits}",
                        f"nia crops {manifest} {crops}"]  # what a person types to redo each step
    index = pd.read_parquet(crops / "index.parquet")
    manifest = pd.read_parquet(tmp_path / "work" / "manifest.parquet")
    frames = manifest[(manifest["kind"] == "frame") & manifest["valid"]]
    assert len(frames) == 48
    # three crops per frame that has both eyes' eyelids, every one in the frame's split
    assert set(index["crop"]) == {"eyes", "r_eye", "l_eye"}
    merged = index.merge(frames[["sample_id", "split"]], on="sample_id", suffixes=("", "_manifest"))
    assert len(merged) == len(index) and (merged["split"] == merged["split_manifest"]).all()


def test_manifest_without_split_is_split_in_a_copy(synth_root: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.parquet"
    assert CliRunner().invoke(nia, ["index", str(synth_root), "--out", str(manifest)]).exit_code == 0
    before = manifest.read_bytes()
    crops = resolve_crops(manifest, tmp_path / "work")
    assert (crops / "index.parquet").is_file()
    assert manifest.read_bytes() == before  # the auditor's manifest is never modified
    assert "split" in pd.read_parquet(tmp_path / "work" / "manifest.parquet").columns


def test_crop_folder_is_used_as_is(synth_root: Path, tmp_path: Path) -> None:
    crops = resolve_crops(synth_root, tmp_path / "work")
    assert resolve_crops(crops, tmp_path / "elsewhere") == crops
    assert not (tmp_path / "elsewhere").exists()


def test_folder_without_labels_is_a_run_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="no valid NIA frame"):
        resolve_crops(tmp_path / "empty", tmp_path / "work")


def test_preparing_input_loads_no_nia_command_module() -> None:
    """An entry point's helpers are library calls: the `nia` group and its command modules stay unloaded."""
    import subprocess
    import sys

    code = ("import sys, common.cli.prepared_input, common.cli.entry; "
            "print(sorted(m for m in sys.modules if m.startswith('common.cli')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['common.cli', 'common.cli.entry', 'common.cli.prepared_input', 'common.cli.sizes']"
