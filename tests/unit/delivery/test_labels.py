"""Label parsing: the published example verbatim, accepted variations, every
enumeration, and the malformed corpus (each error names the exact JSON path)."""
import json

import pytest

from common.delivery.labels import (CONDITION, IMAGE, INST, POSTURE, SHAPE_OF_LABEL, LabelError, load_label,
                           load_video_label, parse_label, parse_video_label)
from tests.conftest import PUBLISHED_EXAMPLE_TEXT, make_label_dict
from tests.paths import FIXTURES

CORPUS = FIXTURES / "labels"
CASES = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))


def test_published_example_verbatim(tmp_path):
    path = tmp_path / "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_232.json"
    path.write_text(PUBLISHED_EXAMPLE_TEXT, encoding="utf-8")
    label = load_label(path)
    assert (label.name, label.inst, label.image, label.condition, label.posture, label.metaid) == (
        "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_232.png", "S", "rgb", "F", "D", "001")
    assert [s.label for s in label.shapes] == ["r_iris", "l_iris", "r_eyelid", "l_eyelid", "l_center", "r_center"]
    iris = label.shape("r_iris")
    assert (iris.cx, iris.cy, iris.rx, iris.ry, iris.rotate) == (1021.5, 292.5, 12.5, 10.5, 0.0)
    assert iris.points == ((1009.0, 282.0), (1034.0, 303.0))
    assert len(label.shape("l_eyelid").points) == 16
    assert label.shape("r_center").points == ((1021.5, 292.5),)
    assert label.head == (-24.6848, 6.2168, -0.4095)
    assert label.cam == (-96.57, -1.45, 11.05)
    assert label.point == (1913.0, 1076.0)
    assert (label.distance_cam, label.distance_display) == (53.0, 53.0)
    assert label.key_spelling == "annotations"
    assert label.missing_eyes() == ()
    assert label.file == str(path)


def test_byte_order_mark_is_valid(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + PUBLISHED_EXAMPLE_TEXT.encode("utf-8"))
    assert load_label(path).metaid == "001"


def test_published_misspelling_annatations():
    d = make_label_dict()
    d["Annotations"]["annatations"] = d["Annotations"].pop("annotations")
    label = parse_label(d, "x.json")
    assert label.key_spelling == "annatations"
    assert label.shape("l_iris").cx == 890.0


def test_pose_and_distance_at_the_root():
    d = make_label_dict()
    d["pose"] = d["Annotations"].pop("pose")
    d["distance"] = d["Annotations"].pop("distance")
    d["distance"]["cam"] = 61.5
    label = parse_label(d, "x.json")
    assert label.distance_cam == 61.5
    assert label.point == (1913.0, 1076.0)


@pytest.mark.parametrize("field,values", [("inst", INST), ("image", IMAGE), ("condition", CONDITION),
                                          ("posture", POSTURE)])
def test_every_enumeration_value_is_accepted(field, values):
    for value in values:
        assert getattr(parse_label(make_label_dict(**{field: value}), "x.json"), field) == value


def test_enumerations_are_exactly_the_published_ones():
    assert INST == ("S", "T", "L", "V", "M")
    assert IMAGE == ("rgb", "ir")
    assert CONDITION == ("F", "S", "D", "A", "N")
    assert POSTURE == ("S", "D", "P", "L", "F", "C", "H", "E", "T", "U")
    assert set(SHAPE_OF_LABEL) == {"r_iris", "l_iris", "r_eyelid", "l_eyelid", "r_center", "l_center"}


def test_ellipse_rotate_and_points_are_optional():
    d = make_label_dict()
    del d["Annotations"]["annotations"][0]["rotate"]
    del d["Annotations"]["annotations"][0]["points"]
    d["Annotations"]["annotations"][1]["rotate"] = 15.5
    label = parse_label(d, "x.json")
    assert label.shape("r_iris").rotate == 0.0 and label.shape("r_iris").points == ()
    assert label.shape("l_iris").rotate == 15.5


def test_missing_eyes_are_valid_but_listed():
    d = make_label_dict()
    d["Annotations"]["annotations"] = [s for s in d["Annotations"]["annotations"]
                                       if s["label"] not in ("l_iris", "r_eyelid")]
    label = parse_label(d, "x.json")
    assert label.missing_eyes() == ("l_iris", "r_eyelid")
    assert label.shape("l_iris") is None


def test_corpus_has_at_least_20_cases():
    files = {p.name for p in CORPUS.glob("*.json")} - {"cases.json"}
    assert len(CASES) >= 20
    assert files == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_label_names_its_field(name):
    path = CORPUS / name
    with pytest.raises(LabelError) as err:
        load_label(path)
    assert err.value.path == CASES[name]["path"]
    assert str(err.value).startswith(f"{path}: {CASES[name]['path']}: ")


def test_video_label():
    obj = {"Annotations": {"name": "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L.mp4", "inst": "S", "image": "rgb",
                           "condition": "F", "posture": "D", "metaid": "001", "fps": 30, "n_frames": 90}}
    video = parse_video_label(obj, "v.json")
    assert (video.fps, video.n_frames, video.condition) == (30.0, 90, "F")
    obj["Annotations"]["n_frames"] = 2.5
    with pytest.raises(LabelError) as err:
        parse_video_label(obj, "v.json")
    assert err.value.path == "Annotations.n_frames"
    del obj["Annotations"]["fps"]
    with pytest.raises(LabelError, match=r"v.json: Annotations.fps: required field is missing"):
        parse_video_label(obj, "v.json")


def test_unreadable_file_is_a_label_error(tmp_path):
    with pytest.raises(LabelError) as err:
        load_video_label(tmp_path / "absent.json")
    assert err.value.path == "$" and "cannot read" in err.value.message


def test_huge_integer_and_object_label_are_label_errors_not_crashes():
    d = make_label_dict()
    d["Annotations"]["pose"]["head"][1] = 10 ** 400
    with pytest.raises(LabelError) as err:
        parse_label(d, "x.json")
    assert (err.value.path, err.value.message) == (
        "Annotations.pose.head[1]", "expected a finite number, got an integer too large for a float")
    d = make_label_dict()
    d["Annotations"]["annotations"][2]["points"][3] = [10 ** 400, 1]
    with pytest.raises(LabelError, match=r"annotations\[2\]\.points\[3\]\[0\]: expected a finite number"):
        parse_label(d, "x.json")
    d = make_label_dict()
    d["Annotations"]["annotations"][1]["label"] = {"name": "l_iris"}
    with pytest.raises(LabelError) as err:
        parse_label(d, "x.json")
    assert err.value.path == "Annotations.annotations[1].label"
