"""Who is filmed, on what, in which state: subjects, videos and their file names.

Composition follows the published shares (docs/synthetic.md): videos per
(display, image type) from the dataset table, observer states and postures
from the published percentages, glasses 69.23 %. Every random draw comes from
a generator seeded by ``(seed, subject index[, video index])``, so a subject's
files do not depend on how many workers render them or in which order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.delivery.filenames import PREFIX

SITE, ATTEMPT = "S1", "T1"

# Published counts of raw videos per (display, image type) (NIA_DATASET.md, "Scale").
VIDEO_COUNTS = {
    ("S", "rgb"): 18173, ("T", "rgb"): 20337, ("L", "rgb"): 14003,
    ("V", "rgb"): 9339, ("V", "ir"): 8270, ("M", "rgb"): 11305, ("M", "ir"): 6313,
}
STATE_SHARES = {"F": 24.97, "S": 14.97, "D": 21.36, "A": 21.14, "N": 17.55}
POSTURE_SHARES = {"S": 8.15, "D": 17.12, "P": 5.82, "L": 5.94, "F": 10.37,
                  "C": 13.03, "H": 3.40, "E": 17.10, "T": 7.78, "U": 11.27}
# Assumption (unpublished): where the device sits relative to the observer.
DIRECTION_SHARES = {"T": 60.0, "L": 20.0, "R": 20.0}
GLASSES_SHARE = 0.6923
# Assumption: camera-to-eye distance range per display, cm.
DISTANCE_CM = {"S": (25.0, 45.0), "T": (30.0, 50.0), "L": (45.0, 70.0), "V": (55.0, 85.0), "M": (50.0, 80.0)}
DEVICE_FOLDERS = {"S": "1.스마트폰", "T": "2.태블릿", "L": "3.노트북", "V": "4.차량용LCD", "M": "5.모니터"}


@dataclass(frozen=True)
class Subject:
    """One synthetic person: identity and appearance fixed across their videos."""

    index: int
    metaid: str
    glasses: bool
    ipd_mm: float
    eye_width_mm: float
    skin_bgr: tuple[int, int, int]
    iris_bgr: tuple[int, int, int]
    hair_bgr: tuple[int, int, int]
    pupil_ratio: float
    iris_phases: tuple[float, ...]


@dataclass(frozen=True)
class VideoSpec:
    """One clip: the fields of its file name plus how many frames and its own seed."""

    subject: Subject
    scenario: int
    device: str
    image_type: str
    state: str
    posture: str
    direction: str
    n_frames: int
    fps: float
    seed: tuple[int, ...]

    @property
    def stem(self) -> str:
        """The 10-field video name ``NIA22EYE_S1_{metaid}_T1_S{scenario:02d}_{device}_{type}_{state}_{posture}_{direction}``."""
        return "_".join((PREFIX, SITE, self.subject.metaid, ATTEMPT, f"S{self.scenario:02d}", self.device,
                         self.image_type, self.state, self.posture, self.direction))

    def frame_name(self, frame: int) -> str:
        """The 11-field frame stem (no extension)."""
        return f"{self.stem}_{frame}"


def _choice(rng: np.random.Generator, shares: dict) -> object:
    keys = list(shares)
    weights = np.array([shares[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=weights / weights.sum()))]


def make_subject(index: int, seed: int) -> Subject:
    """Subject ``index`` (metaid ``index + 1``, zero-padded to 3 digits) of a seeded set."""
    if not 0 <= index < 999:
        raise ValueError(f"subject index must be in 0..998 (metaid 001-999), got {index}")
    rng = np.random.default_rng([seed, index])
    skin = np.array([150, 180, 215]) * rng.uniform(0.8, 1.08) + rng.normal(0, 6, 3)
    iris = np.array([30, 55, 95]) * rng.uniform(0.6, 1.4) + rng.normal(0, 8, 3)
    return Subject(
        index=index,
        metaid=f"{index + 1:03d}",
        glasses=bool(rng.random() < GLASSES_SHARE),
        ipd_mm=float(rng.normal(63.0, 3.0)),
        eye_width_mm=float(rng.uniform(27.0, 31.0)),
        skin_bgr=tuple(int(v) for v in np.clip(skin, 0, 255)),
        iris_bgr=tuple(int(v) for v in np.clip(iris, 0, 255)),
        hair_bgr=tuple(int(v) for v in rng.integers(15, 45, 3)),
        pupil_ratio=float(rng.uniform(0.32, 0.45)),
        iris_phases=tuple(float(v) for v in rng.uniform(0, 2 * np.pi, 4)),
    )


def make_videos(subject: Subject, seed: int, n_videos: int, n_frames: int, fps: float = 30.0,
                devices: tuple[str, ...] | None = None, directions: tuple[str, ...] | None = None,
                postures: tuple[str, ...] | None = None) -> list[VideoSpec]:
    """The subject's clips; ``devices``/``directions``/``postures`` restrict the draw (None = published shares).

    The scenario field (meaning unpublished) numbers the subject's clips 1..K,
    which keeps every video stem unique.
    """
    if n_frames < 1:
        raise ValueError(f"frames per video must be >= 1, got {n_frames}")
    rng = np.random.default_rng([seed, subject.index, 1_000_003])
    pairs = {k: v for k, v in VIDEO_COUNTS.items() if devices is None or k[0] in devices}
    if not pairs:
        raise ValueError(f"no published (display, type) pair for displays {devices}")
    dir_shares = {k: v for k, v in DIRECTION_SHARES.items() if directions is None or k in directions}
    if not dir_shares:
        raise ValueError(f"directions must be among {tuple(DIRECTION_SHARES)}, got {directions}")
    posture_shares = {k: v for k, v in POSTURE_SHARES.items() if postures is None or k in postures}
    if not posture_shares:
        raise ValueError(f"postures must be among {tuple(POSTURE_SHARES)}, got {postures}")
    videos = []
    for k in range(n_videos):
        device, image_type = _choice(rng, pairs)  # type: ignore[misc]
        videos.append(VideoSpec(
            subject=subject, scenario=k + 1, device=device, image_type=image_type,
            state=str(_choice(rng, STATE_SHARES)), posture=str(_choice(rng, posture_shares)),
            direction=str(_choice(rng, dir_shares)), n_frames=n_frames, fps=fps,
            seed=(seed, subject.index, k),
        ))
    return videos
