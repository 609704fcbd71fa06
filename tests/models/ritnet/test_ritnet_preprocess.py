"""ritnet.preprocess: the published gamma table (truncated), CLAHE, normalisation, grey conversion."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ritnet.preprocess import apply_clahe, apply_gamma, gamma_table, normalise, preprocess, to_grey


def test_gamma_table_truncates_like_the_reference() -> None:
    table = gamma_table()
    assert table.dtype == np.uint8 and table.shape == (256,)
    # 255 * (i / 255) ** 0.8 by hand: 0, 3.029, 10.977, 146.918, 254.200, 255
    assert [int(table[i]) for i in (0, 1, 5, 128, 254, 255)] == [0, 3, 10, 146, 254, 255]
    rounded = np.round(255.0 * (np.arange(256) / 255.0) ** 0.8)
    assert int((rounded != table).sum()) == 141  # rounding would change more than half of the entries
    assert np.all(np.diff(table.astype(int)) >= 0)


def test_gamma_is_a_lookup() -> None:
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(apply_gamma(grey), gamma_table()[grey])


def test_clahe_is_opencvs_with_the_published_settings() -> None:
    # a low-contrast frame of OpenEDS's size, where the clip limit matters (OpenCV clips each bin at
    # int(clip * tile area / 256): 23 pixels here; at 160x96 both 1.5 and 2.0 give 1)
    grey = np.tile(np.linspace(90, 110, 400), (640, 1)).astype(np.uint8)
    grey[40:50, 40:50] = 200
    expected = cv2.createCLAHE(clipLimit=1.5, tileGridSize=(8, 8)).apply(grey)
    assert np.array_equal(apply_clahe(grey), expected)
    assert not np.array_equal(expected, cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey))
    assert not np.array_equal(expected, cv2.createCLAHE(clipLimit=1.5, tileGridSize=(4, 4)).apply(grey))


def test_normalise_to_mean_half_std_half() -> None:
    out = normalise(np.array([[0, 51, 255]], dtype=np.uint8))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[-1.0, -0.6, 1.0]], atol=1e-7)


def test_grey_conversion() -> None:
    bgr = np.zeros((2, 2, 3), dtype=np.uint8)
    bgr[0, 0] = (255, 0, 0)   # blue: 0.114 * 255 = 29.07
    bgr[0, 1] = (0, 0, 255)   # red: 0.299 * 255 = 76.2
    bgr[1, 0] = (0, 255, 0)   # green: 0.587 * 255 = 149.7
    grey = to_grey(bgr)
    assert grey.tolist() == [[29, 76], [150, 0]]
    assert np.array_equal(grey, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    ir = np.full((3, 4), 7, dtype=np.uint8)
    assert to_grey(ir) is ir
    assert np.array_equal(to_grey(ir[:, :, None]), ir)
    assert np.array_equal(to_grey(np.dstack([bgr, np.full((2, 2), 255, np.uint8)])), grey)
    with pytest.raises(ValueError, match="uint8 image expected"):
        to_grey(np.zeros((2, 2), dtype=np.uint16))
    with pytest.raises(ValueError, match="got shape"):
        to_grey(np.zeros((2, 2, 2), dtype=np.uint8))


def test_preprocess_is_the_published_chain() -> None:
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, size=(96, 160, 3), dtype=np.uint8)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    lut = (255.0 * np.linspace(0, 1, 256) ** 0.8)
    gamma = np.uint8(cv2.LUT(grey, lut))  # the reference's float LUT, then np.uint8
    expected = cv2.createCLAHE(clipLimit=1.5, tileGridSize=(8, 8)).apply(gamma) / 255.0 * 2.0 - 1.0
    out = preprocess(bgr)
    assert out.shape == (96, 160) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)
