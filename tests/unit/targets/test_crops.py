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
from common.targets.crop_geometry import CropBox, CropOptions, crop_box, cut_and_resize
from common.targets.crops import write_crop_dataset
from common.delivery.manifest import build_index, read_manifest, write_manifest
from common.targets.masks import Ellipse, EyeShapes, class_map
from common.targets.profiles import load_profiles


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
    points = read_manifest(manifest)[0].set_index("sample_id")[["point_x", "point_y"]]  # for the report's on/off screen
    assert np.allclose(index[["point_x", "point_y"]], points.loc[index["sample_id"]])
    assert np.allclose(index["gaze_pitch_deg_geometric"], index["gaze_pitch_deg"])  # the label under each method
    assert np.isfinite(index["gaze_pitch_deg_normal"]).all()
    assert not np.allclose(index["gaze_pitch_deg_normal"], index["gaze_pitch_deg"])
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
                                        "unreadable image": 3}
    assert summary["crops_written"] == 1 + 3


def test_ir_frames_stay_single_channel(tmp_path: Path) -> None:
    from common.targets.crop_job import CropJob, process_rows

    frame = np.full((400, 1100, 3), 120, np.uint8)
    cv2.imwrite(str(tmp_path / "f.png"), frame)
    lid = [865.0, 291, 918, 295, 896, 285]
    row = {"sample_id": "f", "png_path": "f.png", "image": "ir", "image_type": "ir", "split": "val",
           "r_eyelid": [x + 130 if i % 2 == 0 else x for i, x in enumerate(lid)], "l_eyelid": lid}
    job = CropJob(root=str(tmp_path), out=str(tmp_path / "o"), split_column="split", options=CropOptions())
    result = process_rows([row], job)
    assert result.counts["written"] == 3
    jpg = cv2.imread(str(tmp_path / "o" / "val" / "eyes" / "f.jpg"), cv2.IMREAD_UNCHANGED)
    assert jpg.ndim == 2 and jpg.shape == (112, 224)


# --- issue 10: damaged media named, crops outside the image, stale crops ----------------

def test_unreadable_images_are_named_file_by_file(nia_tree, tmp_path: Path) -> None:
    manifest = _manifest(nia_tree, tmp_path)
    df, root = read_manifest(manifest)
    frames = df[df["kind"] == "frame"]
    broken = frames["png_path"].iloc[1]
    (root / broken).write_bytes(b"not a png")  # damaged after indexing: only the crop step can see it
    out = tmp_path / "c"
    result = CliRunner().invoke(main, ["crops", str(manifest), str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "crops_summary.json").read_text())
    assert summary["crops_skipped"] == {"unreadable image": 3}
    assert summary["damaged_images"] == [{"png_path": broken, "reason": "unreadable image",
                                          "detail": f"{broken}: PNG file: not a PNG (starts with 6e 6f 74 20 61 20 70 6e)"}]
    assert summary["skipped_list"] == "crops_skipped.csv"
    listed = pd.read_csv(out / "crops_skipped.csv")
    assert listed.columns.tolist() == ["sample_id", "crop", "split", "png_path", "reason", "skip_reason"]
    assert sorted(listed["crop"]) == ["eyes", "l_eye", "r_eye"] and set(listed["skip_reason"]) == {"unreadable_image"}
    assert set(listed["png_path"]) == {broken} and set(listed["split"]) == {"train"}
    assert f"unreadable image: {broken}" in result.output


def test_rows_invalid_for_their_image_are_counted_by_check_and_listed(nia_tree, tmp_path: Path) -> None:
    df, root = read_manifest(_manifest(nia_tree, tmp_path))
    frames = df.index[df["kind"] == "frame"]
    damaged = "x.png: PNG file: empty file (0 bytes)"
    df.loc[frames[0], ["valid", "error", "image_error"]] = [False, damaged, damaged]
    df.loc[frames[1], ["valid", "error"]] = [False, "y.json: Annotations.inst: expected one of S, T"]
    summary = write_crop_dataset(df, root, tmp_path / "c", split_column="split", options=CropOptions(),
                                 progress=False)
    assert summary["rows_skipped"] == {"invalid image: PNG file": 1, "invalid label (see the error column)": 1,
                                       "not a frame (kind=video)": 2}
    listed = pd.read_csv(tmp_path / "c" / "crops_skipped.csv", keep_default_na=False)
    assert listed[["sample_id", "crop", "reason", "skip_reason"]].values.tolist() == [  # both, by the suite's reason
        [df.loc[frames[0], "sample_id"], "", damaged, "unreadable_image"],
        [df.loc[frames[1], "sample_id"], "", "y.json: Annotations.inst: expected one of S, T", "invalid_label"]]
    assert summary["damaged_images"] == [{"png_path": df.loc[frames[0], "png_path"], "reason": "invalid image",
                                          "detail": damaged}]


def test_a_crop_box_mostly_outside_its_image_is_skipped_not_padded(tmp_path: Path) -> None:
    from common.targets.crop_job import CropJob, process_rows

    cv2.imwrite(str(tmp_path / "f.png"), np.full((400, 1100, 3), 120, np.uint8))
    lid = [865.0, 291, 918, 295, 896, 285]
    right = [x + 215 if i % 2 == 0 else x for i, x in enumerate(lid)]  # x 1080..1133: its box is mostly beyond 1100
    row = {"sample_id": "f", "png_path": "f.png", "image": "rgb", "split": "test", "r_eyelid": right, "l_eyelid": lid}
    job = CropJob(root=str(tmp_path), out=str(tmp_path / "o"), split_column="split", options=CropOptions())
    result = process_rows([row], job)
    assert result.skipped == {"r_eye: crop_outside_image (under half of its box inside the image)": 1}
    assert result.counts["written"] == 2  # eyes (mostly inside) and l_eye
    assert not (tmp_path / "o" / "test" / "r_eye" / "f.jpg").exists()
    # its box: pixels 1067..1146 wide, 33 of its 80 columns inside the frame
    assert result.skipped_rows == [("f", "r_eye", "test", "f.png",
                                    "crop_outside_image: 41% of its box inside the 1100x400 image", "missing_crop")]


def _hashes(out: Path) -> dict[str, str]:
    import hashlib

    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.suffix in (".jpg", ".png", ".json") and p.parent != out}


def _crop(df, root, out, **options) -> dict:
    return write_crop_dataset(df, root, out, split_column="split", options=CropOptions(**options), progress=False)


def test_a_corrected_label_rebuilds_its_crops_and_only_those(nia_tree, tmp_path: Path) -> None:
    from tests.conftest import change_gaze_point

    from common.targets.gaze import add_gaze_columns

    manifest = _manifest(nia_tree, tmp_path)
    df, root = read_manifest(manifest)
    df = add_gaze_columns(df, load_profiles(), "geometric")[0]
    out = tmp_path / "c"
    _crop(df, root, out)
    before = _hashes(out)
    stem = df[df["kind"] == "frame"]["sample_id"].iloc[2]
    change_gaze_point(root / df.set_index("sample_id").loc[stem, "json_path"], [100, 900])
    build_index(root, manifest, workers=1)  # re-index: the label's split is dropped, split it again
    df, root = read_manifest(manifest)
    df["split"] = np.where(df["kind"] == "frame", "train", None)
    df = add_gaze_columns(df, load_profiles(), "geometric")[0]
    second = _crop(df, root, out)
    assert (second["crops_written"], second["crops_rebuilt"], second["crops_already_present"]) == (3, 3, 9)
    after = _hashes(out)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {f"train/eyes/{stem}.json", f"train/r_eye/{stem}.json", f"train/l_eye/{stem}.json"}
    label = json.loads((out / f"train/eyes/{stem}.json").read_text())
    index = pd.read_parquet(out / "index.parquet").set_index("crop_id")
    assert label["gaze"]["pitch_deg"] == pytest.approx(index.loc[f"{stem}_eyes", "gaze_pitch_deg"])


def test_other_crop_options_rebuild_every_crop_they_change(nia_tree, tmp_path: Path) -> None:
    df, root = read_manifest(_manifest(nia_tree, tmp_path))
    out = tmp_path / "c"
    _crop(df, root, out)
    wider = _crop(df, root, out, margin=0.4)
    assert (wider["crops_written"], wider["crops_already_present"]) == (12, 0)
    label = json.loads(next((out / "train" / "eyes").glob("*.json")).read_text())
    fresh = tmp_path / "fresh"
    _crop(df, root, fresh, margin=0.4)
    assert _hashes(out) == _hashes(fresh)  # what the options give, not the old crops
    smaller = _crop(df, root, out, margin=0.4, eye_size=(80, 48))
    assert (smaller["crops_written"], smaller["crops_already_present"]) == (8, 4)  # the two-eye crops stay
    assert label["transform"]["box_px"] == json.loads((out / "train" / "eyes" / f"{label['sample_id']}.json")
                                                      .read_text())["transform"]["box_px"]


def test_a_changed_image_rebuilds_its_crops(nia_tree, tmp_path: Path) -> None:
    import os

    from tests.conftest import png_bytes

    df, root = read_manifest(_manifest(nia_tree, tmp_path))
    out = tmp_path / "c"
    _crop(df, root, out)
    frame = df[df["kind"] == "frame"].iloc[0]
    png = root / frame["png_path"]
    st = png.stat()
    png.write_bytes(png_bytes(1100, 400, value=200))  # same size in pixels, other content
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = _crop(df, root, out)
    assert (again["crops_written"], again["crops_already_present"]) == (3, 9)
    jpg = cv2.imread(str(out / "train" / "eyes" / f"{frame['sample_id']}.jpg"))
    assert abs(float(jpg.mean()) - 200) < 2


def test_an_unchanged_rerun_writes_nothing_and_keeps_every_byte(nia_tree, tmp_path: Path) -> None:
    df, root = read_manifest(_manifest(nia_tree, tmp_path))
    out = tmp_path / "c"
    first = _crop(df, root, out)
    before = _hashes(out)
    again = _crop(df, root, out)
    assert (first["crops_written"], again["crops_written"], again["crops_already_present"]) == (12, 0, 12)
    assert _hashes(out) == before
    index = pd.read_parquet(out / "index.parquet")
    assert index["input_sha256"].str.fullmatch("[0-9a-f]{32}").all() and index["input_sha256"].nunique() == 12


def test_a_killed_run_resumes_from_its_journal(nia_tree, tmp_path: Path) -> None:
    """Crops written before a kill (no index.parquet yet) are kept: their fingerprints are in the journal."""
    from common.targets.crop_job import CropJob, process_rows

    df, root = read_manifest(_manifest(nia_tree, tmp_path))
    out = tmp_path / "c"
    rows = df[df["kind"] == "frame"]
    first_two = rows.iloc[:2].astype(object).where(rows.iloc[:2].notna(), None).to_dict("records")
    process_rows(first_two, CropJob(root=str(root), out=str(out), split_column="split", options=CropOptions()))
    assert not (out / "index.parquet").exists()
    resumed = _crop(df, root, out)
    assert (resumed["crops_written"], resumed["crops_already_present"]) == (6, 6)
    assert not list(out.rglob("*.tsv"))  # the journal is folded into index.parquet at the end
    again = _crop(df, root, out)
    assert again["crops_written"] == 0
