"""Write a synthetic delivery tree (AI Hub layout, docs/synthetic.md) in parallel over subjects.

::

    OUT/01.데이터/1.Training/원천데이터/{n.기기}/{video}.mp4
    OUT/01.데이터/1.Training/원천데이터/{n.기기}/{video}/{video}_{frame}.png
    OUT/01.데이터/1.Training/라벨링데이터/{n.기기}/{video}.json            (video label, our schema)
    OUT/01.데이터/1.Training/라벨링데이터/{n.기기}/{video}/{video}_{frame}.json
    OUT/device_profiles.json          only when the frame size is not 1920x1080
    OUT/.nia-synth/params.json, truth.csv   how the set was made and the true gaze per frame

Files depend only on the parameters: each subject draws from its own seed,
JSON is written with sorted, fixed formatting, PNGs with fixed zlib settings
and mp4s through ``cv2.VideoWriter`` (``mp4v``), whose FFmpeg muxer writes
no creation time, so reruns are byte-identical (tested). ``vfr`` and
``keyframe_interval`` change how the mp4s are written (:mod:`common.synth.mp4`);
at their defaults every file is byte-identical to sets written before they existed.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from common.parallel import die_with_parent
from common.targets.profiles import DEFAULT_PROFILE_PATH, PROFILE_FILE_NAME, ProfileSet, load_profiles
from common.synth.clip import render_clip
from common.synth.labels import video_label
from common.synth.mp4 import Mp4Error, vfr_durations, write_mp4
from common.synth.scene import DEVICE_FOLDERS, VideoSpec, make_subject, make_videos

TRAINING = Path("01.데이터") / "1.Training"
SOURCE_DIR, LABEL_DIR = TRAINING / "원천데이터", TRAINING / "라벨링데이터"
META_DIR = ".nia-synth"
DEFAULT_SIZE = (1920, 1080)


class SynthError(RuntimeError):
    """The synthetic set cannot be written (bad parameters, unusable output folder)."""


@dataclass(frozen=True)
class SynthConfig:
    """Everything the output depends on."""

    subjects: int
    seed: int = 0
    videos_per_subject: int = 4
    frames_per_video: int = 24
    size: tuple[int, int] = DEFAULT_SIZE
    fps: float = 30.0
    devices: tuple[str, ...] | None = None
    directions: tuple[str, ...] | None = None
    vfr: bool = False  # variable frame rate: irregular frame durations in the mp4s (common.synth.mp4)
    keyframe_interval: int | None = None  # None: OpenCV's writer (every 12th frame); N: ffmpeg, every Nth

    def check(self) -> None:
        if not 1 <= self.subjects <= 999:
            raise SynthError(f"--subjects must be in 1..999 (metaid 001-999), got {self.subjects}")
        if self.videos_per_subject < 1 or self.frames_per_video < 1:
            raise SynthError("--videos-per-subject and --frames-per-video must be >= 1")
        if self.size[0] < 64 or self.size[1] < 36:
            raise SynthError(f"--size must be at least 64x36, got {self.size[0]}x{self.size[1]}")
        if self.keyframe_interval is not None and self.keyframe_interval < 1:
            raise SynthError(f"--keyframe-interval must be >= 1, got {self.keyframe_interval}")
        if self.keyframe_interval is not None and shutil.which("ffmpeg") is None:
            raise SynthError("--keyframe-interval needs the ffmpeg program (scripts/install-system-deps.sh "
                             "installs it; OpenCV's writer fixes the interval at 12)")

    def videos(self, subject_index: int) -> list[VideoSpec]:
        subject = make_subject(subject_index, self.seed)
        return make_videos(subject, self.seed, self.videos_per_subject, self.frames_per_video, self.fps,
                           self.devices, self.directions)


@dataclass(frozen=True)
class SynthSummary:
    """What was written."""

    out: Path
    n_subjects: int
    n_videos: int
    n_frames: int
    by_device_type: dict[str, int]
    by_state: dict[str, int]


def _dump_json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8")


def _write_video(path: Path, frames: list[np.ndarray], video: VideoSpec, config: SynthConfig) -> None:
    """The clip's mp4 (atomically); with ``config.vfr`` its frame durations come from a generator of its
    own, seeded by the clip, so the pixels do not change."""
    durations = vfr_durations(len(frames), np.random.default_rng([*video.seed, 0x5F5])) if config.vfr else None
    try:
        write_mp4(path, frames, video.fps, keyframe_interval=config.keyframe_interval, frame_durations=durations)
    except Mp4Error as exc:
        raise SynthError(str(exc)) from None


def _write_clip(out: Path, video: VideoSpec, profiles: ProfileSet, config: SynthConfig) -> list[dict[str, Any]]:
    folder = DEVICE_FOLDERS[video.device]
    source, labels = out / SOURCE_DIR / folder, out / LABEL_DIR / folder
    (source / video.stem).mkdir(parents=True, exist_ok=True)
    (labels / video.stem).mkdir(parents=True, exist_ok=True)
    frames, truth = [], []
    for frame in render_clip(video, profiles):
        ok, png = cv2.imencode(".png", frame.image, [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
        if not ok:
            raise SynthError(f"{video.frame_name(frame.index)}.png: PNG encoding failed")
        (source / video.stem / f"{video.frame_name(frame.index)}.png").write_bytes(png.tobytes())
        (labels / video.stem / f"{video.frame_name(frame.index)}.json").write_bytes(_dump_json(frame.label))
        frames.append(frame.image)
        truth.append(frame.truth)
    _write_video(source / f"{video.stem}.mp4", frames, video, config)
    (labels / f"{video.stem}.json").write_bytes(_dump_json(video_label(video)))
    return truth


def write_subject(out: Path, config: SynthConfig, subject_index: int, profile_path: Path | None) -> list[dict[str, Any]]:
    """Render and write every clip of one subject; returns the truth rows of its frames."""
    cv2.setNumThreads(1)
    profiles = load_profiles(profile_path)
    rows: list[dict[str, Any]] = []
    for video in config.videos(subject_index):
        rows.extend(_write_clip(out, video, profiles, config))
    return rows


def write_sized_profile(out: Path, size: tuple[int, int]) -> Path | None:
    """``OUT/device_profiles.json`` (bundled profile with ``image_size_px`` = size) for non-default sizes."""
    if tuple(size) == DEFAULT_SIZE:
        return None
    data = json.loads(DEFAULT_PROFILE_PATH.read_text(encoding="utf-8"))
    data["image_size_px"] = [int(size[0]), int(size[1])]
    data["_about"] = (f"Written by nia synth: the bundled profile with image_size_px = {size[0]}x{size[1]}, "
                      "so the gaze derivation uses the intrinsics the frames were rendered with. " + data["_about"])
    path = out / PROFILE_FILE_NAME
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


# options added after the first sets were written: listed in params.json only when set, so that
# a set written with the defaults stays byte-identical to one written before they existed
_LATER_DEFAULTS: dict[str, Any] = {"vfr": False, "keyframe_interval": None}


def _write_meta(out: Path, config: SynthConfig, rows: list[dict[str, Any]]) -> None:
    meta = out / META_DIR
    meta.mkdir(exist_ok=True)
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()
              if k not in _LATER_DEFAULTS or v != _LATER_DEFAULTS[k]}
    (meta / "params.json").write_text(json.dumps({"generator": "nia synth", **params}, indent=2) + "\n", encoding="utf-8")
    with open(meta / "truth.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def build_dataset(out: str | Path, config: SynthConfig, workers: int = 1, progress: bool = False) -> SynthSummary:
    """Write the synthetic delivery tree into ``out`` (which must be empty or absent)."""
    config.check()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SynthError(f"{out}: output folder is not empty (choose a new folder; nothing was overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    profile_path = write_sized_profile(out, config.size)
    results: dict[int, list[dict[str, Any]]] = {}
    bar = tqdm(total=config.subjects, desc="synth", unit=" subject", disable=None if progress else True)
    if workers <= 1:
        for index in range(config.subjects):
            results[index] = write_subject(out, config, index, profile_path)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(write_subject, out, config, i, profile_path): i for i in range(config.subjects)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    bar.close()
    rows = [row for index in sorted(results) for row in results[index]]
    _write_meta(out, config, rows)
    counts: dict[str, dict[str, int]] = {"dt": {}, "state": {}}
    for row in rows:
        if row["frame"] == 0:
            key = f"{row['device']}/{row['image_type']}"
            counts["dt"][key] = counts["dt"].get(key, 0) + 1
            counts["state"][row["state"]] = counts["state"].get(row["state"], 0) + 1
    return SynthSummary(out, config.subjects, sum(counts["dt"].values()), len(rows),
                        dict(sorted(counts["dt"].items())), dict(sorted(counts["state"].items())))
