"""Class maps against hand-made cases and an independent rasteriser (matplotlib Path + ellipse equation)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from common.targets.masks import Ellipse, EyeShapes, class_map, ellipse_mask, polygon_mask


def _reference_polygon(vertices: np.ndarray, width: int, height: int) -> np.ndarray:
    jj, ii = np.meshgrid(np.arange(width), np.arange(height))
    centres = np.stack([jj.ravel(), ii.ravel()], axis=1).astype(float)
    return MplPath(vertices).contains_points(centres).reshape(height, width)


def _reference_ellipse(e: Ellipse, width: int, height: int) -> np.ndarray:
    """Inside test written from the axis matrix: solve axes @ q = p - c and check |q| <= 1."""
    jj, ii = np.meshgrid(np.arange(width), np.arange(height))
    offsets = np.stack([jj.ravel() - e.cx, ii.ravel() - e.cy])
    t = math.radians(e.rotate_deg)
    axes = np.array([[e.rx * math.cos(t), -e.ry * math.sin(t)], [e.rx * math.sin(t), e.ry * math.cos(t)]])
    q = np.linalg.solve(axes, offsets)
    return ((q ** 2).sum(axis=0) <= 1.0).reshape(height, width)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else (a & b).sum() / union


def _random_eye(rng: np.random.Generator, width: int, height: int) -> EyeShapes:
    """A star-shaped random polygon (may self-intersect a little) and a rotated ellipse near its middle."""
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    n = int(rng.integers(5, 20))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(0.1, 0.45, n) * np.array([width, height]).min()
    eyelid = np.stack([cx + radii * np.cos(angles) * 1.6, cy + radii * np.sin(angles)], axis=1)
    iris = Ellipse(cx + rng.normal(0, 3), cy + rng.normal(0, 3), rng.uniform(2, 20), rng.uniform(2, 20),
                   rng.uniform(-180, 180))
    return EyeShapes(eyelid=eyelid, iris=iris)


def test_square_with_subpixel_corners_covers_the_six_centres_inside() -> None:
    square = np.array([[0.5, 0.5], [3.5, 0.5], [3.5, 2.5], [0.5, 2.5]])
    expected = np.zeros((4, 5), bool)
    expected[1:3, 1:4] = True
    np.testing.assert_array_equal(polygon_mask(square, 5, 4), expected)


def test_polygon_and_ellipse_agree_with_independent_rasteriser_on_random_shapes() -> None:
    rng = np.random.default_rng(7)
    width, height = 90, 60
    for _ in range(40):
        eye = _random_eye(rng, width, height)
        mine_lid = polygon_mask(eye.eyelid, width, height)
        mine_iris = ellipse_mask(eye.iris, width, height)
        ref_lid = _reference_polygon(eye.eyelid, width, height)
        ref_iris = _reference_ellipse(eye.iris, width, height)
        assert _iou(mine_lid, ref_lid) >= 0.99
        assert _iou(mine_iris, ref_iris) >= 0.99
        # class maps built from both agree per class
        mine = class_map([eye], width, height)
        ref = np.where(ref_lid, np.where(ref_iris, 2, 1), 0)
        for cls in (0, 1, 2):
            assert _iou(mine == cls, ref == cls) >= 0.99, cls
        assert (mine != ref).sum() <= 2  # only float ties on a boundary may differ


def test_rotate_turns_the_rx_axis_towards_image_down() -> None:
    e = Ellipse(cx=10, cy=10, rx=8, ry=1.5, rotate_deg=45)
    mask = ellipse_mask(e, 21, 21)
    assert mask[15, 15] and mask[5, 5]  # down-right and up-left lie on the long axis
    assert not mask[5, 15] and not mask[15, 5]
    vertical = ellipse_mask(Ellipse(10, 10, 8, 1.5, 90), 21, 21)
    assert vertical[3, 10] and not vertical[10, 3]


def test_published_example_bounding_box_is_centre_plus_minus_radii() -> None:
    e = Ellipse(cx=1021.5, cy=292.5, rx=12.5, ry=10.5, rotate_deg=0)
    np.testing.assert_allclose(e.bounds(), (1009, 282, 1034, 303))


def test_iris_above_the_lid_is_not_iris_and_eye_region_excludes_visible_iris() -> None:
    lid = np.array([[0.5, 4.5], [19.5, 4.5], [19.5, 9.5], [0.5, 9.5]])  # rows 5..9
    iris = Ellipse(cx=10, cy=5, rx=3, ry=3)  # rows 2..8, upper half under the lid
    out = class_map([EyeShapes(lid, iris)], 20, 12)
    assert set(np.unique(out[:5])) == {0}
    assert out[5, 10] == 2 and out[8, 10] == 2 and out[9, 10] == 1
    assert out[6, 1] == 1 and out[11, 10] == 0
    assert (out == 2).sum() == (ellipse_mask(iris, 20, 12)[5:]).sum()


def test_eye_without_eyelid_contributes_nothing() -> None:
    out = class_map([EyeShapes(None, Ellipse(5, 5, 3, 3))], 10, 10)
    assert not out.any()


@pytest.mark.parametrize("rotate", [0.0, 30.0, -75.0, 170.0])
def test_equal_scaling_keeps_rotation_and_scales_radii(rotate: float) -> None:
    moved = Ellipse(100, 50, 12, 5, rotate).scaled(90, 40, 2.0, 2.0)
    assert (moved.cx, moved.cy) == (20.0, 20.0)
    assert moved.rx == pytest.approx(24) and moved.ry == pytest.approx(10)
    assert moved.rotate_deg == pytest.approx(rotate)


def test_anisotropic_scaling_maps_boundary_points_onto_the_new_ellipse() -> None:
    e = Ellipse(30, 20, 9, 4, 35)
    moved = e.scaled(10, 5, 1.7, 0.8)
    t = np.linspace(0, 2 * np.pi, 50)
    boundary = np.array([e.cx, e.cy])[:, None] + e.axes() @ np.stack([np.cos(t), np.sin(t)])
    mapped = (boundary - np.array([[10], [5]])) * np.array([[1.7], [0.8]])
    q = np.linalg.solve(moved.axes(), mapped - np.array([[moved.cx], [moved.cy]]))
    np.testing.assert_allclose((q ** 2).sum(axis=0), 1.0, atol=1e-9)
