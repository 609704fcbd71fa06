"""NIA file names, parsed by position (letters repeat across fields: never by letter).

``NIA22EYE_{site}_{subject}_{try}_{scenario}_{device}_{type}_{state}_{posture}_{direction}[_{frame}]``:
10 fields name a video (and its sensor tracks), 11 a frame. Fields whose
meaning is unknown (site, try, scenario, direction) are kept verbatim.
"""
from __future__ import annotations

from dataclasses import dataclass

from common.delivery.labels import LabelIdentity

PREFIX = "NIA22EYE"
DEVICES = ("S", "T", "L", "V", "M")
TYPES = ("rgb", "ir", "cam", "dcam", "ddisp", "head", "point")
STATES = ("F", "S", "D", "A", "N")
POSTURES = ("S", "D", "P", "L", "F", "C", "H", "E", "T", "U", "K")
OLD_POSTURE = {"K": "T"}  # the builder renamed posture K to T
_EXTENSIONS = (".png", ".json", ".mp4", ".jpg")


class FileNameError(ValueError):
    """A file name that does not follow the NIA pattern; says which field is wrong."""


@dataclass(frozen=True, slots=True)
class NiaName:
    """The fields of one NIA file name (``frame`` is None for a video name)."""

    site: str
    subject: str
    attempt: str
    scenario: str
    device: str
    image_type: str
    state: str
    posture_code: str
    direction: str
    frame: int | None

    @property
    def video_stem(self) -> str:
        """The first 10 fields: the stem of the video this name belongs to."""
        return "_".join((PREFIX, self.site, self.subject, self.attempt, self.scenario, self.device,
                         self.image_type, self.state, self.posture_code, self.direction))


def stem_of(name: str) -> str:
    """``x.png`` -> ``x`` for the NIA extensions (case-insensitive); other text unchanged."""
    lower = name.lower()
    for ext in _EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def parse_name(name: str) -> NiaName:
    """Parse a file name or stem (directory part ignored); raises FileNameError."""
    stem = stem_of(name.replace("\\", "/").rsplit("/", 1)[-1])
    f = stem.split("_")
    if len(f) not in (10, 11):
        raise FileNameError(f"{stem!r}: expected 10 (video) or 11 (frame) '_'-separated fields, got {len(f)}")
    checks = ((0, "prefix", (PREFIX,)), (5, "device", DEVICES), (6, "type", TYPES),
              (7, "state", STATES), (8, "posture", POSTURES))
    for pos, field, allowed in checks:
        if f[pos] not in allowed:
            raise FileNameError(f"{stem!r}: field {pos + 1} ({field}) must be one of {', '.join(allowed)}, got {f[pos]!r}")
    if not f[2].isdigit():
        raise FileNameError(f"{stem!r}: field 3 (subject) must be digits, got {f[2]!r}")
    frame = None
    if len(f) == 11:
        if not f[10].isdigit():
            raise FileNameError(f"{stem!r}: field 11 (frame) must be digits, got {f[10]!r}")
        frame = int(f[10])
    return NiaName(f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], frame)


def try_parse_name(name: str) -> NiaName | None:
    """Like parse_name, but None when the name does not parse."""
    try:
        return parse_name(name)
    except FileNameError:
        return None


def name_mismatches(nia: NiaName, label: LabelIdentity, file_stem: str | None = None) -> list[str]:
    """Every disagreement between a file name and its JSON, as ``field: name X, json Y``.

    ``file_stem`` (the stem of the JSON file) is compared with the JSON's own
    ``name`` field when given.
    """
    out = []
    posture = OLD_POSTURE.get(nia.posture_code, nia.posture_code)
    for field, in_name, in_json in (("device", nia.device, label.inst), ("type", nia.image_type, label.image),
                                    ("state", nia.state, label.condition), ("posture", posture, label.posture),
                                    ("subject", nia.subject, label.metaid)):
        if in_name != in_json:
            out.append(f"{field}: name {in_name}, json {in_json}")
    if file_stem is not None and stem_of(label.name) != file_stem:
        out.append(f"name: file {file_stem}, json {label.name}")
    return out
