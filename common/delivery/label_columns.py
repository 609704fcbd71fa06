"""Fast path of `nia index`: one frame label's bytes -> its manifest label columns.

``msgspec`` decodes and type-checks a label in C straight into typed structs
(about 2x faster than ``json.loads`` alone, and the validation comes free).
What the structs cannot say (one spelling of ``annotations``, ``pose`` and
``distance`` in exactly one place, no duplicate shape, the person id) is
checked here in a few lines. A label that fails *anything* returns ``None``
and the caller runs the precise checker (:func:`common.delivery.labels.parse_label`),
which accepts or rejects it with the usual file / JSON path / message. The
fast path is therefore only ever stricter than the slow one, never looser;
``tests/unit/delivery/test_index_fastpath.py`` checks that both give identical rows.

Column order is ``common.delivery.manifest.schema.LABEL_FIELDS`` followed by the mismatch text;
eyelids are lists of (x, y) points (the batch builder flattens them in one go).
"""
from __future__ import annotations

import re
import types
from typing import Annotated, Literal, Union

import msgspec
from msgspec import UNSET, UnsetType

from common.delivery.filenames import (DEVICES, OLD_POSTURE, POSTURES, PREFIX, STATES, TYPES, NiaName, name_mismatches,
                              stem_of)
from common.delivery.labels import CONDITION, IMAGE, INST, POSTURE, LabelIdentity

_BOM = b"\xef\xbb\xbf"
# a NIA stem with plain ASCII fields (no '.', which stem_of could strip): the
# overwhelming case; anything else goes to common.delivery.filenames.parse_name
_FREE = r"[^_./\\]*"  # a field kept verbatim
NAME_PATTERN = (rf"{PREFIX}_(?P<site>{_FREE})_(?P<subject>[0-9]+)_(?P<attempt>{_FREE})"
                rf"_(?P<scenario>{_FREE})_(?P<device>{'|'.join(DEVICES)})_(?P<image_type>{'|'.join(TYPES)})"
                rf"_(?P<state>{'|'.join(STATES)})_(?P<posture_code>{'|'.join(POSTURES)})_(?P<direction>{_FREE})"
                r"(?:_(?P<frame>[0-9]{1,18}))?")
_NAME_RE = re.compile(NAME_PATTERN)

Point = tuple[float, float]
Radius = Annotated[float, msgspec.Meta(gt=0)]
Distance = Annotated[float, msgspec.Meta(ge=0)]
_NONE5 = (None,) * 5


class _Iris(msgspec.Struct):
    shape: Literal["Ellipse"]
    cx: float
    cy: float
    rx: Radius
    ry: Radius
    rotate: float = 0.0
    points: Union[list[Point], UnsetType] = UNSET


class _Eyelid(msgspec.Struct):
    shape: Literal["Polygon"]
    points: Annotated[list[Point], msgspec.Meta(min_length=3)]


class _Center(msgspec.Struct):
    shape: Literal["Point"]
    points: Annotated[list[Point], msgspec.Meta(min_length=1, max_length=1)]


def _tagged(base: type, label: str) -> type:
    """A subclass of ``base`` that decodes only shapes whose ``label`` is ``label`` (the tag)."""
    return types.new_class(label.title().replace("_", ""), (base,), {"tag_field": "label", "tag": label})


# one struct per shape label, so that label/shape agreement is checked in C
RIris, LIris = _tagged(_Iris, "r_iris"), _tagged(_Iris, "l_iris")
REyelid, LEyelid = _tagged(_Eyelid, "r_eyelid"), _tagged(_Eyelid, "l_eyelid")
RCenter, LCenter = _tagged(_Center, "r_center"), _tagged(_Center, "l_center")
_Shapes = list[Union[RIris, LIris, REyelid, LEyelid, RCenter, LCenter]]


class _Pose(msgspec.Struct):
    head: tuple[float, float, float]
    cam: tuple[float, float, float]
    point: tuple[float, float]


class _Distance(msgspec.Struct):
    cam: Distance
    display: Distance


class _Annotations(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    inst: Literal[INST]
    image: Literal[IMAGE]
    condition: Literal[CONDITION]
    posture: Literal[POSTURE]
    metaid: str
    annotations: Union[_Shapes, UnsetType] = UNSET
    annatations: Union[_Shapes, UnsetType] = UNSET
    pose: Union[_Pose, UnsetType] = UNSET
    distance: Union[_Distance, UnsetType] = UNSET


class _Root(msgspec.Struct):
    Annotations: _Annotations
    pose: Union[_Pose, UnsetType] = UNSET
    distance: Union[_Distance, UnsetType] = UNSET


_DECODER = msgspec.json.Decoder(_Root)


def _one(inside, outside):
    """The section that is set in exactly one place, else None (the slow path explains)."""
    if inside is UNSET:
        return None if outside is UNSET else outside
    return inside if outside is UNSET else None


def fast_mismatch(stem: str, name: str, inst: str, image: str, condition: str, posture: str, metaid: str) -> str:
    """``;``-joined name/JSON disagreements, as :func:`common.delivery.filenames.name_mismatches` words them."""
    m = _NAME_RE.fullmatch(stem)
    if m is None:
        return None  # type: ignore[return-value]  # caller falls back to the precise path
    g = m.groups()
    if ((g[4], g[5], g[6], OLD_POSTURE.get(g[7], g[7]), g[1]) == (inst, image, condition, posture, metaid)
            and (name == stem + ".png" or stem_of(name) == stem)):
        return ""
    nia = NiaName(*g[:9], int(g[9]) if g[9] else None)
    return ";".join(name_mismatches(nia, LabelIdentity("", name, inst, image, condition, posture, metaid), stem))


def frame_columns(data: bytes, stem: str) -> tuple | None:
    """Label columns + mismatch text of one frame label, or None if the slow path must decide."""
    if data[:3] == _BOM:
        data = data[3:]
    try:
        root = _DECODER.decode(data)
    except (msgspec.DecodeError, ValueError):  # ValidationError is a DecodeError; bad UTF-8 a ValueError
        return None
    a = root.Annotations
    shapes = _one(a.annotations, a.annatations)
    pose = _one(a.pose, root.pose)
    dist = _one(a.distance, root.distance)
    metaid = a.metaid
    if shapes is None or pose is None or dist is None or len(metaid) != 3 or not metaid.isdigit():
        return None
    by = {type(s): s for s in shapes}
    if len(by) != len(shapes):
        return None  # duplicate shape label
    mismatch = fast_mismatch(stem, a.name, a.inst, a.image, a.condition, a.posture, metaid)
    if mismatch is None:
        return None
    ri, li, rc, lc, re_, le = (by.get(RIris), by.get(LIris), by.get(RCenter), by.get(LCenter),
                               by.get(REyelid), by.get(LEyelid))
    return (a.inst, a.image, a.condition, a.posture, metaid, *pose.head, *pose.cam, *pose.point,
            dist.cam, dist.display,
            *((ri.cx, ri.cy, ri.rx, ri.ry, ri.rotate) if ri else _NONE5),
            *((li.cx, li.cy, li.rx, li.ry, li.rotate) if li else _NONE5),
            *(rc.points[0] if rc else (None, None)), *(lc.points[0] if lc else (None, None)),
            re_.points if re_ else None, le.points if le else None, mismatch)
