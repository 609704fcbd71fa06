"""Synthetic labels carry the gaze they were drawn with, and the pixels match the labels."""
import cv2
import numpy as np
import pandas as pd
import pytest

from common.targets.gaze import derive_gaze
from common.gaze_angles import pitchyaw_deg_to_vector
from common.targets.geometry import angular_difference_deg, backproject
from common.targets.masks import EYE_REGION, IRIS, class_map
from common.targets.profiles import load_profiles
from common.synth import render_clip, write_sized_profile
from common.synth.labels import mask_shapes, shapes_by_label as _shapes
from common.synth.face import IRIS_RADIUS_MM, Camera, HeadPose, frame_geometry
from common.synth.scene import make_subject, make_videos


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    return load_profiles(write_sized_profile(tmp_path_factory.mktemp("profile"), (640, 360)))


def _label_rows(profiles, devices=("S", "T", "L", "V", "M"), directions=("T", "L", "R"), n_frames=4):
    """One short clip per (device, direction): manifest-like rows plus the truth."""
    rows = []
    for k, (device, direction) in enumerate((d, r) for d in devices for r in directions):
        subject = make_subject(k, 11)
        video = make_videos(subject, 11, 1, n_frames, devices=(device,), directions=(direction,))[0]
        for frame in render_clip(video, profiles, images=False):
            ann, shapes = frame.label["Annotations"], _shapes(frame.label)
            rows.append({
                "valid": True, "device": device, "direction": direction,
                "r_center_x": shapes["r_center"]["points"][0][0], "r_center_y": shapes["r_center"]["points"][0][1],
                "l_center_x": shapes["l_center"]["points"][0][0], "l_center_y": shapes["l_center"]["points"][0][1],
                "distance_cam": ann["distance"]["cam"], "distance_display": ann["distance"]["display"],
                "point_x": ann["pose"]["point"][0], "point_y": ann["pose"]["point"][1], **frame.truth,
            })
    return pd.DataFrame(rows)


def test_gaze_derived_from_labels_matches_the_rendered_gaze_within_one_degree(profiles):
    df = _label_rows(profiles)
    result = derive_gaze(df, profiles, "geometric")
    assert result.n_derived == len(df) == 60
    derived = pitchyaw_deg_to_vector(result.columns["gaze_pitch_deg"], result.columns["gaze_yaw_deg"])
    truth = pitchyaw_deg_to_vector(df["true_pitch_deg"], df["true_yaw_deg"])
    errors = angular_difference_deg(derived, truth)
    assert errors.max() < 1.0
    assert errors.mean() < 0.2


def test_the_formula_by_hand_gives_the_drawn_eye_and_target(profiles):
    row = _label_rows(profiles, devices=("M",), directions=("L",), n_frames=1).iloc[0]
    profile = profiles["M"]
    mid = ((row.r_center_x + row.l_center_x) / 2, (row.r_center_y + row.l_center_y) / 2)
    eye = backproject(mid[0], mid[1], row.distance_cam * 10.0, profile.camera_matrix)
    target = profile.screen_points_to_camera(np.array([[row.point_x, row.point_y]]), "L")[0]
    drawn_eye = np.array([row.eye_x_mm, row.eye_y_mm, row.eye_z_mm])
    drawn_target = np.array([row.target_x_mm, row.target_y_mm, row.target_z_mm])
    np.testing.assert_allclose(target, drawn_target, atol=0.05)
    # the labelled eye sits between the iris centres, about 12 mm in front of the eyeball midpoint
    assert 6.0 < np.linalg.norm(eye - drawn_eye) < 14.0
    truth = pitchyaw_deg_to_vector(row.true_pitch_deg, row.true_yaw_deg)
    assert angular_difference_deg(target - eye, truth) < 1.0


def test_iris_radius_in_pixels_follows_the_distance(profiles):
    focal = profiles["L"].camera_matrix[0, 0]
    for frame in render_clip(make_videos(make_subject(0, 2), 2, 1, 3, devices=("L",))[0], profiles, images=False):
        iris = _shapes(frame.label)["r_iris"]
        distance_mm = frame.label["Annotations"]["distance"]["cam"] * 10.0
        # the larger axis is (nearly) unforeshortened: f * 5.9 mm / distance
        assert max(iris["rx"], iris["ry"]) == pytest.approx(focal * IRIS_RADIUS_MM / distance_mm, rel=0.06)


def test_right_eye_is_at_larger_x_in_the_mirrored_image(profiles):
    subject = make_subject(3, 4)
    video = make_videos(subject, 4, 1, 5, devices=("T",), postures=("D",))[0]
    for frame in render_clip(video, profiles, images=False):
        shapes = _shapes(frame.label)
        assert shapes["r_center"]["points"][0][0] > shapes["l_center"]["points"][0][0]


def test_visible_iris_pixels_are_darker_than_the_sclera(profiles):
    """Labels are exact by construction: class 2 (ellipse ∩ lid) covers iris pixels, class 1 sclera."""
    video = make_videos(make_subject(5, 9), 9, 1, 6, devices=("S",), postures=("D",))[0]
    frames = list(render_clip(video, profiles))
    ann = [_shapes(f.label) for f in frames]
    opening = [cv2.contourArea(np.float32(a["r_eyelid"]["points"])) for a in ann]
    frame = frames[int(np.argmax(opening))]
    grey = frame.image if frame.image.ndim == 2 else cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
    classes = class_map(mask_shapes(frame.label), grey.shape[1], grey.shape[0])
    assert (classes == IRIS).sum() >= 20 and (classes == EYE_REGION).sum() >= 10
    assert grey[classes == IRIS].mean() < grey[classes == EYE_REGION].mean() - 40


def test_a_closed_eye_keeps_its_iris_and_collapses_its_lid(profiles):
    camera = Camera(profiles["L"], "T")
    subject = make_subject(0, 0)
    base = HeadPose(np.array([172.0, 60.0, 550.0]), 0.0, 0.0, 0.0)
    g = frame_geometry(camera, subject, base, np.array([960.0, 540.0]), True, 0.0, np.zeros(3), np.zeros(3))
    lid = g.right.eyelid_px
    assert lid.shape == (16, 2)
    assert cv2.contourArea(np.float32(lid)) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(lid[9:], lid[1:8][::-1], atol=1e-9)  # upper lid on the lower lid
    assert g.right.iris[2] > 1.0 and g.right.iris[3] > 1.0
