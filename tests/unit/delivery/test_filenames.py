"""File names parse by position; every name/JSON disagreement is reported."""
import pytest
from tests.conftest import make_label_dict

from common.delivery.filenames import FileNameError, name_mismatches, parse_name, stem_of, try_parse_name
from common.delivery.labels import parse_label


def test_frame_name_by_position():
    n = parse_name("some/dir/NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_232.png")
    assert (n.site, n.subject, n.attempt, n.scenario, n.device, n.image_type, n.state, n.posture_code,
            n.direction, n.frame) == ("S1", "001", "T1", "S10", "S", "rgb", "F", "D", "L", 232)
    assert n.video_stem == "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L"


def test_repeated_letters_land_in_their_positions():
    # S and T appear in several fields: device T, state S, posture T, direction T
    n = parse_name("NIA22EYE_S1_150_T1_S03_T_ir_S_T_T")
    assert (n.device, n.state, n.posture_code, n.direction, n.frame) == ("T", "S", "T", "T", None)


@pytest.mark.parametrize("name,field", [
    ("NIA22EYE_S1_001_T1_S10_S_rgb_F_D", r"10 \(video\) or 11"),
    ("NIA21EYE_S1_001_T1_S10_S_rgb_F_D_L_1", "prefix"),
    ("NIA22EYE_S1_001_T1_S10_X_rgb_F_D_L_1", "device"),
    ("NIA22EYE_S1_001_T1_S10_S_RGB_F_D_L_1", "type"),
    ("NIA22EYE_S1_001_T1_S10_S_rgb_Q_D_L_1", "state"),
    ("NIA22EYE_S1_001_T1_S10_S_rgb_F_Z_L_1", "posture"),
    ("NIA22EYE_S1_abc_T1_S10_S_rgb_F_D_L_1", "subject"),
    ("NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_x1", "frame"),
])
def test_bad_names_say_which_field(name, field):
    with pytest.raises(FileNameError, match=field):
        parse_name(name)
    assert try_parse_name(name) is None


def test_stem_of():
    assert stem_of("a_b.JSON") == "a_b" and stem_of("a.mp4") == "a" and stem_of("a.txt") == "a.txt"


def test_no_mismatch_for_the_published_example():
    label = parse_label(make_label_dict(), "x.json")
    assert name_mismatches(parse_name(label.name), label, "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_232") == []


def test_every_mismatch_is_listed():
    label = parse_label(make_label_dict(inst="T", image="ir", condition="S", posture="E", metaid="002"), "x.json")
    stem = "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_233"
    assert name_mismatches(parse_name(stem), label, stem) == [
        "device: name S, json T", "type: name rgb, json ir", "state: name F, json S",
        "posture: name D, json E", "subject: name 001, json 002",
        "name: file NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_233, json NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_232.png"]


def test_old_posture_k_in_a_name_matches_t():
    label = parse_label(make_label_dict(posture="T"), "x.json")
    assert name_mismatches(parse_name("NIA22EYE_S1_001_T1_S10_S_rgb_F_K_L_232"), label) == []
