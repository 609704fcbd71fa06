"""The suite's gaze angle convention: (pitch, yaw) <-> unit gaze vector.

Frame: the camera frame of the image *as delivered* (OpenCV): x to the image
right, y to the image bottom, z forward from the camera into the scene.
Angles (MPIIGaze convention) of a unit gaze vector g pointing from the eye to
the target::

    pitch = asin(-g_y)          positive = looking up
    yaw   = atan2(-g_x, -g_z)   positive = looking towards the image left

Looking straight back into the camera, g = (0, 0, -1), gives (0, 0).
Functions taking or returning angles say their unit in their names; arrays
are vectorised over a leading axis. Below both the metrics
(:mod:`common.metrics.angular`) and the targets (:mod:`common.targets.gaze`),
which import it; it imports neither.
"""
from __future__ import annotations

import numpy as np

ArrayLike = np.ndarray | float


def pitchyaw_to_vector(pitch_rad: ArrayLike, yaw_rad: ArrayLike) -> np.ndarray:
    """Unit gaze vectors, shape (..., 3), from pitch and yaw in radians."""
    pitch = np.asarray(pitch_rad, dtype=np.float64)
    yaw = np.asarray(yaw_rad, dtype=np.float64)
    cos_pitch = np.cos(pitch)
    return np.stack([-cos_pitch * np.sin(yaw), -np.sin(pitch), -cos_pitch * np.cos(yaw)], axis=-1)


def vector_to_pitchyaw(vectors: np.ndarray) -> np.ndarray:
    """(pitch, yaw) in radians, shape (..., 2), of vectors of any non-zero length.

    Zero vectors give NaN angles rather than an arbitrary direction.
    """
    v = np.asarray(vectors, dtype=np.float64)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norm > 0, v / norm, np.nan)
    pitch = np.arcsin(np.clip(-unit[..., 1], -1.0, 1.0))
    yaw = np.arctan2(-unit[..., 0], -unit[..., 2])
    return np.stack([pitch, yaw], axis=-1)


def pitchyaw_deg_to_vector(pitch_deg: ArrayLike, yaw_deg: ArrayLike) -> np.ndarray:
    """Unit gaze vectors from pitch and yaw in degrees."""
    return pitchyaw_to_vector(np.radians(pitch_deg), np.radians(yaw_deg))


def vector_to_pitchyaw_deg(vectors: np.ndarray) -> np.ndarray:
    """(pitch, yaw) in degrees of vectors of any non-zero length."""
    return np.degrees(vector_to_pitchyaw(vectors))
