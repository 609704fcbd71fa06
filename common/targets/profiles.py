"""Device profiles: where the screen is relative to the camera, and the camera's intrinsics.

The NIA page publishes only the 1920x1080 eye-tracker point space and each
device's camera focal length and field of view; screen sizes and camera
placement are assumptions kept in a data file (``common/data/device_profiles.json``)
that a user can replace with ``--profile``. Every derived gaze label records
the SHA-256 of the profile file it came from.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.delivery.filenames import DEVICES as DEVICE_CODES
from common.targets.geometry import intrinsics_from_hfov, rotation_matrix_deg

PROFILE_FILE_NAME = "device_profiles.json"  # the bundled file, and a dataset root's own profile
DEFAULT_PROFILE_PATH = Path(__file__).resolve().parents[1] / "data" / PROFILE_FILE_NAME
DIRECTION_CODES = ("T", "L", "R")


class ProfileError(ValueError):
    """A profile file is missing a field or holds an impossible value."""


@dataclass(frozen=True)
class DeviceProfile:
    """One display and its camera, in the screen frame described in the profile file."""

    code: str
    name: str
    screen_mm: tuple[float, float]
    focal_mm: float
    hfov_deg: float
    bezel_mm: float
    point_space_px: tuple[int, int]
    image_size_px: tuple[int, int]
    image_mirrored: bool
    camera_rotation_deg: tuple[float, float, float]

    @property
    def camera_matrix(self) -> np.ndarray:
        return intrinsics_from_hfov(self.hfov_deg, *self.image_size_px)

    def camera_position_mm(self, direction: str) -> np.ndarray:
        """Camera centre in the screen frame for a file-name direction code (T, L or R)."""
        width, height = self.screen_mm
        if direction == "T":
            return np.array([width / 2.0, -self.bezel_mm, 0.0])
        if direction == "L":
            return np.array([-self.bezel_mm, height / 2.0, 0.0])
        if direction == "R":
            return np.array([width + self.bezel_mm, height / 2.0, 0.0])
        raise ProfileError(f"direction must be one of {DIRECTION_CODES}, got {direction!r}")

    def screen_to_camera_rotation(self) -> np.ndarray:
        """Rotation taking screen-frame directions to camera-frame directions.

        The camera looks at the observer (screen +z becomes camera +z). The
        screen's y (down) stays the image's y. The screen's x (observer's right)
        is the image's +x when frames are mirrored like a selfie preview and -x
        otherwise (a camera facing the observer sees their right on its left).
        """
        flip_x = np.diag([1.0 if self.image_mirrored else -1.0, 1.0, 1.0])
        return rotation_matrix_deg(*self.camera_rotation_deg) @ flip_x

    def screen_points_mm(self, points_px: np.ndarray) -> np.ndarray:
        """3D screen-frame positions (mm, z = 0) of eye-tracker points (..., 2)."""
        points_px = np.asarray(points_px, dtype=np.float64)
        width, height = self.screen_mm
        scale = np.array([width / self.point_space_px[0], height / self.point_space_px[1]])
        return np.concatenate([points_px * scale, np.zeros(points_px.shape[:-1] + (1,))], axis=-1)

    def screen_points_to_camera(self, points_px: np.ndarray, direction: str) -> np.ndarray:
        """3D camera-frame positions (mm) of eye-tracker points (..., 2) on the screen."""
        relative = self.screen_points_mm(points_px) - self.camera_position_mm(direction)
        return relative @ self.screen_to_camera_rotation().T

    def screen_vectors_to_camera(self, vectors: np.ndarray) -> np.ndarray:
        """Directions given in the screen frame, expressed in the camera frame."""
        return np.asarray(vectors, dtype=np.float64) @ self.screen_to_camera_rotation().T


@dataclass(frozen=True)
class ProfileSet:
    """All device profiles of one file, with the file's hash for provenance."""

    devices: dict[str, DeviceProfile]
    path: Path
    sha256: str

    def __getitem__(self, code: str) -> DeviceProfile:
        try:
            return self.devices[code]
        except KeyError:
            raise ProfileError(f"{self.path}: no profile for display {code!r} (have {sorted(self.devices)})") from None


def _require(mapping: dict, key: str, where: str):
    if key not in mapping:
        raise ProfileError(f"{where}: missing field {key!r}")
    return mapping[key]


def _positive(value, where: str) -> float:
    number = float(value)
    if not np.isfinite(number) or number <= 0:
        raise ProfileError(f"{where}: must be a positive number, got {value!r}")
    return number


def load_profiles(path: str | Path | None = None) -> ProfileSet:
    """Read and validate a profile file (the bundled defaults when ``path`` is None)."""
    path = Path(path) if path is not None else DEFAULT_PROFILE_PATH
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{path}: not valid JSON ({exc})") from exc
    point_space = tuple(int(v) for v in _require(data, "point_space_px", str(path)))
    image_size = tuple(int(v) for v in _require(data, "image_size_px", str(path)))
    mirrored = bool(_require(data, "image_mirrored", str(path)))
    rotation = tuple(float(v) for v in data.get("camera_rotation_deg", (0.0, 0.0, 0.0)))
    devices: dict[str, DeviceProfile] = {}
    for code, entry in _require(data, "devices", str(path)).items():
        where = f"{path}: devices.{code}"
        if code not in DEVICE_CODES:
            raise ProfileError(f"{where}: display code must be one of {DEVICE_CODES}")
        screen = _require(entry, "screen_mm", where)
        devices[code] = DeviceProfile(
            code=code,
            name=str(entry.get("name", code)),
            screen_mm=(_positive(screen[0], f"{where}.screen_mm[0]"), _positive(screen[1], f"{where}.screen_mm[1]")),
            focal_mm=_positive(_require(entry, "focal_mm", where), f"{where}.focal_mm"),
            hfov_deg=_positive(_require(entry, "hfov_deg", where), f"{where}.hfov_deg"),
            bezel_mm=float(entry.get("bezel_mm", 0.0)),
            point_space_px=point_space,  # type: ignore[arg-type]
            image_size_px=image_size,  # type: ignore[arg-type]
            image_mirrored=mirrored,
            camera_rotation_deg=rotation,  # type: ignore[arg-type]
        )
    return ProfileSet(devices=devices, path=path, sha256=hashlib.sha256(raw).hexdigest())
