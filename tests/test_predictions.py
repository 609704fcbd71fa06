"""Score-only readers: alignment to the expected names, counted and listed."""
import cv2
import numpy as np
import pytest

from common.predictions import (
    PredictionFileError,
    find_segmentation_predictions,
    load_class_map,
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
    assert alignment.skipped() == {"missing_prediction": 1, "duplicated_prediction": 1}
    summary = alignment.summary()
    assert summary["n_scored"] == 2 and summary["n_extra"] == 1 and summary["extra"] == ["zz"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,pitch\na,1\n", "header lacks yaw"),
        ("name,pitch,yaw\na,1,x\n", "line 2, field yaw is 'x'"),
        ("name,pitch,yaw\na,1,2\n,1,2\n", "line 3, field name is empty"),
        ("name,pitch,yaw\na,1,inf\n", "line 2, field yaw"),
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
