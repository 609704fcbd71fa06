"""Angle convention, rotations, intrinsics and projection, with hand-computed answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from common.gaze_angles import pitchyaw_deg_to_vector, vector_to_pitchyaw_deg
from common.targets.geometry import (angular_difference_deg, backproject, intrinsics_from_hfov, project,
                                     rotation_matrix_deg)
from common.targets.profiles import load_profiles


def test_looking_back_into_the_camera_is_zero_zero() -> None:
    np.testing.assert_allclose(pitchyaw_deg_to_vector(0.0, 0.0), [0, 0, -1], atol=1e-15)
    np.testing.assert_allclose(vector_to_pitchyaw_deg(np.array([0.0, 0.0, -5.0])), [0, 0])


def test_known_angles() -> None:
    # looking up 30 deg: y component -sin(30) = -0.5 (y points down)
    np.testing.assert_allclose(pitchyaw_deg_to_vector(30.0, 0.0), [0, -0.5, -math.sqrt(3) / 2], atol=1e-12)
    # looking towards the image left (-x) by 45 deg gives positive yaw
    np.testing.assert_allclose(vector_to_pitchyaw_deg(np.array([-1.0, 0.0, -1.0])), [0, 45])
    np.testing.assert_allclose(vector_to_pitchyaw_deg(np.array([1.0, 0.0, -1.0])), [0, -45])


def test_round_trip_angles_vector_angles() -> None:
    pitch, yaw = np.meshgrid(np.linspace(-80, 80, 17), np.linspace(-170, 170, 35))
    back = vector_to_pitchyaw_deg(pitchyaw_deg_to_vector(pitch, yaw))
    np.testing.assert_allclose(back[..., 0], pitch, atol=1e-9)
    np.testing.assert_allclose(back[..., 1], yaw, atol=1e-9)


def test_zero_vector_gives_nan_not_a_direction() -> None:
    assert np.isnan(vector_to_pitchyaw_deg(np.zeros(3))).all()


def test_rotation_about_y_by_90_takes_x_to_minus_z() -> None:
    np.testing.assert_allclose(rotation_matrix_deg(0, 90, 0) @ [1, 0, 0], [0, 0, -1], atol=1e-15)
    np.testing.assert_allclose(rotation_matrix_deg(90, 0, 0) @ [0, 1, 0], [0, 0, 1], atol=1e-15)


def test_intrinsics_from_hfov_90_put_focal_at_half_width() -> None:
    k = intrinsics_from_hfov(90.0, 1920, 1080)
    np.testing.assert_allclose(k, [[960, 0, 960], [0, 960, 540], [0, 0, 1]])
    with pytest.raises(ValueError, match="field of view"):
        intrinsics_from_hfov(180.0, 10, 10)


def test_backproject_is_euclidean_distance_and_project_inverts_it() -> None:
    k = intrinsics_from_hfov(90.0, 1920, 1080)
    p = backproject(np.array([960.0, 1920.0]), np.array([540.0, 540.0]), np.array([500.0, 500.0]), k)
    np.testing.assert_allclose(p[0], [0, 0, 500])
    # the pixel at the right edge is 45 deg off-axis
    np.testing.assert_allclose(p[1], [500 / math.sqrt(2), 0, 500 / math.sqrt(2)])
    np.testing.assert_allclose(project(p, k), [[960, 540], [1920, 540]])


def test_angular_difference() -> None:
    assert angular_difference_deg(np.array([1.0, 0, 0]), np.array([0, 2.0, 0])) == pytest.approx(90)


def test_bundled_profile_puts_the_top_edge_centre_just_below_the_top_camera() -> None:
    profiles = load_profiles()
    phone = profiles["S"]
    # mirrored frames: screen x is camera x; screen y is camera y; bezel 6 mm
    np.testing.assert_allclose(phone.screen_points_to_camera(np.array([960.0, 0.0]), "T"), [0, 6, 0])
    np.testing.assert_allclose(phone.screen_points_to_camera(np.array([0.0, 540.0]), "L"), [6, 0, 0])
    assert len(profiles.sha256) == 64
