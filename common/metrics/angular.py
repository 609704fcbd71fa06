"""Angular error between gaze directions given as (pitch, yaw) in degrees.

Convention (docs/architecture.md, OpenCV camera frame, x right, y down, z
forward): a unit gaze vector is

    g = (-cos(pitch) sin(yaw), -sin(pitch), -cos(pitch) cos(yaw))

so pitch = asin(-g_y), yaw = atan2(-g_x, -g_z), and (0, 0) looks straight
back into the camera.

Clamp: the L2CS-Net reference evaluation computes
``arccos(min(cos_sim, 0.9999999))``, i.e. it clamps the cosine from above
only. We apply the same upper clamp, so identical directions score
arccos(0.9999999) = 0.0256 deg rather than 0, and our mean matches the
reference within 1e-6 deg on the same (pitch, yaw) pairs. We also clamp at -1
from below: for exactly opposite unit vectors rounding can give -1.0000000002,
where the reference returns NaN and we return 180 deg.

Note on the reference: its ``gazeto3d`` reads element 0 as the angle inside
sin/cos of x and z (yaw-like) while its callers pass ``[pitch, yaw]``; we do
not reproduce that order swap. We follow the convention above, which is the
one used to derive the NIA gaze labels.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from common.gaze_angles import pitchyaw_deg_to_vector

#: Upper clamp of the cosine used by the L2CS-Net reference evaluation.
REFERENCE_COS_CLAMP = 0.9999999


def pitch_yaw_deg_to_vectors(pitch_yaw_deg: npt.ArrayLike) -> np.ndarray:
    """Turn an (N, 2) array of (pitch, yaw) in degrees into (N, 3) unit vectors (common.gaze_angles)."""
    angles = _as_pitch_yaw(pitch_yaw_deg, "pitch_yaw_deg")
    return pitchyaw_deg_to_vector(angles[:, 0], angles[:, 1])


def angular_errors_deg(pred_pitch_yaw_deg: npt.ArrayLike, true_pitch_yaw_deg: npt.ArrayLike) -> np.ndarray:
    """Per-sample angle in degrees between predicted and true gaze, shape (N,).

    Inputs are (N, 2) arrays of (pitch, yaw) in degrees (a single pair of
    shape (2,) is accepted). The cosine is clamped to [-1, 0.9999999] (see the
    module docstring), so the smallest possible error is 0.0256 deg.
    Raises ValueError on shape mismatch or non-finite angles.
    """
    pred = _as_pitch_yaw(pred_pitch_yaw_deg, "pred_pitch_yaw_deg")
    true = _as_pitch_yaw(true_pitch_yaw_deg, "true_pitch_yaw_deg")
    if pred.shape != true.shape:
        raise ValueError(f"pred has shape {pred.shape} but true has {true.shape}; expected equal (N, 2)")
    cos = np.sum(pitch_yaw_deg_to_vectors(pred) * pitch_yaw_deg_to_vectors(true), axis=1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, REFERENCE_COS_CLAMP)))


def mean_angular_error_deg(pred_pitch_yaw_deg: npt.ArrayLike, true_pitch_yaw_deg: npt.ArrayLike) -> float:
    """Mean angular error in degrees over N samples (the L2CS-Net headline metric).

    Raises ValueError for N = 0: a mean over nothing is not a result.
    """
    errors = angular_errors_deg(pred_pitch_yaw_deg, true_pitch_yaw_deg)
    if errors.size == 0:
        raise ValueError("mean angular error of 0 samples is undefined; expected at least one sample")
    return float(errors.mean())


def _as_pitch_yaw(values: npt.ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1 and array.shape == (2,):
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} has shape {array.shape}; expected (N, 2) of (pitch, yaw) degrees")
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ValueError(f"{name} row {bad} is {array[bad].tolist()}; expected finite degrees")
    return array
