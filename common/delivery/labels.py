"""Parse and validate one NIA label JSON into a typed, frozen record.

Accepted variations, all seen in or implied by the published format:
``annotations`` or the published misspelling ``annatations``; ``pose`` and
``distance`` inside ``Annotations`` (as in the published example) or at the
root; a UTF-8 byte-order mark. Everything else is checked strictly and a bad
label raises :class:`LabelError` naming the file, the JSON path of the field
(``Annotations.annotations[3].rx``) and what was expected.

A label without an iris or eyelid shape is *valid* (the annotators may have
skipped a closed or hidden eye); :meth:`Label.missing_eyes` lists what is
absent and ``nia stats`` counts such labels. Numbers must be finite; radii
must be > 0 and distances >= 0.

This is the reference checker. ``nia index`` first tries a C fast path
(:mod:`common.delivery.label_columns`) and comes here only for labels that path
declines, so every error message is made here.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # optional accelerator; the standard library parser is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

INST = ("S", "T", "L", "V", "M")
IMAGE = ("rgb", "ir")
CONDITION = ("F", "S", "D", "A", "N")
POSTURE = ("S", "D", "P", "L", "F", "C", "H", "E", "T", "U")
SHAPE_OF_LABEL = {
    "r_iris": "Ellipse", "l_iris": "Ellipse",
    "r_eyelid": "Polygon", "l_eyelid": "Polygon",
    "r_center": "Point", "l_center": "Point",
}
EYE_LABELS = ("r_iris", "l_iris", "r_eyelid", "l_eyelid")
KEY_SPELLINGS = ("annotations", "annatations")
_BOM = b"\xef\xbb\xbf"
_NUMBER = (int, float)  # exact types: bool is rejected on purpose


class LabelError(ValueError):
    """A label file that cannot be used: names the file, the JSON path and the problem."""

    def __init__(self, file: str, path: str, message: str) -> None:
        super().__init__(f"{file}: {path}: {message}")
        self.file = file
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Shape:
    """One annotated shape; ellipse fields are None for polygons and points."""

    label: str
    shape: str
    points: tuple[tuple[float, float], ...]
    cx: float | None = None
    cy: float | None = None
    rx: float | None = None
    ry: float | None = None
    rotate: float | None = None


@dataclass(frozen=True, slots=True)
class LabelIdentity:
    """The fields frame and video labels share (also what file names are checked against)."""

    file: str
    name: str
    inst: str
    image: str
    condition: str
    posture: str
    metaid: str


@dataclass(frozen=True, slots=True)
class Label(LabelIdentity):
    """One validated frame label (see docs/architecture.md)."""

    shapes: tuple[Shape, ...]
    head: tuple[float, float, float]
    cam: tuple[float, float, float]
    point: tuple[float, float]
    distance_cam: float
    distance_display: float
    key_spelling: str

    def shape(self, label_name: str) -> Shape | None:
        """The shape with this label (``r_iris``...), or None when absent."""
        for s in self.shapes:
            if s.label == label_name:
                return s
        return None

    def missing_eyes(self) -> tuple[str, ...]:
        """Iris/eyelid labels this file lacks (valid, but flagged by ``nia stats``)."""
        present = {s.label for s in self.shapes}
        return tuple(name for name in EYE_LABELS if name not in present)


@dataclass(frozen=True, slots=True)
class VideoLabel(LabelIdentity):
    """The optional video-level ``NAME.json`` next to ``NAME.mp4`` (our own schema)."""

    fps: float
    n_frames: int


def decode_json(data: bytes, file: str) -> Any:
    """Parse JSON bytes (BOM allowed); NaN/Infinity literals parse so that the
    validator can name the field that holds them."""
    if data.startswith(_BOM):
        data = data[3:]
    if _orjson is not None:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass  # maybe NaN/Infinity, or truly broken: the stdlib decides and explains
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise LabelError(file, "$", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise LabelError(file, "$", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise LabelError(file, "$", "not a usable label: arrays or objects nested too deeply to parse") from None


def read_json_file(path: str | Path) -> Any:
    """Read and decode one JSON file; errors are LabelError naming the file."""
    file = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise LabelError(file, "$", f"cannot read: {exc.strerror}") from None
    return decode_json(data, file)


def load_label(path: str | Path) -> Label:
    """Read one label file (UTF-8, BOM allowed) and validate it."""
    return parse_label(read_json_file(path), str(path))


def load_video_label(path: str | Path) -> VideoLabel:
    """Read one video-level label file and validate it."""
    return parse_video_label(read_json_file(path), str(path))


# --- small checkers: each returns the clean value or raises LabelError ---------

def _obj(value: Any, file: str, path: str) -> dict:
    if type(value) is not dict:
        raise LabelError(file, path, f"expected an object, got {_kind(value)}")
    return value


def _req(obj: dict, key: str, file: str, path: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise LabelError(file, f"{path}.{key}" if path else key, "required field is missing") from None


def _choice(value: Any, allowed: tuple[str, ...], file: str, path: str) -> str:
    if value not in allowed or type(value) is not str:
        raise LabelError(file, path, f"expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _text(value: Any, file: str, path: str) -> str:
    if type(value) is not str or not value:
        raise LabelError(file, path, f"expected a non-empty string, got {value!r}")
    return value


def _metaid(value: Any, file: str, path: str) -> str:
    if type(value) is not str or len(value) != 3 or not value.isdigit():
        raise LabelError(file, path, f"expected a person id of three digits 000-999, got {value!r}")
    return value


def _num(value: Any, file: str, path: str) -> float:
    if type(value) not in _NUMBER:
        raise LabelError(file, path, f"expected a number, got {_kind(value)}")
    try:
        value = float(value)
    except OverflowError:  # an integer literal beyond the float range
        raise LabelError(file, path, "expected a finite number, got an integer too large for a float") from None
    if not math.isfinite(value):
        raise LabelError(file, path, f"expected a finite number, got {value}")
    return value


def _vec(value: Any, n: int, file: str, path: str) -> tuple[float, ...]:
    if type(value) is not list or len(value) != n:
        raise LabelError(file, path, f"expected an array of {n} numbers, got {_short(value)}")
    return tuple(_num(v, file, f"{path}[{i}]") for i, v in enumerate(value))


def _points(value: Any, file: str, path: str, at_least: int, at_most: int | None) -> tuple:
    if type(value) is not list:
        raise LabelError(file, path, f"expected an array of [x, y] points, got {_kind(value)}")
    n = len(value)
    if n < at_least or (at_most is not None and n > at_most):
        want = f"exactly {at_least}" if at_least == at_most else f"at least {at_least}"
        raise LabelError(file, path, f"expected {want} point(s), got {n}")
    out = []
    for i, p in enumerate(value):
        # fast path: two plain finite numbers (the overwhelming case)
        if type(p) is list and len(p) == 2 and type(p[0]) in _NUMBER and type(p[1]) in _NUMBER:
            try:
                x, y = float(p[0]), float(p[1])
            except OverflowError:  # a huge integer: _vec names it
                x = y = math.inf
            if math.isfinite(x) and math.isfinite(y):
                out.append((x, y))
                continue
        out.append(_vec(p, 2, file, f"{path}[{i}]"))
    return tuple(out)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = json.dumps(value) if type(value) in (list, dict, str, int, float, bool) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- the record parsers ---------------------------------------------------------

def _annotations_key(ann: dict, file: str) -> str:
    has = [k for k in KEY_SPELLINGS if k in ann]
    if not has:
        raise LabelError(file, "Annotations.annotations", "required field is missing (also looked for 'annatations')")
    if len(has) == 2:
        raise LabelError(file, "Annotations.annatations", "both 'annotations' and 'annatations' are present: which one holds the shapes?")
    return has[0]


def _section(root: dict, ann: dict, key: str, file: str) -> tuple[dict, str]:
    """``pose``/``distance`` sit inside ``Annotations`` (published) or at the root."""
    inside, outside = key in ann, key in root
    if inside and outside:
        raise LabelError(file, f"Annotations.{key}", f"'{key}' is both inside Annotations and at the root")
    if inside:
        return _obj(ann[key], file, f"Annotations.{key}"), f"Annotations.{key}"
    if outside:
        return _obj(root[key], file, key), key
    raise LabelError(file, f"Annotations.{key}", "required field is missing (not at the root either)")


def _shape(item: Any, file: str, path: str) -> Shape:
    item = _obj(item, file, path)
    label = _req(item, "label", file, path)
    if type(label) is not str or label not in SHAPE_OF_LABEL:  # type first: a dict is unhashable
        raise LabelError(file, f"{path}.label", f"expected one of {', '.join(SHAPE_OF_LABEL)}, got {label!r}")
    kind = _choice(_req(item, "shape", file, path), ("Ellipse", "Polygon", "Point"), file, f"{path}.shape")
    if kind != SHAPE_OF_LABEL[label]:
        raise LabelError(file, f"{path}.shape", f"{label} must have shape {SHAPE_OF_LABEL[label]}, got {kind}")
    if kind == "Point":
        return Shape(label, kind, _points(_req(item, "points", file, path), file, f"{path}.points", 1, 1))
    if kind == "Polygon":
        return Shape(label, kind, _points(_req(item, "points", file, path), file, f"{path}.points", 3, None))
    cx = _num(_req(item, "cx", file, path), file, f"{path}.cx")
    cy = _num(_req(item, "cy", file, path), file, f"{path}.cy")
    rx = _num(_req(item, "rx", file, path), file, f"{path}.rx")
    ry = _num(_req(item, "ry", file, path), file, f"{path}.ry")
    for key, r in (("rx", rx), ("ry", ry)):
        if r <= 0:
            raise LabelError(file, f"{path}.{key}", f"expected a radius > 0, got {r}")
    rotate = _num(item["rotate"], file, f"{path}.rotate") if "rotate" in item else 0.0
    pts = _points(item["points"], file, f"{path}.points", 0, None) if "points" in item else ()
    return Shape(label, kind, pts, cx, cy, rx, ry, rotate)


def _header(root: Any, file: str) -> tuple[dict, dict, tuple[str, ...]]:
    """The ``Annotations`` object and its six identity fields (shared by frame and video labels)."""
    root = _obj(root, file, "$")
    ann = _obj(_req(root, "Annotations", file, ""), file, "Annotations")
    p = "Annotations"
    ident = (
        _text(_req(ann, "name", file, p), file, f"{p}.name"),
        _choice(_req(ann, "inst", file, p), INST, file, f"{p}.inst"),
        _choice(_req(ann, "image", file, p), IMAGE, file, f"{p}.image"),
        _choice(_req(ann, "condition", file, p), CONDITION, file, f"{p}.condition"),
        _choice(_req(ann, "posture", file, p), POSTURE, file, f"{p}.posture"),
        _metaid(_req(ann, "metaid", file, p), file, f"{p}.metaid"),
    )
    return root, ann, ident


def parse_label(obj: Any, file: str) -> Label:
    """Validate a decoded frame label; raises LabelError(file, json_path, message)."""
    root, ann, ident = _header(obj, file)
    key = _annotations_key(ann, file)
    items = ann[key]
    if type(items) is not list:
        raise LabelError(file, f"Annotations.{key}", f"expected an array of shapes, got {_kind(items)}")
    shapes = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        shape = _shape(item, file, f"Annotations.{key}[{i}]")
        if shape.label in seen:
            raise LabelError(file, f"Annotations.{key}[{i}].label",
                             f"duplicate {shape.label} (first at [{seen[shape.label]}])")
        seen[shape.label] = i
        shapes.append(shape)
    pose, pp = _section(root, ann, "pose", file)
    dist, dp = _section(root, ann, "distance", file)
    d_cam = _num(_req(dist, "cam", file, dp), file, f"{dp}.cam")
    d_disp = _num(_req(dist, "display", file, dp), file, f"{dp}.display")
    for k, d in (("cam", d_cam), ("display", d_disp)):
        if d < 0:
            raise LabelError(file, f"{dp}.{k}", f"expected a distance >= 0, got {d}")
    return Label(
        file, *ident, tuple(shapes),
        _vec(_req(pose, "head", file, pp), 3, file, f"{pp}.head"),
        _vec(_req(pose, "cam", file, pp), 3, file, f"{pp}.cam"),
        _vec(_req(pose, "point", file, pp), 2, file, f"{pp}.point"),
        d_cam, d_disp, key,
    )


def parse_video_label(obj: Any, file: str) -> VideoLabel:
    """Validate a decoded video label ``{"Annotations": {name, inst, image,
    condition, posture, metaid, fps, n_frames}}``; raises LabelError."""
    _, ann, ident = _header(obj, file)
    fps = _num(_req(ann, "fps", file, "Annotations"), file, "Annotations.fps")
    if fps <= 0:
        raise LabelError(file, "Annotations.fps", f"expected frames per second > 0, got {fps}")
    n_frames = _req(ann, "n_frames", file, "Annotations")
    if type(n_frames) is not int or n_frames < 0:
        raise LabelError(file, "Annotations.n_frames", f"expected a whole number >= 0, got {n_frames!r}")
    return VideoLabel(file, *ident, fps, n_frames)
