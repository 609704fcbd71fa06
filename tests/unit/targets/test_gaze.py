"""Gaze derivations: analytic cases, mirror symmetry, fallbacks and counted reasons."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.targets.gaze import GAZE_COLUMNS, add_gaze_columns, derive_gaze, resolve_profile_path
from common.targets.geometry import project
from common.targets.profiles import load_profiles


@pytest.fixture
def round_profile(tmp_path: Path):
    """One display with 0.1 mm per point (192 x 108 mm), camera 10 mm above the top edge, hfov 90."""
    data = {
        "point_space_px": [1920, 1080], "image_size_px": [1920, 1080], "image_mirrored": True,
        "devices": {"M": {"screen_mm": [192.0, 108.0], "focal_mm": 3.7, "hfov_deg": 90.0, "bezel_mm": 10.0}},
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    return load_profiles(path)


def _row(eye_px=(960.0, 540.0), point=(960.0, 540.0), distance_cam=50.0, distance_display=50.0, **extra) -> dict:
    row = {
        "valid": True, "device": "M", "direction": "T",
        "r_center_x": eye_px[0] + 30, "r_center_y": eye_px[1], "l_center_x": eye_px[0] - 30, "l_center_y": eye_px[1],
        "r_iris_cx": np.nan, "r_iris_cy": np.nan, "l_iris_cx": np.nan, "l_iris_cy": np.nan,
        "point_x": point[0], "point_y": point[1], "distance_cam": distance_cam, "distance_display": distance_display,
    }
    row.update(extra)
    return row


def _eye_at(profiles, camera_point_mm) -> tuple[tuple[float, float], float]:
    """Pixel and distance (cm) that put the eye at a given camera-frame point."""
    u, v = project(np.asarray(camera_point_mm, float), profiles["M"].camera_matrix)
    return (float(u), float(v)), float(np.linalg.norm(camera_point_mm)) / 10.0


def test_eye_straight_in_front_of_the_target_gives_zero_zero(round_profile) -> None:
    target = round_profile["M"].screen_points_to_camera(np.array([1500.0, 700.0]), "T")
    pixel, distance = _eye_at(round_profile, target + [0, 0, 400.0])
    result = derive_gaze(pd.DataFrame([_row(pixel, (1500, 700), distance)]), round_profile)
    np.testing.assert_allclose(result.columns[["gaze_pitch_deg", "gaze_yaw_deg"]].to_numpy()[0], [0, 0], atol=1e-9)
    np.testing.assert_allclose(result.columns[["eye_x_mm", "eye_y_mm", "eye_z_mm"]].to_numpy()[0], target + [0, 0, 400])
    normal = derive_gaze(pd.DataFrame([_row(point=(960, 540))]), round_profile, "normal")
    np.testing.assert_allclose(normal.columns[["gaze_pitch_deg", "gaze_yaw_deg"]].to_numpy()[0], [0, 0], atol=1e-9)


def test_normal_method_known_offsets_give_known_angles(round_profile) -> None:
    # screen centre is (96, 54) mm; the eye 9.6 cm in front of it
    rows = [_row(point=(1920, 540), distance_display=9.6),   # 96 mm to the right (image +x): yaw -45
            _row(point=(960, 0), distance_display=5.4),      # 54 mm up: pitch +45
            _row(point=(960 + 960 * math.tan(math.radians(20)) * 2, 540), distance_display=19.2)]
    angles = derive_gaze(pd.DataFrame(rows), round_profile, "normal").columns
    np.testing.assert_allclose(angles[["gaze_pitch_deg", "gaze_yaw_deg"]].to_numpy(),
                               [[0, -45], [45, 0], [0, -20]], atol=1e-9)
    assert (angles["gaze_method"] == "normal").all()
    assert (angles["gaze_profile_sha256"] == round_profile.sha256).all()


def test_geometric_known_offset(round_profile) -> None:
    # eye 300 mm straight out from the camera; target: screen centre = (0, 64, 0) mm in camera frame
    pixel, distance = _eye_at(round_profile, [0, 0, 300.0])
    out = derive_gaze(pd.DataFrame([_row(pixel, (960, 540), distance)]), round_profile).columns.iloc[0]
    assert out["gaze_pitch_deg"] == pytest.approx(-math.degrees(math.atan2(64, 300)))
    assert out["gaze_yaw_deg"] == pytest.approx(0, abs=1e-9)
    np.testing.assert_allclose(out[["target_x_mm", "target_y_mm", "target_z_mm"]].astype(float), [0, 64, 0])


def test_mirror_symmetry(round_profile) -> None:
    left = _row((700.0, 400.0), (300.0, 800.0), 45.0)
    right = _row((1920 - 700.0, 400.0), (1920 - 300.0, 800.0), 45.0)
    angles = derive_gaze(pd.DataFrame([left, right]), round_profile).columns
    assert angles.loc[0, "gaze_pitch_deg"] == pytest.approx(angles.loc[1, "gaze_pitch_deg"])
    assert angles.loc[0, "gaze_yaw_deg"] == pytest.approx(-angles.loc[1, "gaze_yaw_deg"])
    assert abs(angles.loc[0, "gaze_yaw_deg"]) > 1


def test_iris_centres_stand_in_for_missing_centre_points(round_profile) -> None:
    with_points = _row((800.0, 500.0), (100.0, 100.0))
    with_iris = dict(with_points, r_iris_cx=with_points["r_center_x"], r_iris_cy=500.0,
                     l_iris_cx=with_points["l_center_x"], l_iris_cy=500.0,
                     r_center_x=np.nan, r_center_y=np.nan, l_center_x=None, l_center_y=None)
    out = derive_gaze(pd.DataFrame([with_points, with_iris]), round_profile).columns
    np.testing.assert_allclose(out.iloc[0][GAZE_COLUMNS[:11]].astype(float), out.iloc[1][GAZE_COLUMNS[:11]].astype(float))


def test_rows_that_cannot_be_derived_get_nan_and_a_counted_reason(round_profile) -> None:
    rows = [
        _row(),
        _row(r_center_x=np.nan),                    # r centre missing and no iris
        _row(distance_cam=np.nan),
        _row(point=(np.nan, np.nan)),
        _row(device="S"),                           # not in this profile file
        _row(direction="X"),
        _row(valid=False),
    ]
    result = derive_gaze(pd.DataFrame(rows), round_profile)
    assert result.n_derived == 1
    assert result.columns["gaze_pitch_deg"].isna().tolist() == [False] + [True] * 6
    assert result.skipped == {
        "missing eye centre (r/l_center and iris)": 1, "missing or non-positive distance.cam": 1,
        "missing pose.point": 1, "no profile for display 'S'": 1,
        "unknown direction 'X' (expected T, L or R)": 1, "invalid label (see the error column)": 1,
    }
    normal = derive_gaze(pd.DataFrame([_row(distance_display=0.0)]), round_profile, "normal")
    assert normal.skipped == {"missing or non-positive distance.display": 1}


def test_unknown_method_is_refused(round_profile) -> None:
    with pytest.raises(ValueError, match="geometric"):
        derive_gaze(pd.DataFrame([_row()]), round_profile, "magic")


def test_add_gaze_columns_replaces_old_ones_and_keeps_the_index(round_profile) -> None:
    df = pd.DataFrame([_row(), _row()], index=[5, 9])
    df["gaze_pitch_deg"] = 99.0
    merged, _ = add_gaze_columns(df, round_profile)
    assert list(merged.index) == [5, 9]
    assert list(merged.columns).count("gaze_pitch_deg") == 1
    assert (merged["gaze_pitch_deg"] != 99.0).all()


def test_profile_resolution_order(tmp_path: Path) -> None:
    assert resolve_profile_path(None, tmp_path)[0] is None
    (tmp_path / "device_profiles.json").write_text("{}")
    assert resolve_profile_path(None, tmp_path)[0] == tmp_path / "device_profiles.json"
    assert resolve_profile_path("x.json", tmp_path)[0] == Path("x.json")


def test_nia_gaze_adds_columns_to_a_manifest(nia_tree, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from common.cli import main
    from common.delivery.manifest import build_index, read_manifest

    tree = nia_tree(n_subjects=1, videos_per_subject=2, frames_per_video=2, image_size=(1100, 400))  # holds the labels
    manifest = tmp_path / "manifest.parquet"
    build_index(tree.root, manifest, workers=1)
    out = tmp_path / "with_gaze.parquet"
    result = CliRunner().invoke(main, ["gaze", str(manifest), "--method", "normal", "--out", str(out)])
    assert result.exit_code == 0, result.output
    df, _ = read_manifest(out)
    frames = df[df["kind"] == "frame"]
    assert frames["gaze_pitch_deg"].notna().all() and (frames["gaze_method"] == "normal").all()
    assert df.loc[df["kind"] == "video", "gaze_pitch_deg"].isna().all()
    assert f"derived for {len(frames)} of {len(df)} rows" in result.output
    assert "not a labelled frame (kind=video): 2" in result.output
    assert (frames["gaze_profile_sha256"] == load_profiles().sha256).all()
