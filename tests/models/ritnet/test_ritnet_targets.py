"""ritnet.targets: boundary weights and signed distance maps on tiny hand-computed class maps."""
from __future__ import annotations

import hashlib
import math

import cv2
import numpy as np
import pytest

from ritnet.targets import boundary_edges, boundary_weights, dilate_down, distance_maps, signed_distance


def test_horizontal_step_edge_row_spreads_one_row_down() -> None:
    class_map = np.zeros((6, 7), dtype=np.uint8)
    class_map[3:] = 1
    # Canny puts the edge on the lower-valued side (row 2); the reference's dilation adds row 3
    assert np.flatnonzero(boundary_edges(class_map).any(axis=1)).tolist() == [2]
    expected = np.zeros((6, 7), dtype=np.float32)
    expected[2:4] = 20.0
    weights = boundary_weights(class_map)
    assert weights.dtype == np.float32
    assert np.array_equal(weights, expected)


def test_vertical_step_edge_column_only() -> None:
    class_map = np.zeros((5, 8), dtype=np.uint8)
    class_map[:, 4:] = 2
    expected = np.zeros((5, 8), dtype=np.float32)
    expected[:, 3] = 20.0
    assert np.array_equal(boundary_weights(class_map), expected)


def test_uniform_map_has_no_boundary() -> None:
    assert not boundary_weights(np.ones((8, 8), dtype=np.uint8)).any()


def test_dilate_down_is_what_the_reference_dilate_call_does() -> None:
    """cv2.dilate(x, (3, 3)) takes the tuple as a 2x1 structuring element, not a 3x3 size."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        edges = rng.random((12, 9)) < 0.1
        reference = cv2.dilate(edges.astype(np.float64), (3, 3), iterations=1) > 0
        assert np.array_equal(dilate_down(edges), reference)
    single = np.zeros((3, 3), dtype=bool)
    single[1, 1] = True
    assert np.flatnonzero(dilate_down(single)).tolist() == [4, 7]


def test_nested_classes_both_boundaries_found() -> None:
    class_map = np.zeros((30, 40), dtype=np.uint8)
    cv2.ellipse(class_map, (20, 15), (15, 8), 0, 0, 360, 1, -1)
    cv2.circle(class_map, (20, 15), 5, 2, -1)
    edges = boundary_edges(class_map)
    row = class_map[15]
    assert np.flatnonzero(row == 1)[[0, -1]].tolist() == [5, 35] and np.flatnonzero(row == 2)[[0, -1]].tolist() == [15, 25]
    # one edge pixel at each of the four class changes along the row, within a pixel of it
    assert np.flatnonzero(edges[15]).tolist() == [4, 15, 25, 35]
    assert not edges[0].any()


def test_signed_distance_by_hand() -> None:
    class_map = np.zeros((5, 6), dtype=np.uint8)
    class_map[1:3, 2:4] = 1
    maps = distance_maps(class_map, 3)
    assert maps.shape == (3, 5, 6) and maps.dtype == np.float32
    diagonal = math.sqrt(4 ** 2 + 5 ** 2)
    eye = maps[1] * diagonal
    # outside class 1: distance to its nearest pixel; inside: -(distance to outside - 1) = 0 on its border
    assert eye[0, 0] == pytest.approx(math.sqrt(5))      # to (1, 2)
    assert eye[4, 5] == pytest.approx(2 * math.sqrt(2))  # to (2, 3)
    assert eye[1, 1] == pytest.approx(1.0)
    assert np.allclose(eye[1:3, 2:4], 0.0)
    background = maps[0] * diagonal
    assert background[1, 2] == pytest.approx(1.0)        # a class-1 pixel, 1 from the background
    assert background[0, 0] == pytest.approx(-(math.sqrt(5) - 1.0))
    assert not maps[2].any()                             # absent class: zeros


def test_signed_distance_deep_inside_and_whole_image() -> None:
    mask = np.zeros((7, 7), dtype=bool)
    mask[1:6, 1:6] = True
    values = signed_distance(mask) * math.sqrt(36 + 36)
    assert values[3, 3] == pytest.approx(-2.0)  # 3 from the outside ring
    assert values[2, 3] == pytest.approx(-1.0)
    assert values[0, 0] == pytest.approx(math.sqrt(2))
    assert not signed_distance(np.ones((4, 4), dtype=bool)).any()


def test_against_scipy_where_available() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    class_map = np.zeros((48, 80), dtype=np.uint8)
    cv2.ellipse(class_map, (40, 24), (30, 12), 10, 0, 360, 1, -1)
    cv2.circle(class_map, (45, 22), 9, 2, -1)
    diagonal = math.sqrt(47 ** 2 + 79 ** 2)
    for c, ours in enumerate(distance_maps(class_map, 3)):
        pos = class_map == c
        neg = ~pos
        ref = (ndimage.distance_transform_edt(neg) * neg - (ndimage.distance_transform_edt(pos) - 1) * pos) / diagonal
        np.testing.assert_allclose(ours, ref, atol=1e-6)


def eye_like_class_maps(count: int, seed: int = 0):
    """96x160 maps: an iris disc in a sclera disc, and stray sclera pixels."""
    rng = np.random.default_rng(seed)
    rows, cols = np.ogrid[:96, :160]
    for _ in range(count):
        cy, cx, r = rng.integers(20, 76), rng.integers(30, 130), rng.integers(5, 30)
        class_map = np.zeros((96, 160), np.uint8)
        class_map[(rows - cy) ** 2 + (cols - cx) ** 2 < (2 * r) ** 2] = 1
        class_map[(rows - cy) ** 2 + (cols - cx) ** 2 < r ** 2] = 2
        class_map[rng.random((96, 160)) > 0.995] = 1
        yield class_map


def test_distance_maps_are_the_same_bytes_on_both_stacks() -> None:
    """OpenCV's own exact transform: this digest on Debian's OpenCV 4.6 and PyPI's 4.11 alike. PyPI's
    OpenCV with its IPP path gives other last bits (81d42667... on 4.11), and not the same ones on every call."""
    digest = hashlib.sha256()
    for class_map in eye_like_class_maps(4):
        digest.update(distance_maps(class_map, 3).tobytes())
    assert digest.hexdigest() == "aca1fcf4a0cb8f86365ba2af81a24291e6ba689758b15026fe37aaa058f1ec98"


def test_the_distance_transform_runs_without_ipp_and_gives_the_setting_back(monkeypatch) -> None:
    seen: list[bool] = []
    transform = cv2.distanceTransform

    def recording(*args):
        seen.append(cv2.ipp.useIPP())
        return transform(*args)

    monkeypatch.setattr(cv2, "distanceTransform", recording)
    before = cv2.ipp.useIPP()
    signed_distance(np.eye(6, dtype=bool))
    assert seen == [False, False] and cv2.ipp.useIPP() == before


def test_bad_maps_are_refused() -> None:
    with pytest.raises(ValueError, match="value 3 found, expected classes 0..2"):
        distance_maps(np.full((4, 4), 3, dtype=np.uint8), 3)
    with pytest.raises(ValueError, match="uint8 HxW expected"):
        boundary_weights(np.zeros((4, 4), dtype=np.int64))
