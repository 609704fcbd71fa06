"""Crop boxes, the crop transform, and the `nia crops` writer on tiny trees."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from common.cli import main
from common.crops import CropBox, CropOptions, crop_box, cut_and_resize, write_crop_dataset
from common.manifest import build_index, read_manifest, write_manifest
from common.masks import Ellipse, EyeShapes, class_map
from common.profiles import load_profiles


def test_crop_box_adds_margin_then_widens_to_the_output_aspect() -> None:
    # extent 40 x 10 around (50, 20); margin 0.25 -> 60 x 15; aspect 2 -> 60 x 30. The box edge
    # 50 - 30 = 20 is a pixel centre; the half-pixel tie goes up, so pixels 21..80 (edges 20.5..80.5)
    box = crop_box(np.array([[30.0, 15.0], [70.0, 25.0]]), (120, 60), 0.25)
    assert (box.left, box.top, box.width_px, box.height_px) == (21, 6, 60, 30)
    assert (box.scale_x, box.scale_y) == (2.0, 2.0)
    assert box.x0 == pytest.approx(21 - 0.25)  # left - 0.5 + 0.5 / scale
    # a tall extent widens instead: 10 x 40, margin 0 -> 80 x 40
    tall = crop_box(np.array([[0.0, 0.0], [10.0, 40.0]]), (120, 60), 0.0)
    assert (tall.width_px, tall.height_px) == (80, 40)


@pytest.mark.parametrize("box", [CropBox(10, 7, 40, 24, 160, 96), CropBox(3, 2, 83, 49, 160, 96),
                                 CropBox(0, 0, 300, 150, 224, 112)])
def test_a_dot_lands_where_the_transform_says_and_maps_back_within_half_a_pixel(box: CropBox) -> None:
    rng = np.random.default_rng(1)
    image = np.zeros((200, 320), np.float32)
    for _ in range(10):
        x = int(rng.integers(box.left + 3, box.left + box.width_px - 3))
        y = int(rng.integers(box.top + 3, box.top + box.height_px - 3))
        image[:] = 0
        image[y, x] = 1.0
        crop = cut_and_resize(image, box)
        rows, cols = np.indices(crop.shape)
        centroid = np.array([(crop * cols).sum(), (crop * rows).sum()]) / crop.sum()
        assert np.abs(centroid - box.to_crop(np.array([x, y]))).max() < 0.5
        assert np.abs(box.to_frame(centroid) - [x, y]).max() < 0.5


def test_outside_the_frame_is_zero_padded() -> None:
    image = np.full((20, 30, 3), 200, np.uint8)
    crop = cut_and_resize(image, CropBox(-10, 0, 20, 10, 20, 10))  # left half off-frame
    assert (crop[:, :10] == 0).all() and (crop[:, 10:] == 200).all()
    assert crop.shape == (10, 20, 3)


def _manifest(nia_tree, tmp_path: Path, split: bool = True, **tree_options) -> Path:
    tree = nia_tree(n_subjects=1, videos_per_subject=2, frames_per_video=2, image_size=(1100, 400), **tree_options)
    path = tmp_path / "manifest.parquet"
    build_index(tree.root, path, workers=1)
    if split:
        df, root = read_manifest(path)
        df["split"] = np.where(df["kind"] == "frame", "train", None)
        write_manifest(df, path, root)
    return path


def test_nia_crops_writes_the_layout_index_and_summary(nia_tree, tmp_path: Path) -> None:
    manifest = _manifest(nia_tree, tmp_path)
    out = tmp_path / "crops"
    result = CliRunner().invoke(main, ["crops", str(manifest), str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    index = pd.read_parquet(out / "index.parquet")
    assert len(index) == 4 * 3  # 4 frames, 3 crops each
    assert set(index["crop"]) == {"eyes", "r_eye", "l_eye"}
    meta = pq.read_schema(out / "index.parquet").metadata
    assert len(meta[b"nia.manifest_sha256"]) == 64
    assert meta[b"nia.gaze_method"] == b"geometric"
    assert meta[b"nia.gaze_profile_sha256"] == load_profiles().sha256.encode()
    assert json.loads(meta[b"nia.classes"]) == ["background", "eye region", "iris"]
    assert json.loads(meta[b"nia.crop_options"])["eyes_size"] == [224, 112]
    row = index[index["crop"] == "eyes"].iloc[0]
    assert row["crop_id"] == f"{row['sample_id']}_eyes"
    assert row["jpg_path"] == f"train/eyes/{row['sample_id']}.jpg"
    assert np.isfinite(row["gaze_pitch_deg"]) and np.isfinite(row["gaze_yaw_deg"])
    jpg = cv2.imread(str(out / row["jpg_path"]), cv2.IMREAD_UNCHANGED)
    png = cv2.imread(str(out / row["png_path"]), cv2.IMREAD_UNCHANGED)
    assert jpg.shape == (112, 224, 3) and png.shape == (112, 224)
    assert set(np.unique(png)) == {0, 1, 2}
    label = json.loads((out / row["json_path"]).read_text())
    assert label["gaze"]["pitch_deg"] == pytest.approx(row["gaze_pitch_deg"])
    assert label["transform"]["x0"] == pytest.approx(row["x0"])
    summary = json.loads((out / "crops_summary.json").read_text())
    assert summary["crops_written"] == 12 and summary["rows_skipped"] == {"not a frame (kind=video)": 2}
    assert "profile:" in result.output and "bundled default" in result.output


def test_json_labels_map_back_to_the_frame_within_half_a_pixel_and_match_the_png(nia_tree, tmp_path: Path) -> None:
    manifest = _manifest(nia_tree, tmp_path)
    df, root = read_manifest(manifest)
    out = tmp_path / "crops"
    write_crop_dataset(df, root, out, split_column="split", options=CropOptions(), progress=False)
    frame = df[df["kind"] == "frame"].iloc[0]
    for crop in ("eyes", "r_eye", "l_eye"):
        label = json.loads((out / "train" / crop / f"{frame['sample_id']}.json").read_text())
        t = label["transform"]
        box = CropBox(*t["box_px"], *label["size"])
        shapes = {s["label"]: s for s in label["shapes"]}
        for side in "rl":
            lid = box.to_frame(np.array(shapes[f"{side}_eyelid"]["points"]))
            original = np.asarray(frame[f"{side}_eyelid"], float).reshape(-1, 2)
            assert np.abs(lid - original).max() < 0.5
            iris = shapes[f"{side}_iris"]
            centre = box.to_frame(np.array([iris["cx"], iris["cy"]]))
            assert np.abs(centre - [frame[f"{side}_iris_cx"], frame[f"{side}_iris_cy"]]).max() < 0.5
        eyes = [EyeShapes(np.array(shapes[f"{s}_eyelid"]["points"]),
                          Ellipse(shapes[f"{s}_iris"]["cx"], shapes[f"{s}_iris"]["cy"], shapes[f"{s}_iris"]["rx"],
                                  shapes[f"{s}_iris"]["ry"], shapes[f"{s}_iris"]["rotate"])) for s in "rl"]
        png = cv2.imread(str(out / "train" / crop / f"{frame['sample_id']}.png"), cv2.IMREAD_UNCHANGED)
        assert (png != class_map(eyes, *label["size"])).sum() <= 3  # only rounding of the JSON numbers


def test_resume_keeps_existing_crops_and_rewrites_a_missing_one(nia_tree, tmp_path: Path) -> None:
    df, root = read_manifest(_manifest(nia_tree, tmp_path))
    out = tmp_path / "crops"
    first = write_crop_dataset(df, root, out, split_column="split", options=CropOptions(), progress=False)
    victim = next((out / "train" / "r_eye").glob("*.jpg"))
    victim.unlink()
    second = write_crop_dataset(df, root, out, split_column="split", options=CropOptions(), progress=False)
    assert (first["crops_written"], second["crops_written"], second["crops_already_present"]) == (12, 1, 11)
    assert victim.exists()
    assert not list(out.rglob(".*tmp*"))


def test_parallel_run_gives_the_same_index(nia_tree, tmp_path: Path) -> None:
    df, root = read_manifest(_manifest(nia_tree, tmp_path))
    one = write_crop_dataset(df, root, tmp_path / "a", split_column="split", options=CropOptions(), progress=False)
    two = write_crop_dataset(df, root, tmp_path / "b", split_column="split", options=CropOptions(),
                             workers=2, chunk_size=1, progress=False)
    assert one["crops_written"] == two["crops_written"] == 12
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "index.parquet"),
                                  pd.read_parquet(tmp_path / "b" / "index.parquet"))
    some = "train/eyes/" + df[df["kind"] == "frame"].iloc[0]["sample_id"] + ".jpg"
    assert (tmp_path / "a" / some).read_bytes() == (tmp_path / "b" / some).read_bytes()


def test_missing_split_column_says_run_nia_split_first(nia_tree, tmp_path: Path) -> None:
    manifest = _manifest(nia_tree, tmp_path, split=False)
    result = CliRunner().invoke(main, ["crops", str(manifest), str(tmp_path / "c")])
    assert result.exit_code == 1
    assert "run nia split first" in result.output
    result = CliRunner().invoke(main, ["crops", str(manifest), str(tmp_path / "c"), "--split-column", "none",
                                       "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "c" / "all" / "l_eye").glob("*.png"))) == 4


def test_skipped_rows_and_crops_are_counted(nia_tree, tmp_path: Path) -> None:
    df, root = read_manifest(_manifest(nia_tree, tmp_path))
    frames = df.index[df["kind"] == "frame"]
    df.loc[frames[0], "l_eyelid"] = None
    df.loc[frames[1], "split"] = None
    (root / df.loc[frames[2], "png_path"]).write_bytes(b"not a png")
    summary = write_crop_dataset(df, root, tmp_path / "c", split_column="split", options=CropOptions(),
                                 progress=False)
    assert summary["rows_skipped"] == {"no value in column 'split'": 1, "not a frame (kind=video)": 2}
    assert summary["crops_skipped"] == {"eyes: needs both eyelid polygons": 1, "l_eye: no l_eyelid polygon": 1,
                                        "unreadable PNG (3 crops)": 3}
    assert summary["crops_written"] == 1 + 3


def test_ir_frames_stay_single_channel(tmp_path: Path) -> None:
    from common.crops import process_rows, _Job

    frame = np.full((400, 1100, 3), 120, np.uint8)
    cv2.imwrite(str(tmp_path / "f.png"), frame)
    lid = [865.0, 291, 918, 295, 896, 285]
    row = {"sample_id": "f", "png_path": "f.png", "image": "ir", "image_type": "ir", "split": "val",
           "r_eyelid": [x + 130 if i % 2 == 0 else x for i, x in enumerate(lid)], "l_eyelid": lid}
    job = _Job(root=str(tmp_path), out=str(tmp_path / "o"), split_column="split", options=CropOptions())
    result = process_rows([row], job)
    assert result.counts["written"] == 3
    jpg = cv2.imread(str(tmp_path / "o" / "val" / "eyes" / "f.jpg"), cv2.IMREAD_UNCHANGED)
    assert jpg.ndim == 2 and jpg.shape == (112, 224)
