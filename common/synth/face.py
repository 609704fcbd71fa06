"""3D head and eyes in front of a device, projected into the delivered image.

Everything is placed in the device's screen frame (``common.targets.profiles``: x to
the observer's right, y down, z from the screen towards the observer, mm) and
moved into the camera frame with the same profile the gaze derivation uses,
so a label derived by ``common.targets.gaze`` (``geometric``) reproduces the gaze the
frame was drawn with. Head frame: x to the subject's right, y down, z forward
(out of the face, towards the screen); the eyeball centres sit at
(+-ipd/2, 0, 0). Each eye turns to the target: iris centre = eyeball centre +
12 mm * gaze; the iris is a 5.9 mm disc facing along the gaze, drawn as its
local affine projection, so the labelled ellipse is exactly what was drawn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.gaze_angles import vector_to_pitchyaw_deg
from common.targets.geometry import backproject, project, rotation_matrix_deg
from common.targets.profiles import DeviceProfile
from common.synth.scene import DISTANCE_CM, Subject

EYEBALL_RADIUS_MM = 12.0
IRIS_RADIUS_MM = 5.9
LID_UP_MM, LID_LOW_MM = 4.6, 4.4     # open aperture above / below the eyeball centre: the iris reaches under both lids
HEAD_FOLLOW = 0.35                   # share of an off-screen glance taken by the head
N_LID = 8                            # polygon = 2 corners + 7 lower + 7 upper points = 16 vertices
# posture: (distance factor, pitch offset deg (+ = face down), roll range deg, jitter mm)
POSTURE_FRAMING = {
    "S": (1.0, 0.0, 4.0, 0.5), "D": (1.0, 0.0, 3.0, 0.3), "P": (0.9, -10.0, 8.0, 0.5),
    "L": (0.9, 0.0, 40.0, 0.5), "F": (0.85, 12.0, 6.0, 0.5), "C": (1.0, 3.0, 12.0, 0.5),
    "H": (0.95, 0.0, 5.0, 2.0), "E": (1.1, 5.0, 5.0, 1.0), "T": (1.15, 15.0, 5.0, 0.5),
    "U": (0.9, 8.0, 5.0, 0.5),
}


@dataclass(frozen=True)
class HeadPose:
    """Head position (eyeball midpoint) and rotation angles in the screen frame."""

    position_mm: np.ndarray
    pitch_deg: float
    yaw_deg: float
    roll_deg: float

    @property
    def rotation(self) -> np.ndarray:
        return rotation_matrix_deg(self.pitch_deg, self.yaw_deg, self.roll_deg)

    def points(self, head_xyz: np.ndarray) -> np.ndarray:
        """Screen-frame positions of head-frame points (..., 3) (head z forward = screen -z)."""
        p = np.asarray(head_xyz, dtype=np.float64) * np.array([1.0, 1.0, -1.0])
        return self.position_mm + p @ self.rotation.T


def facing_angles_deg(direction: np.ndarray) -> tuple[float, float]:
    """(pitch, yaw) of a head whose forward axis points along a screen-frame ``direction``.

    The gaze angles of ``direction`` (``common.gaze_angles``) with pitch negated:
    head pitch is positive face down.
    """
    pitch, yaw = vector_to_pitchyaw_deg(direction)
    return -float(pitch), float(yaw)


class Camera:
    """A device profile seen from one direction: screen frame -> camera frame -> pixels."""

    def __init__(self, profile: DeviceProfile, direction: str) -> None:
        self.profile = profile
        self.direction = direction
        self.rotation = profile.screen_to_camera_rotation()
        self.origin = profile.camera_position_mm(direction)
        self.matrix = profile.camera_matrix
        self.size = profile.image_size_px

    def to_camera(self, points_mm: np.ndarray) -> np.ndarray:
        return (np.asarray(points_mm, dtype=np.float64) - self.origin) @ self.rotation.T

    def pixels(self, screen_mm: np.ndarray) -> np.ndarray:
        return project(self.to_camera(screen_mm), self.matrix)


@dataclass(frozen=True)
class EyeGeometry:
    """One eye in one frame: 3D (camera frame, mm) and its labelled 2D shapes (pixels)."""

    eyeball_mm: np.ndarray
    iris_mm: np.ndarray
    gaze: np.ndarray
    center_px: np.ndarray
    iris_affine: np.ndarray            # pixel = center_px + iris_affine @ (unit-circle point)
    iris: tuple[float, float, float, float, float]  # cx, cy, rx, ry, rotate (deg, rx axis from +x towards +y)
    eyelid_px: np.ndarray              # (16, 2): inner corner, lower lid, outer corner, upper lid


@dataclass(frozen=True)
class FrameGeometry:
    """Everything a frame's pixels and labels are made from."""

    right: EyeGeometry
    left: EyeGeometry
    target_mm: np.ndarray              # camera frame
    eyes_mid_mm: np.ndarray            # midpoint of the eyeball centres, camera frame
    true_gaze: np.ndarray              # unit(target - eyes_mid)
    distance_cam_cm: float             # Euclidean distance along the ray of the labelled centres' midpoint
    distance_display_cm: float         # eyeball midpoint to the screen plane
    head_rel_deg: tuple[float, float, float]  # roll, pitch, yaw relative to the clip's base pose
    px_per_mm: float
    outlines: dict[str, np.ndarray]    # face, hair, brows, nose, mouth, lenses: (k, 2) pixel polylines


def place_head(rng: np.random.Generator, camera: Camera, device: str, posture: str) -> HeadPose:
    """A base head pose for a clip: in front of the screen, facing its centre, eyes in the image."""
    width_mm, height_mm = camera.profile.screen_mm
    low, high = DISTANCE_CM[device]
    factor, pitch_offset, roll_range, _ = POSTURE_FRAMING[posture]
    centre = np.array([width_mm / 2.0, height_mm / 2.0, 0.0])
    for attempt in range(40):
        spread = 1.0 - attempt / 40.0
        y_range = (0.0, 0.45) if device in ("L", "V", "M") else (0.2, 0.8)
        position = np.array([
            width_mm * (0.5 + spread * rng.normal(0.0, 0.12)),
            height_mm * rng.uniform(*y_range) * spread + (1 - spread) * camera.origin[1],
            rng.uniform(low, high) * 10.0 * factor,
        ])
        pitch, yaw = facing_angles_deg(centre - position)
        roll = rng.uniform(-roll_range, roll_range)
        pose = HeadPose(position, pitch + pitch_offset, yaw, roll)
        corners = pose.points(np.array([[-90.0, -60.0, 0.0], [90.0, 110.0, 0.0], [90.0, -60.0, 0.0], [-90.0, 110.0, 0.0]]))
        px = camera.pixels(corners)
        w, h = camera.size
        if np.all(px[:, 0] > 0.03 * w) and np.all(px[:, 0] < 0.97 * w) and np.all(px[:, 1] > 0.03 * h) and np.all(px[:, 1] < 0.97 * h):
            return pose
    return pose


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _iris_ellipse(camera: Camera, iris_mm: np.ndarray, gaze: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Affine projection of the iris disc and its ellipse parameters (rx = the more horizontal axis)."""
    x, y, z = iris_mm
    f = camera.matrix[0, 0]
    jacobian = f / z * np.array([[1.0, 0.0, -x / z], [0.0, 1.0, -y / z]])
    a = _unit(np.cross(gaze, [0.0, 1.0, 0.0]))
    b = np.cross(gaze, a)
    affine = IRIS_RADIUS_MM * jacobian @ np.stack([a, b], axis=1)
    u, sigma, _ = np.linalg.svd(affine)
    if abs(u[0, 0]) < abs(u[0, 1]):
        u, sigma = u[:, ::-1], sigma[::-1]
    if u[0, 0] < 0:
        u = -u
    rotate = float(np.degrees(np.arctan2(u[1, 0], u[0, 0])))
    centre = project(iris_mm, camera.matrix)
    return affine, (float(centre[0]), float(centre[1]), float(sigma[0]), float(sigma[1]), rotate)


def _eyelid_head(subject: Subject, side: float, openness: float, look_down_mm: float) -> np.ndarray:
    """(16, 3) head-frame eyelid polygon of one eye (side +1 right, -1 left); closed = upper on lower."""
    t = np.linspace(0.0, 1.0, N_LID + 1)
    bump = np.sin(np.pi * t) ** 0.9
    x = side * (subject.ipd_mm / 2.0 + (t - 0.45) * subject.eye_width_mm)
    lower_y = LID_LOW_MM * bump + 0.5 * look_down_mm * bump
    upper_open_y = -LID_UP_MM * bump + look_down_mm * bump
    upper_y = lower_y + openness * (upper_open_y - lower_y)
    z = 6.0 + 5.0 * bump
    lower = np.stack([x, lower_y, z], axis=1)
    upper = np.stack([x, upper_y, z], axis=1)
    return np.concatenate([lower[:N_LID + 1], upper[N_LID - 1:0:-1]], axis=0)


def _outlines(pose: HeadPose, camera: Camera, subject: Subject) -> dict[str, np.ndarray]:
    """Face parts as head-frame rings and lines, projected."""
    theta = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
    ring = lambda cx, cy, cz, rx, ry: np.stack([cx + rx * np.cos(theta), cy + ry * np.sin(theta), np.full_like(theta, cz)], 1)  # noqa: E731
    half = subject.ipd_mm / 2.0
    brow_t = np.linspace(-1.0, 1.0, 7)
    parts = {
        "hair": ring(0.0, -5.0, -25.0, 88.0, 95.0),
        "face": ring(0.0, 28.0, -10.0, 72.0, 98.0),
        "brow_r": np.stack([half + 15 * brow_t + 2, -13.0 - 3.0 * np.cos(brow_t * 1.3), np.full(7, 10.0)], 1),
        "brow_l": np.stack([-half - 15 * brow_t - 2, -13.0 - 3.0 * np.cos(brow_t * 1.3), np.full(7, 10.0)], 1),
        "nose": np.array([[-3.0, 5.0, 14.0], [-5.0, 30.0, 22.0], [-9.0, 38.0, 18.0], [0.0, 41.0, 20.0], [9.0, 38.0, 18.0]]),
        "mouth": np.stack([22 * brow_t, 68.0 + 3.0 * (1 - brow_t ** 2), np.full(7, 12.0)], 1),
        "lens_r": ring(half + 1.0, 2.0, 18.0, 24.0, 17.0),
        "lens_l": ring(-half - 1.0, 2.0, 18.0, 24.0, 17.0),
    }
    return {name: camera.pixels(pose.points(points)) for name, points in parts.items()}


def frame_geometry(camera: Camera, subject: Subject, base: HeadPose, point_px: np.ndarray, on_screen: bool,
                   openness: float, head_deg: np.ndarray, shift_mm: np.ndarray) -> FrameGeometry:
    """Project one frame: the head at ``base`` moved by the track, both eyes looking at ``point_px``."""
    position = base.position_mm + shift_mm
    target_screen = camera.profile.screen_points_mm(point_px)
    follow = np.zeros(2)
    if not on_screen:
        pitch_t, yaw_t = facing_angles_deg(target_screen - position)
        follow = HEAD_FOLLOW * (np.array([pitch_t, yaw_t]) - np.array([base.pitch_deg, base.yaw_deg]))
    rel = np.array([head_deg[0] + follow[0], head_deg[1] + follow[1], head_deg[2]])
    pose = HeadPose(position, base.pitch_deg + rel[0], base.yaw_deg + rel[1], base.roll_deg + rel[2])
    eyes = {}
    for name, side in (("right", 1.0), ("left", -1.0)):
        eyeball = pose.points(np.array([side * subject.ipd_mm / 2.0, 0.0, 0.0]))
        gaze_screen = _unit(target_screen - eyeball)
        gaze_head = pose.rotation.T @ gaze_screen
        lid = _eyelid_head(subject, side, openness, look_down_mm=0.35 * EYEBALL_RADIUS_MM * gaze_head[1])
        eyeball_cam = camera.to_camera(eyeball)
        gaze_cam = gaze_screen @ camera.rotation.T
        iris_cam = eyeball_cam + EYEBALL_RADIUS_MM * gaze_cam
        affine, ellipse = _iris_ellipse(camera, iris_cam, gaze_cam)
        eyes[name] = EyeGeometry(eyeball_cam, iris_cam, gaze_cam, np.array(ellipse[:2]), affine, ellipse,
                                 camera.pixels(pose.points(lid)))
    mid_px = (eyes["right"].center_px + eyes["left"].center_px) / 2.0
    ray = backproject(mid_px[0], mid_px[1], 1.0, camera.matrix)  # as common.targets.gaze inverts it
    distance_mm = float(ray @ ((eyes["right"].iris_mm + eyes["left"].iris_mm) / 2.0))
    eyes_mid = (eyes["right"].eyeball_mm + eyes["left"].eyeball_mm) / 2.0
    target = camera.to_camera(target_screen)
    return FrameGeometry(
        right=eyes["right"], left=eyes["left"], target_mm=target, eyes_mid_mm=eyes_mid,
        true_gaze=_unit(target - eyes_mid), distance_cam_cm=distance_mm / 10.0,
        distance_display_cm=float(position[2]) / 10.0,
        head_rel_deg=(float(rel[2]), float(rel[0]), float(rel[1])),
        px_per_mm=float(camera.matrix[0, 0] / eyes_mid[2]),
        outlines=_outlines(pose, camera, subject),
    )
