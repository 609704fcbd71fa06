"""Shared fixtures: the published example label and small NIA-format trees.

``make_label_dict(**overrides)`` returns the published example label (a fresh
deep copy) with top-level ``Annotations`` fields overridden;
``nia_tree(n_subjects=2, ...)`` writes PNG+JSON frames, mp4 videos and video
JSONs with valid names in the AI Hub layout (Korean folder names) under
``tmp_path/nia`` and returns a :class:`NiaTree`.
"""
from __future__ import annotations

import copy
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest

PUBLISHED_EXAMPLE_TEXT = """{"Annotations": {
  "name": "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_232.png",
  "inst": "S", "image": "rgb", "condition": "F", "posture": "D", "metaid": "001",
  "annotations": [
    {"label": "r_iris", "points": [[1009,282],[1034,303]], "shape": "Ellipse", "rotate": 0, "rx": 12.5, "ry": 10.5, "cx": 1021.5, "cy": 292.5},
    {"label": "l_iris", "points": [[878,280],[902,300]], "shape": "Ellipse", "rotate": 0, "rx": 12, "ry": 10, "cx": 890, "cy": 290},
    {"label": "r_eyelid", "points": [[994,298],[998,299],[1004,299],[1013,301],[1023,302],[1033,301],[1040,299],[1045,298],[1049,295],[1046,293],[1043,291],[1037,289],[1026,287],[1016,287],[1006,290],[998,295]], "shape": "Polygon"},
    {"label": "l_eyelid", "points": [[865,291],[869,295],[873,296],[880,298],[889,299],[899,298],[908,297],[915,296],[918,295],[915,292],[907,288],[896,285],[886,284],[876,285],[871,288],[867,290]], "shape": "Polygon"},
    {"label": "l_center", "points": [[890,290]], "shape": "Point"},
    {"label": "r_center", "points": [[1021.5,292.5]], "shape": "Point"}],
  "pose": {"head": [-24.6848, 6.2168, -0.4095], "cam": [-96.57, -1.45, 11.05], "point": [1913, 1076]},
  "distance": {"cam": 53, "display": 53}
}}
"""
PUBLISHED_EXAMPLE = json.loads(PUBLISHED_EXAMPLE_TEXT)
SOURCE_DIR = "01.데이터/1.Training/원천데이터"
LABEL_DIR = "01.데이터/1.Training/라벨링데이터"
INSTS = ("S", "T", "L", "V", "M")
STATES = ("F", "S", "D", "A", "N")
POSTURES = ("S", "D", "P", "L", "F", "C", "H", "E", "T", "U")


def make_label_dict(**overrides) -> dict:
    """The published example label with ``Annotations`` fields overridden
    (``pose=...`` and ``distance=...`` replace those sections)."""
    label = copy.deepcopy(PUBLISHED_EXAMPLE)
    label["Annotations"].update(copy.deepcopy(overrides))
    return label


@lru_cache(maxsize=4)
def png_bytes(width: int, height: int, value: int = 90) -> bytes:
    """A valid, uniformly grey 8-bit RGB PNG (built with zlib; no image library needed)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\x00" + bytes([value]) * (3 * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * height, 6)) + chunk(b"IEND", b""))


@dataclass
class NiaTree:
    """A written tree: its root and the stems it holds."""

    root: Path
    frames: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)


def video_stem(subject: str, scenario: int, inst: str, image: str, state: str, posture: str) -> str:
    return f"NIA22EYE_S1_{subject}_T1_S{scenario:02d}_{inst}_{image}_{state}_{posture}_T"


def frame_label(stem: str, subject: str, inst: str, image: str, state: str, posture: str,
                frame: int, point: tuple[float, float]) -> dict:
    """A valid frame label for this name: the published shapes shifted a little per frame."""
    label = make_label_dict(name=f"{stem}.png", inst=inst, image=image, condition=state,
                            posture=posture, metaid=subject)
    dx = frame % 7
    for shape in label["Annotations"]["annotations"]:
        shape["points"] = [[x + dx, y] for x, y in shape["points"]]
        if "cx" in shape:
            shape["cx"] += dx
    label["Annotations"]["pose"]["point"] = [point[0], point[1]]
    return label


def change_gaze_point(label_path: Path, point: list[int]) -> None:
    """Rewrite a label's ``pose.point`` and move its mtime on by 1 s, so a re-index sees the change."""
    label = json.loads(label_path.read_text(encoding="utf-8"))
    label["Annotations"]["pose"]["point"] = point
    label_path.write_text(json.dumps(label), encoding="utf-8")
    st = label_path.stat()
    os.utime(label_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def write_tree(root: Path, n_subjects: int = 2, videos_per_subject: int = 2, frames_per_video: int = 3,
               image_size: tuple[int, int] = (1920, 1080), with_mp4: bool = True, with_video_json: bool = True,
               first_subject: int = 1) -> NiaTree:
    """Write a small NIA delivery; display, state and posture cycle over the videos."""
    tree = NiaTree(root)
    png = png_bytes(*image_size)
    k = 0
    for s in range(n_subjects):
        subject = f"{first_subject + s:03d}"
        tree.subjects.append(subject)
        for v in range(videos_per_subject):
            inst, state, posture = INSTS[k % 5], STATES[(k // 5 + k) % 5], POSTURES[k % 10]
            image = "ir" if inst in "VM" and v % 2 else "rgb"
            k += 1
            stem = video_stem(subject, 10 + v, inst, image, state, posture)
            src = root / SOURCE_DIR / f"TS_{inst}" / subject
            lab = root / LABEL_DIR / f"TL_{inst}" / subject
            src.mkdir(parents=True, exist_ok=True)
            lab.mkdir(parents=True, exist_ok=True)
            tree.videos.append(stem)
            if with_mp4:
                (src / f"{stem}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a real video")
            if with_video_json:
                video = {"Annotations": {"name": f"{stem}.mp4", "inst": inst, "image": image, "condition": state,
                                         "posture": posture, "metaid": subject, "fps": 30, "n_frames": frames_per_video}}
                (lab / f"{stem}.json").write_text(json.dumps(video), encoding="utf-8")
            for f in range(frames_per_video):
                fstem = f"{stem}_{f}"
                point = (400 + 37 * ((f * 7 + s) % 11), 300 + 23 * ((f * 5 + v) % 13))
                (src / f"{fstem}.png").write_bytes(png)
                label = frame_label(fstem, subject, inst, image, state, posture, f, point)
                (lab / f"{fstem}.json").write_text(json.dumps(label, indent=2), encoding="utf-8")
                tree.frames.append(fstem)
    return tree


def edit_label(tree: NiaTree, stem: str, change) -> None:
    """Apply ``change(annotations_dict)`` to the label JSON of frame ``stem`` and write it back."""
    path = next(tree.root.rglob(f"{stem}.json"))
    label = json.loads(path.read_text(encoding="utf-8"))
    change(label["Annotations"])
    path.write_text(json.dumps(label), encoding="utf-8")


def indexed(tree: NiaTree, folder: Path) -> Path:
    """``nia index`` of the tree into ``folder/m.parquet`` (one worker); returns the manifest path."""
    from common.delivery.manifest import build_index

    out = folder / "m.parquet"
    build_index(tree.root, out, workers=1)
    return out


def nia_ok(*args: str):
    """Run ``nia ARGS`` in-process (click's CliRunner); assert it exits 0 and return the result."""
    from click.testing import CliRunner

    from common.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def label_dict():
    """A factory: ``label_dict(**overrides)`` (same as make_label_dict)."""
    return make_label_dict


@pytest.fixture
def nia_tree(tmp_path):
    """A factory writing a tree under ``tmp_path/nia`` (see write_tree for the options)."""
    def make(n_subjects: int = 2, **kwargs) -> NiaTree:
        return write_tree(tmp_path / "nia", n_subjects, **kwargs)
    return make
