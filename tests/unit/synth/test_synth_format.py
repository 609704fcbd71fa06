"""nia synth writes the NIA delivery format: layout, names, label schema, mp4s, determinism, zips."""
import hashlib
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from common.cli import main
from common.delivery.filenames import parse_name
from common.delivery.labels import load_label, load_video_label
from common.synth import SynthConfig, SynthError, build_dataset, write_sized_profile
from common.synth.scene import DEVICE_FOLDERS
from common.synth.writer import LABEL_DIR, SOURCE_DIR
from common.synth.zipparts import parse_size, write_zip_parts

CONFIG = SynthConfig(subjects=2, seed=5, videos_per_subject=2, frames_per_video=3, size=(160, 90))
TOP_KEYS = {"name", "inst", "image", "condition", "posture", "metaid", "annotations", "pose", "distance"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "out"
    summary = build_dataset(out, CONFIG, workers=1)
    assert (summary.n_subjects, summary.n_videos, summary.n_frames) == (2, 4, 12)
    return out


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_follows_the_ai_hub_tree_with_korean_folders(tree):
    pngs = sorted((tree / SOURCE_DIR).rglob("*.png"))
    mp4s = sorted((tree / SOURCE_DIR).rglob("*.mp4"))
    assert len(pngs) == 12 and len(mp4s) == 4
    for png in pngs:
        name = parse_name(png.name)
        assert name.frame is not None and png.parent.name == name.video_stem
        assert png.parent.parent.name == DEVICE_FOLDERS[name.device]
        rel = png.relative_to(tree / SOURCE_DIR)
        assert (tree / LABEL_DIR / rel).with_suffix(".json").is_file()
    for mp4 in mp4s:
        rel = mp4.relative_to(tree / SOURCE_DIR)
        assert parse_name(mp4.name).frame is None
        assert (tree / LABEL_DIR / rel).with_suffix(".json").is_file()
    assert str(SOURCE_DIR) == "01.데이터/1.Training/원천데이터"


def test_frame_labels_have_the_published_schema_and_agree_with_their_names(tree):
    for path in sorted((tree / LABEL_DIR).rglob("*_[0-9].json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        ann = raw["Annotations"]
        assert set(raw) == {"Annotations"} and set(ann) == TOP_KEYS
        assert ann["name"] == path.with_suffix(".png").name
        label = load_label(path)  # the data layer's validator accepts it
        name = parse_name(path.name)
        assert (label.inst, label.image, label.condition, label.posture, label.metaid) == (
            name.device, name.image_type, name.state, name.posture_code, name.subject)
        shapes = {a["label"]: a for a in ann["annotations"]}
        assert set(shapes) == {"r_iris", "l_iris", "r_eyelid", "l_eyelid", "r_center", "l_center"}
        for side in "rl":
            iris = shapes[f"{side}_iris"]
            assert iris["shape"] == "Ellipse" and iris["rx"] > 0 and iris["ry"] > 0
            expected = [[iris["cx"] - iris["rx"], iris["cy"] - iris["ry"]], [iris["cx"] + iris["rx"], iris["cy"] + iris["ry"]]]
            np.testing.assert_allclose(iris["points"], expected, atol=0.011)
            assert shapes[f"{side}_center"]["points"] == [[iris["cx"], iris["cy"]]]
            assert shapes[f"{side}_eyelid"]["shape"] == "Polygon" and len(shapes[f"{side}_eyelid"]["points"]) == 16
        assert len(ann["pose"]["head"]) == 3 and len(ann["pose"]["cam"]) == 3 and len(ann["pose"]["point"]) == 2
        assert ann["distance"]["cam"] > 10


def test_video_labels_and_mp4s_agree_on_frame_count(tree):
    for mp4 in sorted((tree / SOURCE_DIR).rglob("*.mp4")):
        label = load_video_label((tree / LABEL_DIR / mp4.relative_to(tree / SOURCE_DIR)).with_suffix(".json"))
        capture = cv2.VideoCapture(str(mp4))
        n = 0
        while capture.read()[0]:
            n += 1
        assert n == label.n_frames == 3 == len(list((mp4.parent / mp4.stem).glob("*.png")))
        assert label.fps == 30.0 and label.name == mp4.name


def test_rerun_with_other_workers_is_byte_identical(tree, tmp_path):
    build_dataset(tmp_path / "again", CONFIG, workers=2)
    first, second = _hashes(tree), _hashes(tmp_path / "again")
    assert len(first) == 12 * 2 + 4 * 2 + 1 + 2  # frames, videos, profile, params + truth
    assert first == second


def test_a_non_default_size_writes_its_profile(tree, tmp_path):
    profile = json.loads((tree / "device_profiles.json").read_text(encoding="utf-8"))
    assert profile["image_size_px"] == [160, 90]
    assert write_sized_profile(tmp_path, (1920, 1080)) is None and not (tmp_path / "device_profiles.json").exists()


def test_a_non_empty_output_folder_is_refused(tree):
    with pytest.raises(SynthError, match="not empty"):
        build_dataset(tree, CONFIG)


def test_cli_writes_a_set_and_refuses_a_bad_size(tmp_path):
    runner = CliRunner()
    args = ["synth", str(tmp_path / "cli"), "--subjects", "1", "--videos-per-subject", "1", "--size", "96x54", "--workers", "1"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "wrote 1 clip(s), 24 frame(s) of 1 subject(s)" in result.output
    bad = runner.invoke(main, ["synth", str(tmp_path / "bad"), "--size", "wide"])
    assert bad.exit_code == 2 and "expected WIDTHxHEIGHT" in bad.output
    few = runner.invoke(main, ["synth", str(tmp_path / "few"), "--frames-per-video", "0"])  # 1 and more: short clips for crops
    assert few.exit_code == 2


@pytest.mark.parametrize("text, expected", [("100", 100), ("4K", 4096), ("20M", 20 * 1024 ** 2), ("1g", 1024 ** 3)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "5T", "big"])
def test_parse_size_refuses_nonsense(text):
    with pytest.raises(ValueError, match="part size"):
        parse_size(text)


def test_zip_parts_rebuild_the_tree(tree, tmp_path):
    parts = write_zip_parts(tree, SOURCE_DIR, LABEL_DIR, tmp_path / "zips", part_size=8192)
    assert all(p.stat().st_size <= 8192 for p in parts)
    archives: dict[str, list[Path]] = {}
    for part in parts:
        archives.setdefault(part.name.rsplit(".part", 1)[0], []).append(part)
    members = {}
    for name, group in archives.items():
        merged = tmp_path / name
        group.sort(key=lambda p: int(p.name.rsplit(".part", 1)[1]))
        merged.write_bytes(b"".join(p.read_bytes() for p in group))
        with zipfile.ZipFile(merged) as archive:
            members.update({info.filename: archive.read(info) for info in archive.infolist()})
    files = {p.relative_to(tree).as_posix(): p for p in (tree / "01.데이터").rglob("*") if p.is_file()}
    assert set(members) == set(files)
    assert all(members[k] == files[k].read_bytes() for k in files)
    assert {n.split("_", 1)[0] for n in archives} == {"TS", "TL"}
