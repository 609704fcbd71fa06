"""Draw one frame from its geometry: background, face, eyes, glasses, lighting, blur, noise.

Cheap on purpose (OpenCV primitives, sub-pixel vertices, numpy only inside
small eye windows). The eyelid polygon and iris ellipse drawn here are the
ones written to the labels: sclera and iris are painted only inside the
polygon, so the visible iris is ellipse ∩ polygon, as in the real labels.
IR frames use a grey palette with a bright pupil (on-axis IR illumination)
and come out single-channel.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from common.synth.face import EyeGeometry, FrameGeometry
from common.synth.scene import Subject

SHIFT = 4                 # fixed-point bits for OpenCV drawing: vertices at 1/16 pixel
_ONE = 1 << SHIFT


@dataclass(frozen=True)
class Look:
    """Colours and per-clip rendering choices (BGR; grey levels for IR)."""

    ir: bool
    skin: np.ndarray
    sclera: np.ndarray
    iris: np.ndarray
    pupil: np.ndarray
    hair: np.ndarray
    lips: np.ndarray
    frame: np.ndarray
    glasses: bool
    reflection: float         # alpha of the lens glare, 0 = none
    light_angle: float        # radians, direction of the light gradient
    blur_sigma: float
    noise_sigma: float
    pupil_ratio: float
    phases: tuple[float, ...]


def make_look(subject: Subject, ir: bool, rng: np.random.Generator) -> Look:
    """Palette and clip-level choices for one clip of ``subject``."""
    grey = lambda level: np.full(3, float(level))  # noqa: E731
    common = dict(glasses=subject.glasses, reflection=float(rng.uniform(0.15, 0.4)) if rng.random() < 0.6 else 0.0,
                  light_angle=float(rng.uniform(0, 2 * np.pi)), blur_sigma=float(rng.uniform(0.3, 0.8)),
                  noise_sigma=float(rng.uniform(1.5, 3.5)), pupil_ratio=subject.pupil_ratio, phases=subject.iris_phases)
    if ir:
        return Look(ir=True, skin=grey(rng.uniform(150, 180)), sclera=grey(205), iris=grey(rng.uniform(110, 150)),
                    pupil=grey(240), hair=grey(50), lips=grey(135), frame=grey(35), **common)
    return Look(ir=False, skin=np.array(subject.skin_bgr, float), sclera=np.array([225.0, 232.0, 238.0]),
                iris=np.array(subject.iris_bgr, float), pupil=np.array([18.0, 16.0, 16.0]),
                hair=np.array(subject.hair_bgr, float), lips=np.array([105.0, 110.0, 175.0]),
                frame=np.array([30.0, 30.0, 35.0]), **common)


def make_background(width: int, height: int, ir: bool, rng: np.random.Generator) -> np.ndarray:
    """A smooth room-like backdrop: two-colour vertical gradient plus a few flat panels."""
    top, bottom = rng.uniform(40, 200, 3), rng.uniform(30, 160, 3)
    if ir:
        top, bottom = np.full(3, top.mean() * 0.5), np.full(3, bottom.mean() * 0.4)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp).astype(np.float32) * np.ones((1, width, 1), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(width // 10, width // 3)), y0 + int(rng.integers(height // 10, height // 2))
        shade = float(rng.uniform(0.75, 1.25))
        image[y0:y1, x0:x1] *= shade
    return np.clip(image, 0, 255).astype(np.uint8)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _thick(mm: float, px_per_mm: float) -> int:
    return max(1, int(round(mm * px_per_mm)))


def _colour(bgr: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in bgr)  # type: ignore[return-value]


def _draw_face(image: np.ndarray, g: FrameGeometry, look: Look) -> None:
    o, ppm = g.outlines, g.px_per_mm
    cv2.fillPoly(image, [_fixed(o["hair"])], _colour(look.hair), cv2.LINE_AA, SHIFT)
    cv2.fillPoly(image, [_fixed(o["face"])], _colour(look.skin), cv2.LINE_AA, SHIFT)
    for brow in ("brow_r", "brow_l"):
        cv2.polylines(image, [_fixed(o[brow])], False, _colour(look.hair * 1.3), _thick(2.5, ppm), cv2.LINE_AA, SHIFT)
    cv2.polylines(image, [_fixed(o["nose"])], False, _colour(look.skin * 0.78), _thick(1.0, ppm), cv2.LINE_AA, SHIFT)
    cv2.polylines(image, [_fixed(o["mouth"])], False, _colour(look.lips), _thick(3.0, ppm), cv2.LINE_AA, SHIFT)


def _eye_window(eye: EyeGeometry, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    lo = np.floor(eye.eyelid_px.min(axis=0)).astype(int) - 2
    hi = np.ceil(eye.eyelid_px.max(axis=0)).astype(int) + 3
    x0, y0 = max(0, lo[0]), max(0, lo[1])
    x1, y1 = min(shape[1], hi[0]), min(shape[0], hi[1])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _iris_colours(eye: EyeGeometry, look: Look, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iris colour, iris alpha and pupil alpha at pixel centres (xs, ys) (radial texture, limbal ring)."""
    inverse = np.linalg.inv(eye.iris_affine)
    d = np.stack([xs - eye.center_px[0], ys - eye.center_px[1]], axis=-1)
    u = d @ inverse.T
    rho = np.linalg.norm(u, axis=-1)
    theta = np.arctan2(u[..., 1], u[..., 0])
    radius_px = max(float(min(eye.iris[2], eye.iris[3])), 0.5)
    p = look.phases
    texture = (0.8 + 0.12 * np.sin(9 * theta + p[0]) * np.sin(3 * theta + p[1])
               + 0.08 * np.sin(23 * theta + p[2]) * rho - 0.45 * np.clip((rho - 0.78) / 0.22, 0, 1))
    colour = look.iris * texture[..., None]
    glint = np.hypot(u[..., 0] + 0.35, u[..., 1] + 0.35) < 0.13
    colour[glint] = 250.0
    iris_alpha = np.clip((1.0 - rho) * radius_px + 0.5, 0, 1)
    pupil_alpha = np.clip((look.pupil_ratio - rho) * radius_px + 0.5, 0, 1) * ~glint
    return colour, iris_alpha, pupil_alpha


def _draw_eye(image: np.ndarray, eye: EyeGeometry, look: Look, ppm: float, openness: float) -> None:
    window = _eye_window(eye, image.shape)
    if window is None:
        return
    x0, y0, x1, y1 = window
    roi = image[y0:y1, x0:x1].astype(np.float32)
    offset = np.array([x0, y0], dtype=np.float64)
    lid = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(lid, [_fixed(eye.eyelid_px - offset)], 255, cv2.LINE_AA, SHIFT)
    area = cv2.contourArea(eye.eyelid_px.astype(np.float32))
    if area >= 0.5:
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        colour, iris_alpha, pupil_alpha = _iris_colours(eye, look, xs, ys)
        inside = look.sclera * (0.88 + 0.12 * np.clip(1.0 - np.abs(ys - eye.center_px[1]) / 40.0, 0, 1))[..., None]
        inside = inside * (1 - iris_alpha[..., None]) + colour * iris_alpha[..., None]
        inside = inside * (1 - pupil_alpha[..., None]) + look.pupil * pupil_alpha[..., None]
        alpha = (lid.astype(np.float32) / 255.0)[..., None]
        roi = roi * (1 - alpha) + inside.astype(np.float32) * alpha
    image[y0:y1, x0:x1] = np.clip(roi, 0, 255).astype(np.uint8)
    upper = np.concatenate([eye.eyelid_px[8:], eye.eyelid_px[:1]])  # outer corner, upper lid, inner corner
    lash = _colour(look.hair * 0.6)
    cv2.polylines(image, [_fixed(upper)], False, lash, _thick(0.7, ppm), cv2.LINE_AA, SHIFT)
    cv2.polylines(image, [_fixed(eye.eyelid_px[:9])], False, _colour(look.skin * 0.75), _thick(0.35, ppm), cv2.LINE_AA, SHIFT)
    centre = eye.eyelid_px.mean(axis=0)
    tips = []
    for point in eye.eyelid_px[10:15]:
        out = point - centre
        out = out / (np.linalg.norm(out) + 1e-9) * 2.2 * ppm * (0.5 + 0.5 * openness)
        tips.append(np.stack([point, point + out]))
    cv2.polylines(image, [_fixed(t) for t in tips], False, lash, _thick(0.3, ppm), cv2.LINE_AA, SHIFT)


def _draw_glasses(image: np.ndarray, g: FrameGeometry, look: Look) -> None:
    o, ppm = g.outlines, g.px_per_mm
    if look.reflection > 0:
        lens = o["lens_r"]
        glare = np.concatenate([lens[26:34], lens.mean(axis=0, keepdims=True) * 0.6 + lens[30:31] * 0.4])
        layer = image.copy()
        cv2.fillPoly(layer, [_fixed(glare)], (255, 255, 255), cv2.LINE_AA, SHIFT)
        cv2.addWeighted(layer, look.reflection, image, 1 - look.reflection, 0, dst=image)
    colour, thick = _colour(look.frame), _thick(1.5, ppm)
    cv2.polylines(image, [_fixed(o["lens_r"]), _fixed(o["lens_l"])], True, colour, thick, cv2.LINE_AA, SHIFT)
    cv2.polylines(image, [_fixed(np.stack([o["lens_r"][24], o["lens_l"][0]]))], False, colour, thick, cv2.LINE_AA, SHIFT)


def _finish(image: np.ndarray, g: FrameGeometry, look: Look, rng: np.random.Generator) -> None:
    """Light gradient, blur and sensor noise inside the head's bounding box (the backdrop stays clean)."""
    pts = np.concatenate([g.outlines["hair"], g.outlines["face"]])
    x0, y0 = np.maximum(np.floor(pts.min(axis=0)).astype(int) - 4, 0)
    x1, y1 = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + 4, [image.shape[1], image.shape[0]])
    if x1 <= x0 or y1 <= y0:
        return
    roi = image[y0:y1, x0:x1].astype(np.float32)
    head = np.zeros(roi.shape[:2], np.uint8)
    offset = np.array([x0, y0], dtype=np.float64)
    cv2.fillPoly(head, [_fixed(g.outlines["hair"] - offset), _fixed(g.outlines["face"] - offset)], 255, cv2.LINE_AA, SHIFT)
    mask = (head.astype(np.float32) / 255.0)[..., None]
    ys, xs = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float32)
    span = float(max(x1 - x0, y1 - y0))
    light = 0.95 + 0.2 * ((xs - xs.mean()) * np.cos(look.light_angle) + (ys - ys.mean()) * np.sin(look.light_angle)) / span
    lit = roi * light[..., None] + rng.standard_normal(roi.shape, dtype=np.float32) * look.noise_sigma
    roi = cv2.GaussianBlur(roi * (1 - mask) + lit * mask, (0, 0), look.blur_sigma)
    image[y0:y1, x0:x1] = np.clip(roi, 0, 255).astype(np.uint8)


def render_frame(background: np.ndarray, g: FrameGeometry, look: Look, openness: float,
                 rng: np.random.Generator) -> np.ndarray:
    """The frame: BGR (H, W, 3) uint8, or grey (H, W) for IR."""
    image = background.copy()
    _draw_face(image, g, look)
    for eye in (g.right, g.left):
        _draw_eye(image, eye, look, g.px_per_mm, openness)
    if look.glasses:
        _draw_glasses(image, g, look)
    _finish(image, g, look, rng)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if look.ir else image
