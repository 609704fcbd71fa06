"""The hostile corpus: bad inputs made by code (no binary file is committed), with what each must give.

A :class:`Case` says what the input is, the one line the suite must print
about it (every string of ``line`` appears in that line; ``{file}`` is the
input's name) and the exit code. The tests that feed each area's cases to the
suite are ``tests/hostile/test_hostile_*.py``; ``python -m tests.hostile_corpus``
prints the table of docs/reliability.md.

Where a case is one file of a delivery (labels, media, trees, members of a
zip), the run goes on with the rest: the line is where the suite records it
(the manifest's ``error`` column, ``crops_skipped.csv``, the clip index's
``error``, a ``refused:``/``warning:`` line of ``nia prepare``) and the exit
code is that of the run over the whole delivery.
"""
from __future__ import annotations

import io
import json
import math
import os
import stat
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Case:
    id: str
    area: str
    input: str                       # what the hostile input is
    line: tuple[str, ...]            # strings the one line must hold ({file}: the input's name)
    code: int                        # exit code of the command (of the run over the delivery)
    make: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    where: str = "stderr"            # where the line is: stderr, or the file/column that records it

    def expected(self, file: str = "") -> list[str]:
        return [part.replace("{file}", file) for part in self.line]


def _cases(area: str, where: str, rows: list[tuple]) -> list[Case]:
    return [Case(row[0], area, row[1], tuple(row[2]), row[3], row[4] if len(row) > 4 else None, where)
            for row in rows]


# --- labels: one frame label of a delivery (nia index: the manifest's error column) ---------------------

def _edit(path: list, value: Any) -> Callable[[dict], bytes]:
    """A label with the value at ``path`` (keys and indices under the root) set, or deleted when ``value``
    is _DELETE; NaN and infinities are written as JSON's NaN / Infinity tokens."""
    def make(label: dict) -> bytes:
        node = label
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return json.dumps(label).encode()
    return make


_DELETE = object()
_A = "Annotations"


def _text(data: bytes) -> Callable[[dict], bytes]:
    return lambda label: data


def _cut(label: dict) -> bytes:
    data = json.dumps(label).encode()
    return data[:len(data) // 2]


LABELS = _cases("labels", "manifest error column", [
    ("label_empty", "0-byte JSON", ["{file}", "$", "not valid JSON"], 0, _text(b"")),
    ("label_truncated", "JSON cut in the middle", ["{file}", "$", "not valid JSON"], 0, _cut),
    ("label_malformed", "text that is no JSON", ["{file}", "$", "not valid JSON"], 0, _text(b"{broken: yes")),
    ("label_not_utf8", "CP949 bytes, not UTF-8", ["{file}", "$", "not UTF-8 text"], 0,
     _text('{"Annotations": "눈"}'.encode("cp949"))),
    ("label_array_root", "a JSON array, not an object", ["{file}", "expected an object"], 0, _text(b"[1, 2, 3]")),
    ("label_nesting_bomb", "100,000 nested arrays", ["{file}", "$"], 0, _text(b"[" * 100_000 + b"]" * 100_000)),
    ("label_missing_pose", "no pose section", ["{file}", "Annotations.pose", "required field is missing"], 0,
     _edit([_A, "pose"], _DELETE)),
    ("label_missing_metaid", "no metaid", ["{file}", "Annotations.metaid", "required field is missing"], 0,
     _edit([_A, "metaid"], _DELETE)),
    ("label_wrong_type_head", "pose.head a string", ["{file}", "Annotations.pose.head", "expected an array of 3 numbers"],
     0, _edit([_A, "pose", "head"], "up")),
    ("label_bool_distance", "distance.cam true", ["{file}", "Annotations.distance.cam", "expected a number"], 0,
     _edit([_A, "distance", "cam"], True)),
    ("label_unknown_inst", "inst X", ["{file}", "Annotations.inst", "expected one of"], 0, _edit([_A, "inst"], "X")),
    ("label_unknown_shape", "a shape labelled nose",
     ["{file}", "Annotations.annotations[0].label", "expected one of"], 0, _edit([_A, "annotations", 0, "label"], "nose")),
    ("label_nan", "pose.head[1] NaN", ["{file}", "Annotations.pose.head[1]", "finite"], 0,
     _edit([_A, "pose", "head", 1], math.nan)),
    ("label_inf", "pose.point[0] Infinity", ["{file}", "Annotations.pose.point[0]", "finite"], 0,
     _edit([_A, "pose", "point", 0], math.inf)),
    ("label_huge_integer", "an integer of 400 digits", ["{file}", "Annotations.distance.cam", "too large"], 0,
     _edit([_A, "distance", "cam"], 10 ** 400)),
    ("label_zero_radius", "iris rx 0", ["{file}", "Annotations.annotations[0].rx", "radius > 0"], 0,
     _edit([_A, "annotations", 0, "rx"], 0)),
    ("label_two_point_eyelid", "eyelid polygon of 2 points", ["{file}", "Annotations.annotations[2].points", "point"],
     0, _edit([_A, "annotations", 2, "points"], [[1, 2], [3, 4]])),
    ("label_negative_distance", "distance.display -5", ["{file}", "Annotations.distance.display", ">= 0"], 0,
     _edit([_A, "distance", "display"], -5)),
    ("label_outside_image", "iris centre at x = 5000 on a 1920 px image", ["{file}", "labels outside image"], 0,
     _edit([_A, "annotations", 0, "cx"], 5000.0)),
])


# --- media: a PNG of a frame (nia index: image_error; nia crops: crops_skipped.csv) ------------------------

def png(width: int, height: int, value: int = 90, idat: bytes | None = None) -> bytes:
    """An 8-bit RGB PNG; ``idat`` replaces the compressed pixel data (for damaged files)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\x00" + bytes([value]) * (3 * width)
    data = idat if idat is not None else zlib.compress(row * height, 6)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


FRAME = (1920, 1080)

PNGS = _cases("media", "manifest image_error / crops_skipped.csv", [
    ("png_empty", "0-byte PNG", ["{file}", "PNG file", "empty"], 0, lambda good: b""),
    ("png_truncated", "PNG cut in half", ["{file}", "PNG file", "truncated"], 0, lambda good: good[:len(good) // 2]),
    ("png_not_png", "text named .png", ["{file}", "PNG file", "not a PNG"], 0, lambda good: b"GIF89a, not a png" * 8),
    ("png_wrong_size", "a 640x360 PNG among 1920x1080 ones", ["{file}", "image size", "640x360"], 0,
     lambda good: png(640, 360)),
    ("png_pixel_bomb", "IHDR of 60000x60000 (a pixel bomb), 1 kB of data", ["{file}", "image size", "60000x60000"], 0,
     lambda good: png(60000, 60000, idat=zlib.compress(b"\0" * 1000))),
    ("png_damaged_pixels", "sound header, pixel data that does not inflate",
     ["unreadable image", "{file}", "could not decode"], 0, lambda good: png(*FRAME, idat=b"\x78\x9c" + b"\xff" * 200)),
])


# --- media: videos (nia clips: the clip index's reason and error) ------------------------------------------

def coded_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """``n`` BGR frames with a moving bar (P-frames carry motion)."""
    frames = []
    for i in range(n):
        frame = np.full((height, width, 3), 96, np.uint8)
        x = (i * 3) % (width - 8)
        frame[20:28, x:x + 8] = 220
        frames.append(frame)
    return frames


def _mp4(n: int, durations: list[float] | None = None) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        from common.synth.mp4 import write_mp4

        write_mp4(path, coded_frames(n), 30.0, frame_durations=durations)
    return make


def _mp4_cut(path: Path) -> None:
    _mp4(24)(path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.6)])


def _mp4_rotated(path: Path) -> None:
    """20 frames of 64x48, the container tagged rotate=90 (stream copy by the ffmpeg program)."""
    import subprocess

    plain = path.with_name(f"plain_{path.name}")
    _mp4(20)(plain)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(plain), "-c", "copy", "-metadata:s:v", "rotate=90",
                    str(path)], check=True)
    plain.unlink()


def _mp4_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


VIDEOS = _cases("media", "clip index: reason, error", [
    ("mp4_empty", "0-byte mp4", ["unreadable", "{file}"], 0, _mp4_bytes(b"")),
    ("mp4_truncated", "mp4 cut at 60 %", ["unreadable", "{file}"], 0, _mp4_cut),
    ("mp4_not_mp4", "text named .mp4", ["unreadable", "{file}"], 0, _mp4_bytes(b"this is not a video\n" * 50)),
    ("mp4_short", "8 frames (16 needed)", ["too_short"], 0, _mp4(8)),
    ("mp4_vfr", "variable frame rate, 20 frames (30 then 10 fps)", ["usable, 20 frames"], 0,
     _mp4(20, [1.0] * 10 + [3.0] * 10)),
    ("mp4_rotated", "64x48 frames tagged rotate=90 (a phone held upright): read as stored, not turned",
     ["usable, 20 frames, 64x48"], 0, _mp4_rotated),
])


# --- coverage: one sample of the scored split damaged (the three tests, every shape of --data; issue 19) -----------

def _unlink(column: str) -> Callable[[Path, Any], None]:
    return lambda root, row: (root / row[column]).unlink()


def _rewrite(column: str, change: Callable[[bytes, Any], bytes]) -> Callable[[Path, Any], None]:
    def make(root: Path, row: Any) -> None:
        path = root / row[column]
        path.write_bytes(change(path.read_bytes(), row))
    return make


def _condition_x(data: bytes, row: Any) -> bytes:
    label = json.loads(data)
    label["Annotations"]["condition"] = "X"
    return json.dumps(label).encode()


COVERAGE = _cases("coverage", "metrics.json skipped", [
    ("cov_frame_png_missing", "a test frame's PNG deleted (its JSON kept)", ["missing_image"], 0,
     _unlink("png_path")),
    ("cov_frame_png_truncated", "a test frame's PNG cut in half", ["unreadable_image"], 0,
     _rewrite("png_path", lambda data, row: data[:len(data) // 2])),
    ("cov_frame_png_damaged_pixels", "a test frame's PNG: sound header, pixel data that does not inflate",
     ["unreadable_image"], 0,
     _rewrite("png_path", lambda data, row: png(row["png_width"], row["png_height"], idat=b"\x78\x9c" + b"\xff" * 200))),
    ("cov_frame_label_missing", "a test frame's JSON deleted (its PNG kept)", ["invalid_label"], 0,
     _unlink("json_path")),
    ("cov_frame_label_truncated", "a test frame's JSON cut in half", ["invalid_label"], 0,
     _rewrite("json_path", lambda data, row: data[:len(data) // 2])),
    ("cov_frame_unknown_condition", "a test frame's JSON condition X", ["invalid_label"], 0,
     _rewrite("json_path", _condition_x)),
    ("cov_video_mp4_missing", "a test video's mp4 deleted (its JSON kept)", ["missing_video"], 0,
     _unlink("video_path")),
    ("cov_video_label_truncated", "a test video's JSON cut in half", ["invalid_label"], 0,
     _rewrite("json_path", lambda data, row: data[:len(data) // 2])),
])


def is_video_case(case: Case) -> bool:
    """A coverage case that damages a video sample (else a frame sample)."""
    return case.id.startswith("cov_video_")


# --- prepared indexes given as --data: paths that would leave the dataset folder (issue 19) ----------------------

_ESCAPES = ["{file}", "row 1", "absolute or climbs out"]
INDEXES = _cases("indexes", "the entry point's stderr ({file}: the index.parquet)", [
    ("idx_crop_jpg_absolute", "l2cs/run_valid_l2cs.py: a crop row's jpg_path absolute (another crop's image)",
     [*_ESCAPES, "jpg_path"], 2),
    ("idx_crop_jpg_dotdot", "l2cs/run_valid_l2cs.py: a crop row's jpg_path ../outside.jpg", [*_ESCAPES, "jpg_path"], 2),
    ("idx_crop_png_absolute", "ritnet/test.py: a crop row's png_path (its truth) absolute", [*_ESCAPES, "png_path"], 2),
    ("idx_crop_png_dotdot", "ritnet/test.py: a crop row's png_path ../../maps/x.png", [*_ESCAPES, "png_path"], 2),
    ("idx_clip_video_absolute", "dfer/valid_nia.py: a clip row's video_path absolute", [*_ESCAPES, "video_path"], 2),
    ("idx_clip_video_dotdot", "dfer/valid_nia.py: a clip row's video_path ../x.mp4", [*_ESCAPES, "video_path"], 2),
])
INDEX_FILES = _cases("indexes", "the entry point's stderr ({file}: the file of the case)", [
    ("idx_crop_truth_over_opencv_limit", "ritnet/test.py: a crop's class map (the truth) declaring 40000x40000",
     ["{file}", "OpenCV refuses", "CV_IO_MAX_IMAGE_PIXELS"], 2),
    ("idx_clip_video_swapped", "dfer/valid_nia.py: an mp4 replaced by another clip after nia clips",
     ["{file}", "changed since nia clips indexed it", "run nia clips again"], 2),
    ("idx_clip_video_touched", "dfer/valid_nia.py: an mp4 of the same size, its mtime moved, after nia clips",
     ["{file}", "changed since nia clips indexed it", "mtime_ns"], 2),
])


# --- deliveries (nia prepare SRC DEST, each case alone in SRC beside a good archive) --------------------------

def zip_bytes(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method) as z:
        warnings.simplefilter("ignore")  # "Duplicate name": on purpose
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def zip_raw_names(members: dict[bytes, bytes]) -> bytes:
    """Names as raw bytes with the UTF-8 flag clear (old Korean tools' CP949): ASCII stand-ins of the same
    length are written, then swapped for the raw bytes in both headers."""
    stand_ins = {f"{i}".rjust(len(raw), "Q").encode(): raw for i, raw in enumerate(members)}
    data = zip_bytes([(s.decode(), members[raw]) for s, raw in stand_ins.items()])
    for s, raw in stand_ins.items():
        data = data.replace(s, raw)
    return data


def zip_with_symlink(name: str, target: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok/kept.json", b"{}")
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, target)
    return buf.getvalue()


def bad_crc_zip() -> bytes:
    data = bytearray(zip_bytes([("ok/first.json", b"fine"), ("ok/damaged.json", b"hello world " * 100)]))
    at = data.index(b"ok/damaged.json") + len("ok/damaged.json") + 5  # inside its compressed data
    data[at] ^= 0xFF
    return bytes(data)


def write_parts(folder: Path, name: str, data: bytes, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(data) // n)
    paths = []
    for i in range(n):
        path = folder / f"{name}.part{i}"
        path.write_bytes(data[i * size:(i + 1) * size])
        paths.append(path)
    return paths


def _single(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    def make(src: Path) -> None:
        (src / name).write_bytes(data() if callable(data) else data)
    return make


def _parts_then(edit: Callable[[list[Path]], None]) -> Callable[[Path], None]:
    def make(src: Path) -> None:
        edit(write_parts(src, "bad.zip", zip_bytes([(f"p/{i}.json", b"x" * 300) for i in range(20)]), 3))
    return make


def _both_forms(src: Path) -> None:
    data = zip_bytes([("p/a.json", b"1")])
    (src / "bad.zip").write_bytes(data)
    write_parts(src, "bad.zip", data, 2)


def _many_small_zeros() -> bytes:
    return zip_bytes([(f"z/{i:04d}.bin", b"\0" * 10_000) for i in range(400)])


GOOD_ARCHIVE = ("good.zip", [("g/a.json", b'{"a": 1}'), ("g/b.png", b"\x89PNG fake" * 20)])

DELIVERIES = _cases("deliveries", "nia prepare stderr", [
    ("zip_merge_empty", "parts of 0 bytes", ["refused: bad.zip", "merged archive is empty"], 2,
     _parts_then(lambda parts: [p.write_bytes(b"") for p in parts])),
    ("zip_merge_truncated", "last part cut short", ["refused: bad.zip", "not a complete zip", "bad.zip.part2"], 2,
     _parts_then(lambda parts: parts[-1].write_bytes(parts[-1].read_bytes()[:-40]))),
    ("zip_part_missing", "part1 of 3 missing", ["refused: bad.zip", ".part1 missing"], 2,
     _parts_then(lambda parts: parts[1].unlink())),
    ("zip_merged_and_parts", "bad.zip and bad.zip.partN both in SRC", ["refused: bad.zip", "keep one"], 2, _both_forms),
    ("zip_not_a_zip", "text named .zip", ["refused: bad.zip", "not a complete zip"], 2,
     _single("bad.zip", b"PK? no, just text\n" * 10)),
    ("zip_member_dotdot", "member ../escape.txt", ["refused: bad.zip", "'../escape.txt'", "outside DEST"], 2,
     _single("bad.zip", zip_bytes([("fine.txt", b"1"), ("../escape.txt", b"2")]))),
    ("zip_member_absolute", "member /abs/escape.txt", ["refused: bad.zip", "'/abs/escape.txt'", "outside DEST"], 2,
     _single("bad.zip", zip_bytes([("fine.txt", b"1"), ("/abs/escape.txt", b"2")]))),
    ("zip_member_drive", "member C:\\escape.txt", ["refused: bad.zip", "outside DEST"], 2,
     _single("bad.zip", zip_bytes([("C:\\escape.txt", b"2")]))),
    ("zip_member_symlink", "a symlink member -> /etc/passwd", ["warning: bad.zip", "1 symlink member", "'ok/link'"], 0,
     _single("bad.zip", zip_with_symlink("ok/link", "/etc/passwd"))),
    ("zip_member_duplicate", "one name twice, other contents", ["warning: bad.zip", "1 duplicate member", "'d/a.json'"],
     0, _single("bad.zip", lambda: zip_bytes([("d/a.json", b"first"), ("d/a.json", b"second")]))),
    ("zip_bad_crc", "a member whose data fails its CRC", ["refused: bad.zip", "'ok/damaged.json'", "CRC"], 2,
     _single("bad.zip", bad_crc_zip)),
    ("zip_bomb_member", "50 MB of zeros in 50 kB", ["refused: bad.zip", "expands", "--max-ratio"], 2,
     _single("bad.zip", lambda: zip_bytes([("z.bin", b"\0" * (50 << 20))]))),
    ("zip_bomb_many_small", "400 members of 10 kB zeros", ["refused: bad.zip", "its members expand", "--max-ratio"], 2,
     _single("bad.zip", _many_small_zeros)),
    ("zip_file_vs_folder", "member x as a file and x/y under it", ["refused: bad.zip", "'x/y.json'", "is a file"], 2,
     _single("bad.zip", lambda: zip_bytes([("x", b"file"), ("x/y.json", b"{}")]))),
    ("zip_cp949_names", "member names in CP949, UTF-8 flag clear", [], 0,
     _single("bad.zip", lambda: zip_raw_names({"원천데이터/눈.png".encode("cp949"): b"cp949"}))),
])


# --- trees (nia index ROOT) -----------------------------------------------------------------------------------

TREES = _cases("trees", "nia index stdout/stderr", [
    ("tree_symlink_loop", "a folder symlink to its parent", ["reached again through a symlink", "loop -> ."], 0),
    ("tree_symlink_twice", "a folder symlink to a folder of the tree", ["reached again through a symlink"], 0),
    ("tree_unreadable_folder", "a folder that cannot be listed", ["unreadable: {file}", "Permission denied"], 2),
    ("tree_names_with_spaces", "files and folders with spaces in their names", [], 0),
    ("tree_dangling_symlink", "x.png -> a file that does not exist", ["{file}", "PNG file"], 0),
    ("tree_root_is_a_file", "ROOT is a file", ["{file}", "not a directory"], 2),
])


# --- score-only predictions (--predictions of the three validation entry points) ----------------------------------

def predictions_csv(names: list[str], pitch: list[float], yaw: list[float]) -> str:
    lines = ["name,pitch,yaw"] + [f"{n},{p!r},{y!r}" for n, p, y in zip(names, pitch, yaw)]
    return "\n".join(lines) + "\n"


L2CS_PREDICTIONS = _cases("predictions", "l2cs/run_valid_l2cs.py: stderr / metrics.json", [
    ("pred_missing_row", "one test crop not predicted", ["no verdict", "missing_prediction 1"], 2),
    ("pred_extra_row", "a name outside the split", [], 0),
    ("pred_duplicated", "one crop predicted twice", ["no verdict", "duplicated_prediction 1"], 2),
    ("pred_nan", "pitch NaN", ["no verdict", "nonfinite_prediction 1"], 2),
    ("pred_inf", "yaw inf", ["no verdict", "nonfinite_prediction 1"], 2),
    ("pred_escaping_names", "names ../../../etc/passwd, /abs/x, C:\\x", [], 0),
    ("pred_missing_column", "no yaw column", ["{file}", "yaw"], 2),
    ("pred_not_a_number", "pitch 'abc'", ["{file}", "pitch"], 2),
    ("pred_empty_file", "0-byte file", ["{file}"], 2),
    ("pred_binary", "random bytes", ["{file}"], 2),
])

# a folder of class-map PNGs {crop id}.png; {file} is the PNG in question (the folder for rit_pred_not_a_folder)
RIT_PREDICTIONS = _cases("predictions", "ritnet/test.py: stderr / metrics.json", [
    ("rit_pred_missing_png", "one test crop's PNG missing", ["no verdict", "missing_prediction 1"], 2),
    ("rit_pred_extra_png", "a PNG of a crop outside the split, a stray text file and a subfolder", [], 0),
    ("rit_pred_duplicated", "X.png and X.PNG", ["no verdict", "duplicated_prediction 1"], 2),
    ("rit_pred_class_out_of_range", "class id 255 (the class map's non-finite)", ["{file}", "class id 255"], 2),
    ("rit_pred_escaping_link", "X.png a symbolic link to the ground truth's class map",
     ["{file}", "symbolic link out of the predictions folder"], 2),
    ("rit_pred_wrong_size", "a class map one pixel wider than its crop", ["{file}", "has size"], 2),
    ("rit_pred_colour", "a 3-channel PNG", ["{file}", "single-channel"], 2),
    ("rit_pred_16bit", "a 16-bit PNG of class ids 0..2 (scored as 8-bit)", [], 0),
    ("rit_pred_empty_file", "0-byte X.png", ["{file}", "cannot be read as a PNG"], 2),
    ("rit_pred_binary", "random bytes as X.png", ["{file}", "cannot be read as a PNG"], 2),
    ("rit_pred_not_a_folder", "--predictions is a file", ["{file}", "not a folder"], 2),
    ("rit_pred_symlink_loop", "X.png a symbolic link to itself", ["{file}", "symbolic link that loops"], 2),
    ("rit_pred_pixel_bomb", "X.png: 0.4 kB declaring 20000x20000 (refused from its header, never inflated)",
     ["{file}", "(20000, 20000)", "not decoded"], 2),
    ("rit_pred_over_opencv_limit", "X.png declaring 40000x40000 (past OpenCV's CV_IO_MAX_IMAGE_PIXELS)",
     ["{file}", "(40000, 40000)", "not decoded"], 2),
])

# CSV name,label (F, S, D, A, N)
DFER_PREDICTIONS = _cases("predictions", "dfer/valid_nia.py: stderr / metrics.json", [
    ("dfer_pred_missing_row", "one test clip not predicted", ["no verdict", "missing_prediction 1"], 2),
    ("dfer_pred_extra_row", "a clip outside the split", [], 0),
    ("dfer_pred_duplicated", "one clip as X and as X.mp4", ["no verdict", "duplicated_prediction 1"], 2),
    ("dfer_pred_nan", "label 'nan' (a state has no non-finite value)", ["{file}", "line 4", "label", "'nan'"], 2),
    ("dfer_pred_unknown_label", "label 'f' (lower case)", ["{file}", "line 2", "'f'", "F, S, D, A, N"], 2),
    ("dfer_pred_escaping_names", "names ../../../etc/passwd, /abs/x.mp4, C:\\x.mp4", [], 0),
    ("dfer_pred_missing_column", "no label column", ["{file}", "label"], 2),
    ("dfer_pred_empty_file", "0-byte file", ["{file}", "not a readable CSV"], 2),
    ("dfer_pred_binary", "random bytes", ["{file}", "not a readable CSV"], 2),
])

PREDICTIONS = L2CS_PREDICTIONS + RIT_PREDICTIONS + DFER_PREDICTIONS


# --- weights (--weights of the three validation entry points) --------------------------------------------------

MARKER_NAME = "pwned.marker"


class RunsCode:
    """Unpickling this calls ``os.system`` to create a marker file: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def pickle_that_runs_code(path: Path, marker: Path, *, legacy: bool = False) -> None:
    """A torch.save file whose unpickling would run ``touch marker`` (a plain pickle reduce); ``legacy``: in
    the stream format of torch < 1.6 (RIT-Net's shipped ``best_model.pkl`` is one)."""
    import torch

    torch.save({"fc_yaw_gaze.weight": RunsCode(marker)}, path, _use_new_zipfile_serialization=not legacy)


TORCHSCRIPT_SOURCE = """
from typing import Tuple

import torch


class Payload(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.zeros(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        # torch.from_file(shared=True) creates the file: what torch.jit.load runs when it loads the archive
        self.w = state[0] + torch.from_file({marker!r}, True, 2)
        self.training = state[1]
"""


def torchscript_that_runs_code(path: Path, marker: Path) -> None:
    """A TorchScript archive whose ``__setstate__`` creates ``marker`` when loaded: torch 1.13's
    ``torch.load(weights_only=True)`` hands such a zip to ``torch.jit.load``, which runs it."""
    import importlib.util

    import torch

    source = path.parent / f"{path.stem}_torchscript.py"   # torch.jit.script reads the class's source file
    source.write_text(TORCHSCRIPT_SOURCE.format(marker=str(marker)))
    spec = importlib.util.spec_from_file_location(source.stem, source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.jit.script(module.Payload()).save(str(path))


def _weights_that_run_code(test: str) -> tuple:
    """The weights cases whose loading would run code (the marker must never appear), alike for every test
    (``test``: the id prefix)."""
    return (
        (f"{test}weights_pickle_runs_code", "a pickle whose loading runs os.system",
         ["{file}", "refused: the pickle calls posix.system"], 2),
        (f"{test}weights_legacy_runs_code", "the same in torch's pre-1.6 stream format",
         ["{file}", "refused: the pickle calls posix.system"], 2),
        (f"{test}weights_torchscript", "a TorchScript archive whose __setstate__ creates a file",
         ["{file}", "refused: a TorchScript archive"], 2),
    )


L2CS_WEIGHTS = _cases("weights", "l2cs/run_valid_l2cs.py: stderr", [
    ("weights_empty", "0-byte file", ["{file}"], 2),
    ("weights_truncated", "our checkpoint cut in half", ["{file}", "damaged safetensors"], 2),
    ("weights_random", "4 kB of random bytes", ["{file}", "not a loadable weights file"], 2),
    ("weights_other_model", "a torchvision ResNet-18 state_dict", ["{file}", "nor an original L2CS-Net state_dict"], 2),
    ("weights_wrong_shapes", "our checkpoint of another width", ["{file}"], 2),
    *_weights_that_run_code(""),
])

RIT_WEIGHTS = _cases("weights", "ritnet/test.py: stderr", [
    ("rit_weights_empty", "0-byte file", ["{file}", "not a loadable weights file"], 2),
    ("rit_weights_truncated", "our checkpoint cut in half", ["{file}", "damaged safetensors"], 2),
    ("rit_weights_random", "4 kB of random bytes", ["{file}", "not a loadable weights file"], 2),
    ("rit_weights_other_model", "a torchvision ResNet-18 state_dict", ["{file}", "not a RITnet DenseNet2D state_dict"], 2),
    ("rit_weights_other_test", "our L2CS-Net checkpoint", ["{file}", "'nia-l2cs/2', expected nia-rit/1"], 2),
    ("rit_weights_wrong_shapes", "our checkpoint whose config says another width", ["{file}", "config says 8"], 2),
    *_weights_that_run_code("rit_"),
])

DFER_WEIGHTS = _cases("weights", "dfer/valid_nia.py: stderr", [
    ("dfer_weights_empty", "0-byte file", ["{file}", "not a loadable weights file"], 2),
    ("dfer_weights_truncated", "our checkpoint cut in half", ["{file}", "damaged safetensors"], 2),
    ("dfer_weights_random", "4 kB of random bytes", ["{file}", "not a loadable weights file"], 2),
    ("dfer_weights_other_model", "a torchvision ResNet-18 state_dict", ["{file}", "not a Former-DFER checkpoint"], 2),
    ("dfer_weights_other_test", "our RIT-Net checkpoint", ["{file}", "'nia-rit/1', expected nia-dfer/1"], 2),
    ("dfer_weights_wrong_shapes", "our checkpoint whose config says another width",
     ["{file}", "weights do not fit FormerDFER"], 2),
    *_weights_that_run_code("dfer_"),
])

WEIGHTS = L2CS_WEIGHTS + RIT_WEIGHTS + DFER_WEIGHTS


def weights_kind(case: Case) -> str:
    """The kind of bad weights a case is, whichever test it is for: ``rit_weights_empty`` -> ``weights_empty``."""
    return case.id[case.id.index("weights_"):]


def write_hostile_weights(kind: str, path: Path, ours: Path, marker: Path, *, format_tag: str, wider: dict[str, Any],
                          other_test: Path | None = None) -> None:
    """Write the bad weights file of ``kind`` to ``path``.

    ``ours``: a checkpoint of the test's own ``format_tag`` (safetensors + JSON); ``wider``: config entries that,
    written into its header, make it describe another width than its tensors have; ``other_test``: a
    checkpoint of another of the suite's tests.
    """
    import torch

    if kind == "weights_empty":
        path.write_bytes(b"")
    elif kind == "weights_truncated":
        data = ours.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif kind == "weights_random":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "weights_other_model":
        import torchvision

        torch.save(torchvision.models.resnet18().state_dict(), path)
    elif kind == "weights_other_test":
        assert other_test is not None
        path.write_bytes(other_test.read_bytes())
    elif kind == "weights_wrong_shapes":
        from common.engine.checkpoint import read_checkpoint, save_checkpoint

        state = read_checkpoint(ours, (format_tag,))
        state["config"].update(wider)
        save_checkpoint(path, state, format_tag)
    elif kind == "weights_pickle_runs_code":
        pickle_that_runs_code(path, marker)
    elif kind == "weights_legacy_runs_code":
        pickle_that_runs_code(path, marker, legacy=True)
    elif kind == "weights_torchscript":
        torchscript_that_runs_code(path, marker)
    else:
        raise ValueError(f"unknown kind of weights {kind!r}")


# --- reports (nia report RESULTS_DIR... and nia suite over result folders and report.json) --------------------

REPORTS = _cases("reports", "nia report / nia suite: stderr, stdout, report.json", [
    ("report_per_sample_absolute", "metrics.json's per_sample_file: another run's per_sample.csv, absolute",
     ["{file}", "per_sample_file", "outside the results folder"], 2),
    ("report_per_sample_dotdot", "per_sample_file ../other/per_sample.csv",
     ["{file}", "per_sample_file", "outside the results folder"], 2),
    ("report_per_sample_link", "per_sample.csv a symbolic link to another run's file",
     ["{file}", "per_sample_file", "outside the results folder"], 2),
    ("report_overlay_outside", "a RIT-Net overlay named by an absolute path to a PNG elsewhere",
     ["overlay", "{file}", "outside the result folder"], 1),
    ("report_stale_folder", "nia report --run-id, one of three folders from an earlier run",
     ["{file}", "stale results, not filed"], 2),
    ("table_edited_verdict", "report.json's verdict edited to PASS, value under the threshold",
     ["{file}", "says PASS", "give FAIL"], 2),
    ("table_report_not_its_folder", "report.json's value and verdict edited together, the folder as it was",
     ["{file}", "differ from what"], 2),
    ("suite_undeletable_result", "nia suite run, an earlier metrics.json in a read-only folder",
     ["cannot remove the earlier run's results", "{file}"], 2),
    ("forged_rows_booked_missing", "failing rows deleted and booked as missing_image, SHA-256 recomputed",
     ["skipped missing_image is 8; the data gives 0"], 1),
    ("forged_rows_booked_unreadable", "failing rows deleted and booked as unreadable_image",
     ["only 0 of the unscored samples' files fail to decode"], 1),
    ("forged_gaze_truth", "true_pitch/true_yaw set to the prediction, SHA-256 recomputed",
     ["true_pitch/true_yaw of", "differ from the data's gaze labels"], 1),
    ("forged_state_truth", "Former-DFER truth set to the prediction", ["truth of", "observer state"], 1),
    ("forged_iris_dropped", "RIT-Net's iris columns dropped, mIoU over the other two",
     ["per_sample.csv scores classes", "RIT-Net's are"], 1),
    ("forged_class_map_counts", "RIT-Net's inter_ columns raised to the unions", ["do not fit the data's class maps"],
     1),
    ("forged_without_data", "a consistent forgery, no data at hand", ["not checked against the data", "run's own"],
     0),
])


# --- outputs and options ------------------------------------------------------------------------------------------

OUTPUTS = _cases("outputs", "stderr", [
    ("out_index_read_only", "nia index --out in a read-only folder", ["{file}", "cannot write in this folder"], 2),
    ("out_index_is_folder", "nia index --out DIR", ["'--out'", "is a directory"], 2),
    ("out_stats_read_only", "nia stats --out read-only", ["{file}", "cannot write in this folder"], 2),
    ("out_stats_is_file", "nia stats --out FILE", ["'--out'", "is a file"], 2),
    ("out_split_read_only", "nia split --out read-only (manifest unchanged)", ["{file}", "cannot write in this folder"], 2),
    ("out_split_manifest_read_only", "nia split, manifest in a read-only folder (lists unchanged)",
     ["{file}", "cannot write in this folder"], 2),
    ("out_crops_read_only", "nia crops OUT read-only", ["{file}", "cannot write in this folder"], 2),
    ("out_crops_is_file", "nia crops OUT a file", ["'OUT'", "is a file"], 2),
    ("out_clips_read_only", "nia clips OUT read-only", ["{file}", "cannot write in this folder"], 2),
    ("out_prepare_dest_is_file", "nia prepare SRC FILE", ["'DEST'", "is a file"], 2),
    ("out_prepare_dest_read_only", "nia prepare into a read-only DEST", ["{file}", "cannot write in this folder"], 2),
    ("out_valid_read_only", "run_valid_l2cs.py --out read-only: no metrics.json", ["{file}", "Read-only"], 2),
    ("out_valid_is_file", "run_valid_l2cs.py --out FILE", ["'--out'", "is a file"], 2),
    ("out_train_read_only", "l2cs/train.py --out read-only", ["{file}", "Read-only"], 2),
    ("full_crops", "nia crops on a full disk: no empty or partial crop under its name",
     ["{file}", "No space left on device"], 2),
    ("full_stats", "nia stats --out on a full disk", ["{file}", "No space left on device"], 2),
    ("full_split", "nia split on a full disk: manifest unchanged", ["{file}", "No space left on device"], 2),
    ("full_prepare", "nia prepare into a nearly full disk (free-space guard)", ["refused: good.zip", "free"], 2),
    ("full_train", "l2cs/train.py --out on a full disk", ["{file}", "No space left on device"], 2),
    ("full_train_writer_cleans_up", "l2cs/train.py: the weights writer removes its partial file, then raises its "
     "own error (safetensors 0.8 on a full disk)", ["{file}", "No space left on device"], 2),
    ("quota_train", "l2cs/train.py: the weights writer's own error for an exceeded disk quota",
     ["{file}", "Disk quota exceeded"], 2),
])

OPTIONS = _cases("options", "stderr", [
    ("opt_index_workers_negative", "nia index --workers -3", ["'--workers'", "-3"], 2),
    ("opt_split_counts_over", "nia split --counts 1000,0,0 on 16 frames", ["--counts ask for 1000 frames", "16"], 2),
    ("opt_split_ratios_negative", "nia split --ratios 80,-10,30", ["ratios", "non-negative"], 2),
    ("opt_crops_workers_zero", "nia crops --workers 0", ["'--workers'", "0"], 2),
    ("opt_prepare_ratio_below_one", "nia prepare --max-ratio 0.5", ["'--max-ratio'"], 2),
    ("opt_prepare_size_garbage", "nia prepare --min-free lots", ["'--min-free'", "lots"], 2),
    ("opt_valid_batch_zero", "run_valid_l2cs.py --batch-size 0", ["'--batch-size'"], 2),
])

# --- the suite's own runs: make validate-*, nia suite, the verdict table (tests/hostile/test_hostile_suite.py) -------------

SUITE_RUNS = _cases("suite", "make validate-* / nia suite table: stderr, the table's reason", [
    ("suite_fail_exit_code", "make validate-all where a test FAILs (make itself exits 2)",
     ["suite: a test FAILED (exit 1)"], 1),
    ("suite_image_missing", "the test's image neither built nor loaded (docker would pull it)",
     ["image nia_demo_l2cs not found", "make build-l2cs", "make load"], 2),
    ("suite_data_missing", "DATA a path that does not exist (dockerd would create it as root)",
     ["{file}", "not found", "nothing was run"], 2),
    ("suite_weights_missing", "WEIGHTS a file that does not exist", ["{file}", "not found", "nothing was run"], 2),
    ("suite_verdict_once", "make validate-l2cs: the container's verdict line and the report's", ["-> PASS"], 0),
    ("suite_cpu_fallback_warning", "--device cuda where no GPU is visible",
     ["warning: device 'cuda' requested but no CUDA GPU is visible: running on the CPU"], 0),
    ("suite_reason_after_warning", "a run that died after a Python warning, no report.json",
     ["Error 137"], 2),
    ("suite_exit_file_garbage", "build/results/.suite/TEST.exit holds no number", ["{file}", "not an exit code"], 2),
    ("report_metrics_utf16", "nia report on a metrics.json in UTF-16", ["{file}", "not UTF-8 text"], 2),
    ("report_metrics_empty", "nia report on a 0-byte metrics.json", ["{file}", "not valid JSON"], 2),
    ("report_metrics_array", "nia report on a metrics.json that is a JSON array", ["{file}", "expected an object"], 2),
    ("report_per_sample_utf16", "nia report on a per_sample.csv in UTF-16", ["{file}", "not UTF-8 text"], 2),
    ("report_per_sample_empty", "nia report on a 0-byte per_sample.csv", ["{file}", "not a readable CSV"], 2),
])

# --- the --data of the validation entry points: a damaged index (tests/hostile/test_hostile_rit_dfer.py) --------------------

DATASETS = _cases("datasets", "ritnet/test.py / dfer/valid_nia.py: stderr", [
    ("data_index_garbage", "index.parquet of random bytes", ["{file}", "not a readable parquet file"], 2),
    ("data_index_truncated", "index.parquet cut in half", ["{file}", "not a readable parquet file"], 2),
    ("data_null_subject", "a test crop whose subject is null (the bootstrap resamples subjects)",
     ["{file}", "field 'subject'", "empty"], 2),
    ("data_clip_null_subject", "a test clip whose subject is null", ["{file}", "field 'subject'", "empty"], 2),
    ("data_clip_index_as_manifest", "ritnet/test.py --data a clip index.parquet (nia crops crashed on it: KeyError)",
     ["{file}", "not a manifest"], 2),
    ("data_error_in_worker", "a data error raised in a DataLoader worker (--workers 2, the containers' default)",
     ["{file}", "could not decode"], 2),
])

ALL: list[Case] = (LABELS + PNGS + VIDEOS + COVERAGE + INDEXES + INDEX_FILES + DELIVERIES + TREES + PREDICTIONS + WEIGHTS
                   + REPORTS + OUTPUTS + OPTIONS + SUITE_RUNS + DATASETS)


def by_id(cases: list[Case]) -> dict[str, Case]:
    return {c.id: c for c in cases}


def markdown_table() -> str:
    """The table of docs/reliability.md: area, case, input -> where the line is and what it holds -> exit code."""
    lines = ["| area | case | input | the line is in | it holds | exit |", "|---|---|---|---|---|---|"]
    for c in ALL:
        shown = " ... ".join(f"`{part}`" for part in c.line) if c.line else "(no line: handled)"
        lines.append(f"| {c.area} | `{c.id}` | {c.input} | {c.where} | {shown} | {c.code} |")
    return "\n".join(lines)


def counts() -> dict[str, int]:
    out: dict[str, int] = {}
    for c in ALL:
        out[c.area] = out.get(c.area, 0) + 1
    return out


if __name__ == "__main__":
    print(markdown_table())
    print(counts(), len(ALL))
