"""Camera geometry: one camera frame for the whole suite; rotations, intrinsics, projection.

Frame: the camera frame of the image *as delivered* (OpenCV): x to the image
right, y to the image bottom, z forward from the camera into the scene, in mm.
The gaze angle convention in this frame is :mod:`common.gaze_angles`. Arrays
are vectorised over a leading axis.
"""
from __future__ import annotations

import numpy as np

ArrayLike = np.ndarray | float


def rotation_matrix_deg(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation R = Rz @ Ry @ Rx from angles in degrees about the frame's x, y, z axes.

    Applied to column vectors (``R @ v``): first about x (tilt up/down), then y
    (turn left/right), then z (roll), all about the fixed axes.
    """
    ax, ay, az = np.radians([rx, ry, rz])
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def intrinsics_from_hfov(hfov_deg: float, width_px: int, height_px: int) -> np.ndarray:
    """Pinhole camera matrix K with square pixels and the principal point at the image centre."""
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
    focal_px = (width_px / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return np.array([[focal_px, 0.0, width_px / 2.0], [0.0, focal_px, height_px / 2.0], [0.0, 0.0, 1.0]])


def backproject(u: ArrayLike, v: ArrayLike, distance_mm: ArrayLike, camera_matrix: np.ndarray) -> np.ndarray:
    """3D points (mm, camera frame) at Euclidean ``distance_mm`` from the camera along pixel rays.

    The distance is measured along the ray (camera centre to point), not along
    the optical axis: that is how an iris-size distance estimate behaves.
    """
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    fx, fy = camera_matrix[0, 0], camera_matrix[1, 1]
    cx, cy = camera_matrix[0, 2], camera_matrix[1, 2]
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    return rays * np.asarray(distance_mm, dtype=np.float64)[..., None]


def project(points_mm: np.ndarray, camera_matrix: np.ndarray) -> np.ndarray:
    """Pixel coordinates (..., 2) of 3D camera-frame points (z > 0)."""
    p = np.asarray(points_mm, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = p[..., 0] / p[..., 2]
        y = p[..., 1] / p[..., 2]
    return np.stack([camera_matrix[0, 0] * x + camera_matrix[0, 2], camera_matrix[1, 1] * y + camera_matrix[1, 2]], axis=-1)


def angular_difference_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between two sets of vectors (any length), shape (...)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
