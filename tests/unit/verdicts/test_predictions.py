"""Score-only readers: alignment to the expected names, counted and listed."""
import cv2
import numpy as np
import pytest

from common.verdicts.submissions import (
    ExpectedNames,
    PredictionFileError,
    find_segmentation_predictions,
    load_class_map,
    normalise_key,
    read_gaze_predictions,
    read_state_predictions,
)

NAMES = ["a", "b", "c", "d"]


def test_gaze_alignment_counts_missing_extra_duplicated(tmp_path):
    path = tmp_path / "gaze.csv"
    path.write_text("name,pitch,yaw\nc,1.5,-2\nb,0,0\nb,1,1\nzz,3,3\na, 4 ,5\n")
    aligned, alignment = read_gaze_predictions(path, NAMES)
    assert aligned["name"].tolist() == ["a", "c"]  # expected order; b is ambiguous, d missing
    assert aligned[["pitch", "yaw"]].to_numpy().tolist() == [[4.0, 5.0], [1.5, -2.0]]
    assert (alignment.missing, alignment.extra, alignment.duplicated) == (("d",), ("zz",), ("b",))
    assert alignment.skipped() == {"missing_prediction": 1, "duplicated_prediction": 1, "nonfinite_prediction": 0}
    summary = alignment.summary()
    assert summary["n_scored"] == 2 and summary["n_extra"] == 1 and summary["extra"] == ["zz"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,pitch\na,1\n", "header lacks yaw"),
        ("name,pitch,yaw\na,1,x\n", "line 2, field yaw is 'x'"),
        ("name,pitch,yaw\na,1,2\n,1,2\n", "line 3, field name is empty"),
        ("name,pitch,yaw\na,1,\n", "line 2, field yaw is ''"),
    ],
)
def test_bad_gaze_file_names_file_line_and_field(tmp_path, text, message):
    path = tmp_path / "gaze.csv"
    path.write_text(text)
    with pytest.raises(PredictionFileError, match=message) as info:
        read_gaze_predictions(path, NAMES)
    assert "gaze.csv" in str(info.value)


def test_state_labels_map_to_class_ids(tmp_path):
    path = tmp_path / "states.csv"
    path.write_text("name,label\nb,S\na,F\nd,N\n")
    aligned, alignment = read_state_predictions(path, NAMES, ["F", "S", "D", "A", "N"])
    assert aligned["name"].tolist() == ["a", "b", "d"] and aligned["pred"].tolist() == [0, 1, 4]
    assert alignment.missing == ("c",)
    path.write_text("name,label\na,X\n")
    with pytest.raises(PredictionFileError, match="field label is 'X'; expected one of F, S, D, A, N"):
        read_state_predictions(path, NAMES, ["F", "S", "D", "A", "N"])


def test_segmentation_folder_alignment_and_class_map(tmp_path):
    class_map = np.array([[0, 1], [2, 2]], dtype=np.uint8)
    for name in ("a", "c", "extra"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), class_map)
    cv2.imwrite(str(tmp_path / "c.PNG"), class_map)
    (tmp_path / "notes.txt").write_text("x")
    aligned, alignment = find_segmentation_predictions(tmp_path, NAMES)
    assert aligned["name"].tolist() == ["a"]
    assert alignment.missing == ("b", "d") and alignment.duplicated == ("c",)
    assert alignment.extra == ("extra", "other:notes.txt")
    np.testing.assert_array_equal(load_class_map(aligned["path"][0], 3, (2, 2)), class_map)
    with pytest.raises(PredictionFileError, match="class id 2; expected 0..1"):
        load_class_map(aligned["path"][0], 2)
    with pytest.raises(PredictionFileError, match=r"expected \(3, 3\)"):
        load_class_map(aligned["path"][0], 3, (3, 3))


def test_duplicate_expected_names_are_a_caller_error(tmp_path):
    path = tmp_path / "gaze.csv"
    path.write_text("name,pitch,yaw\na,1,2\n")
    with pytest.raises(ValueError, match="expected names contain duplicates"):
        read_gaze_predictions(path, ["a", "a"])


STEMS = ["NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_232", "NIA22EYE_S1_002_T1_S10_S_rgb_F_D_L_7"]
CROP_IDS = [f"{s}_eyes" for s in STEMS]


def test_key_normalisation() -> None:
    assert normalise_key(" NIA22EYE_a_1.png ") == "NIA22EYE_a_1"
    assert normalise_key("TS_S/001/NIA22EYE_a_1.PNG") == "NIA22EYE_a_1"
    assert normalise_key("C:\\nia\\NIA22EYE_a_1.jpg") == "NIA22EYE_a_1"
    assert normalise_key("NIA22EYE_a_T.mp4") == "NIA22EYE_a_T"
    assert normalise_key("NIA22EYE_a_1_r_eye") == "NIA22EYE_a_1_r_eye"
    assert normalise_key("v1.5") == "v1.5"  # only the known media/label extensions are taken off


def test_gaze_keyed_by_nia_file_name_stem_or_crop_id(tmp_path):
    """What an auditor has (the NIA image's name) keys a prediction as well as our crop id."""
    expected = ExpectedNames.of(CROP_IDS, stems=STEMS)
    path = tmp_path / "gaze.csv"
    path.write_text(f"name,pitch,yaw\n{STEMS[1]}.png,1,2\n{STEMS[0]},3,4\n")
    aligned, alignment = read_gaze_predictions(path, expected)
    assert aligned["name"].tolist() == CROP_IDS and aligned["yaw"].tolist() == [4.0, 2.0]
    assert alignment.skipped() == {"missing_prediction": 0, "duplicated_prediction": 0, "nonfinite_prediction": 0}
    # one sample under two of its keys is a duplicate: neither answer is scored
    path.write_text(f"name,pitch,yaw\n{STEMS[0]}.png,1,2\n{CROP_IDS[0]},3,4\n{CROP_IDS[1]},0,0\nother.png,0,0\n")
    aligned, alignment = read_gaze_predictions(path, expected)
    assert aligned["name"].tolist() == [CROP_IDS[1]]
    assert alignment.duplicated == (CROP_IDS[0],) and alignment.extra == ("other.png",)


def test_per_eye_keys_carry_the_eye_and_a_bare_stem_is_not_a_sample(tmp_path):
    """RIT-Net scores each eye: the key is the stem plus _r_eye / _l_eye (= our crop id), with or without .png."""
    names = [f"{STEMS[0]}_r_eye", f"{STEMS[0]}_l_eye"]
    class_map = np.zeros((2, 2), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / f"{STEMS[0]}_r_eye.png"), class_map)
    cv2.imwrite(str(tmp_path / f"{STEMS[0]}.png"), class_map)
    aligned, alignment = find_segmentation_predictions(tmp_path, ExpectedNames.of(names))
    assert aligned["name"].tolist() == names[:1]
    assert alignment.missing == (names[1],) and alignment.extra == (STEMS[0],)


def test_a_stem_shared_by_two_expected_samples_is_no_key():
    expected = ExpectedNames.of([f"{STEMS[0]}_r_eye", f"{STEMS[0]}_l_eye", CROP_IDS[1]],
                                stems=[STEMS[0], STEMS[0], STEMS[1]])
    assert expected.resolve(STEMS[0]) is None and expected.resolve(f"{STEMS[1]}.png") == CROP_IDS[1]
    assert expected.resolve(f"{STEMS[0]}_l_eye.png") == f"{STEMS[0]}_l_eye"


def test_state_keyed_by_video_file_name(tmp_path):
    """Former-DFER scores clips: the key is the video stem, with or without .mp4."""
    videos = ["NIA22EYE_S1_001_T1_S10_S_rgb_F_D_T", "NIA22EYE_S1_001_T1_S11_T_rgb_S_S_T"]
    path = tmp_path / "states.csv"
    path.write_text(f"name,label\n{videos[1]}.mp4,S\n{videos[0]},F\n")
    aligned, alignment = read_state_predictions(path, videos, ["F", "S", "D", "A", "N"])
    assert aligned["name"].tolist() == videos and aligned["pred"].tolist() == [0, 1] and not alignment.missing


def test_non_finite_gaze_is_a_counted_skip_not_a_score(tmp_path):
    path = tmp_path / "gaze.csv"
    path.write_text("name,pitch,yaw\na,1,inf\nb,nan,0\nc,1,2\nd,-Infinity,0\nd,0,0\n")
    aligned, alignment = read_gaze_predictions(path, NAMES)
    assert aligned["name"].tolist() == ["c"]
    assert alignment.nonfinite == ("a", "b") and alignment.duplicated == ("d",)
    assert alignment.skipped() == {"missing_prediction": 0, "duplicated_prediction": 1, "nonfinite_prediction": 2}
    assert alignment.n_scored == 1 and alignment.summary()["n_nonfinite"] == 2
