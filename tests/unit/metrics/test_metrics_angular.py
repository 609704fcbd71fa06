"""Angular error: hand-computed angles and the L2CS-Net reference formula."""
import math

import numpy as np
import pytest

from common.metrics.angular import (
    REFERENCE_COS_CLAMP,
    angular_errors_deg,
    mean_angular_error_deg,
    pitch_yaw_deg_to_vectors,
)

# arccos(0.9999999) in degrees: the floor the reference clamp puts on every error
CLAMP_FLOOR_DEG = math.degrees(math.acos(0.9999999))


def test_vectors_follow_the_documented_convention():
    vectors = pitch_yaw_deg_to_vectors([[0, 0], [90, 0], [0, 90]])
    # (0, 0) looks back into the camera (-z); pitch 90 looks up (-y, y is down); yaw 90 gives -x
    np.testing.assert_allclose(vectors, [[0, 0, -1], [0, -1, 0], [-1, 0, 0]], atol=1e-12)


def test_known_angles():
    errors = angular_errors_deg([[0, 0], [0, 0], [30, 0]], [[0, 90], [45, 0], [-30, 0]])
    np.testing.assert_allclose(errors, [90.0, 45.0, 60.0], atol=1e-9)
    assert mean_angular_error_deg([[0, 0], [0, 0]], [[0, 90], [45, 0]]) == pytest.approx(67.5)


def test_identical_directions_hit_the_reference_clamp():
    errors = angular_errors_deg([[10, 20], [-5, 3]], [[10, 20], [-5, 3]])
    np.testing.assert_allclose(errors, [CLAMP_FLOOR_DEG, CLAMP_FLOOR_DEG], rtol=1e-6)
    assert CLAMP_FLOOR_DEG == pytest.approx(0.025623, abs=1e-6)


def test_opposite_directions_give_180_not_nan():
    assert angular_errors_deg([0, 0], [0, 180])[0] == pytest.approx(180.0)


def _reference_angular_deg(pred_pitch_yaw_deg, true_pitch_yaw_deg):
    """L2CS-Net reference, written from its published description: 3D vectors,
    cos = dot / (|a| |b|), clamp from above only at 0.9999999, arccos in degrees."""
    total = 0.0
    for (pp, py), (tp, ty) in zip(pred_pitch_yaw_deg, true_pitch_yaw_deg):
        vecs = []
        for pitch, yaw in ((math.radians(pp), math.radians(py)), (math.radians(tp), math.radians(ty))):
            vecs.append((-math.cos(pitch) * math.sin(yaw), -math.sin(pitch), -math.cos(pitch) * math.cos(yaw)))
        a, b = vecs
        dot = sum(x * y for x, y in zip(a, b))
        norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(x * x for x in b))
        total += math.degrees(math.acos(min(dot / norms, 0.9999999)))
    return total / len(pred_pitch_yaw_deg)


def test_matches_reference_on_shared_inputs():
    rng = np.random.default_rng(4)
    true = rng.uniform(-40, 40, size=(300, 2))
    pred = true + rng.normal(0, 5, size=(300, 2))
    pred[:20] = true[:20]  # exact hits exercise the clamp
    assert abs(mean_angular_error_deg(pred, true) - _reference_angular_deg(pred, true)) < 1e-6
    assert REFERENCE_COS_CLAMP == 0.9999999


@pytest.mark.parametrize(
    "pred, true, message",
    [
        (np.zeros((2, 2)), np.zeros((3, 2)), "expected equal"),
        (np.zeros((2, 3)), np.zeros((2, 3)), "expected (N, 2)"),
        ([[np.nan, 0]], [[0, 0]], "row 0"),
        (np.zeros((0, 2)), np.zeros((0, 2)), "0 samples"),
    ],
)
def test_bad_inputs_are_refused(pred, true, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mean_angular_error_deg(pred, true)
