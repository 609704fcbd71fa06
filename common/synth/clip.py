"""Render one clip in memory: frames, their labels and the ground truth they were drawn with."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from common.gaze_angles import vector_to_pitchyaw_deg
from common.targets.profiles import ProfileSet
from common.synth.dynamics import make_track
from common.synth.face import Camera, frame_geometry, place_head
from common.synth.labels import frame_label
from common.synth.render import make_background, make_look, render_frame
from common.synth.scene import VideoSpec


@dataclass(frozen=True)
class Frame:
    """One rendered frame: the image, its NIA label and the truth behind it."""

    index: int
    image: np.ndarray | None
    label: dict[str, Any]
    truth: dict[str, Any]


def render_clip(video: VideoSpec, profiles: ProfileSet, images: bool = True) -> Iterator[Frame]:
    """Frames of ``video`` in order; the same ``video`` always gives the same pixels and labels.

    With ``images=False`` only labels and truth are made (``Frame.image`` is None), much faster;
    the labels are the same as with images because the noise is drawn last in each frame.
    """
    rng = np.random.default_rng(list(video.seed))
    profile = profiles[video.device]
    camera = Camera(profile, video.direction)
    track = make_track(video.state, video.n_frames, rng, profile.screen_mm, profile.point_space_px)
    base = place_head(rng, camera, video.device, video.posture)
    look = make_look(video.subject, video.image_type == "ir", rng)
    background = make_background(*profile.image_size_px, look.ir, rng) if images else None
    for i in range(video.n_frames):
        g = frame_geometry(camera, video.subject, base, track.point_px[i], bool(track.on_screen[i]),
                           float(track.openness[i]), track.head_deg[i], track.shift_mm[i])
        image = render_frame(background, g, look, float(track.openness[i]), rng) if images else None
        pitch, yaw = vector_to_pitchyaw_deg(g.true_gaze)
        truth = {
            "sample_id": video.frame_name(i), "video_stem": video.stem, "metaid": video.subject.metaid,
            "device": video.device, "image_type": video.image_type, "state": video.state,
            "posture": video.posture, "direction": video.direction, "frame": i,
            "on_screen": bool(track.on_screen[i]), "openness": round(float(track.openness[i]), 4),
            "true_pitch_deg": round(float(pitch), 4), "true_yaw_deg": round(float(yaw), 4),
            **{f"eye_{a}_mm": round(float(v), 3) for a, v in zip("xyz", g.eyes_mid_mm)},
            **{f"target_{a}_mm": round(float(v), 3) for a, v in zip("xyz", g.target_mm)},
        }
        yield Frame(i, image, frame_label(video, i, g, track.point_px[i]), truth)
