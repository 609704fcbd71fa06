"""dfer.transforms: one crop and flip per clip in training, a plain resize at test, values in [0, 1]."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dfer.transforms import Box, eval_transform, fallback_box, random_sized_box, train_transform


def ramp_clip(frames: int = 3, height: int = 60, width: int = 80) -> np.ndarray:
    """Frame t, pixel (y, x) = (x, y, 10 t) as RGB: every pixel says where it came from."""
    y, x = np.mgrid[0:height, 0:width]
    clip = np.zeros((frames, height, width, 3), np.uint8)
    for t in range(frames):
        clip[t, ..., 0], clip[t, ..., 1], clip[t, ..., 2] = x, y, 10 * t
    return clip


def test_eval_transform_shape_range_and_values() -> None:
    clip = np.full((16, 40, 50, 3), 255, np.uint8)
    clip[3] = 0
    out = eval_transform(clip)
    assert out.shape == (16, 3, 112, 112) and out.dtype == torch.float32
    assert torch.all(out[3] == 0) and torch.all(out[0] == 1.0)      # [0, 1], no normalisation


def test_eval_transform_keeps_channel_order_and_an_exact_size_is_untouched() -> None:
    clip = np.zeros((2, 112, 112, 3), np.uint8)
    clip[..., 0], clip[..., 1], clip[..., 2] = 51, 102, 255
    out = eval_transform(clip)
    expected = torch.tensor([51, 102, 255], dtype=torch.float32) / 255
    assert torch.equal(out, expected.view(1, 3, 1, 1).expand(2, 3, 112, 112))


SIZES = [(300, 200), (60, 50), (90, 400), (180, 320), (37, 53), (112, 112), (113, 111), (20, 30), (1080, 1920)]


def pil_resized(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """The reference's frames: PIL's img.resize((width, height), Image.BILINEAR) on each, (T, 3, H, W)."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))
                     for frame in frames]).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("height, width", SIZES)
def test_eval_frames_are_bit_identical_to_pil_bilinear(height: int, width: int) -> None:
    """Issue 19 item 13: an antialiased F.interpolate differed from PIL by one grey level on 12-17 % of values
    (PIL rounds to whole levels between its passes)."""
    frames = np.random.default_rng(height * width).integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    expected = pil_resized(frames, 112, 112)
    assert np.array_equal(eval_transform(frames, as_uint8=True).numpy(), expected)
    assert torch.equal(eval_transform(frames), torch.from_numpy(expected).float() / 255)


def test_train_crops_and_fallback_are_bit_identical_to_pil() -> None:
    """The random-sized crop is cut, then resized by PIL; the fallback resizes the shorter side to 112 first."""
    frames = np.random.default_rng(1).integers(0, 256, (2, 90, 130, 3), dtype=np.uint8)
    for seed in range(5):
        box = random_sized_box(90, 130, np.random.default_rng(seed))
        cut = frames[:, box.y:box.y + box.h, box.x:box.x + box.w]
        expected = pil_resized(cut, 112, 112)
        ours = train_transform(frames, np.random.default_rng(seed), as_uint8=True, flip_prob=0.0).numpy()
        assert np.array_equal(ours, expected), seed
    thin = np.random.default_rng(2).integers(0, 256, (2, 2, 200, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)   # the draws train_transform makes: no box fits, then the fallback's
    assert random_sized_box(2, 200, rng) is None
    (new_h, new_w), box = fallback_box(2, 200, 112, rng)
    expected = pil_resized(thin, new_w, new_h)[..., box.y:box.y + box.h, box.x:box.x + box.w]
    ours = train_transform(thin, np.random.default_rng(0), as_uint8=True, flip_prob=0.0).numpy()
    assert np.array_equal(ours, expected)


def test_random_sized_box_follows_the_reference_ranges() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        box = random_sized_box(120, 160, rng)
        assert box is not None
        assert 0 <= box.x and box.x + box.w <= 160 and 0 <= box.y and box.y + box.h <= 120
        area = box.w * box.h / (120 * 160)
        assert 0.07 <= area <= 1.01      # [0.08, 1] up to the rounding of w and h
        assert 3 / 4 - 0.05 <= box.w / box.h <= 4 / 3 + 0.05 or 3 / 4 - 0.05 <= box.h / box.w <= 4 / 3 + 0.05


def test_box_with_a_fixed_draw() -> None:
    class Draws:
        """An rng stand-in with chosen values: area 0.25 of 100 x 100, ratio 1, no swap, corner (10, 20)."""

        def __init__(self) -> None:
            self.uniform_values = [0.25, 1.0]
            self.corner = [10, 20]

        def uniform(self, low: float, high: float) -> float:
            return self.uniform_values.pop(0)

        def random(self) -> float:
            return 0.9

        def integers(self, low: int, high: int) -> int:
            assert (low, high) == (0, 51)       # randint(0, 100 - 50) inclusive
            return self.corner.pop(0)

    box = random_sized_box(100, 100, Draws())  # type: ignore[arg-type]
    assert box == Box(10, 20, 50, 50)


def test_fallback_when_nothing_fits() -> None:
    # a 2 x 200 frame: no box of area >= 8 % with ratio in [3/4, 4/3] fits two rows
    assert random_sized_box(2, 200, np.random.default_rng(0)) is None
    size, box = fallback_box(2, 200, 112, np.random.default_rng(0))
    assert size == (112, 11200) and box.w == box.h == 112 and 0 <= box.x <= 11200 - 112 and box.y == 0
    out = train_transform(np.zeros((2, 2, 200, 3), np.uint8), np.random.default_rng(0))
    assert out.shape == (2, 3, 112, 112)


def test_train_transform_uses_one_crop_and_flip_for_all_frames() -> None:
    clip = ramp_clip(frames=3)
    for seed in range(20):
        out = train_transform(clip, np.random.default_rng(seed)) * 255
        assert out.shape == (3, 3, 112, 112)
        # red and green (where each pixel came from) agree across frames; blue is the frame's own 10 t
        assert torch.allclose(out[0, :2], out[1, :2], atol=1e-3) and torch.allclose(out[0, :2], out[2, :2], atol=1e-3)
        assert torch.allclose(out[2, 2], torch.full((112, 112), 20.0), atol=1e-3)


def test_flip_happens_about_half_the_time_and_reverses_x() -> None:
    clip = ramp_clip(frames=1, height=112, width=112)
    flips = 0
    for seed in range(200):
        out = train_transform(clip, np.random.default_rng(seed))
        red_row = out[0, 0, 56]
        flipped = bool(red_row[0] > red_row[-1])
        assert flipped or red_row[0] < red_row[-1]
        flips += flipped
    assert 70 <= flips <= 130


def test_train_transform_is_a_function_of_the_rng() -> None:
    clip = np.random.default_rng(0).integers(0, 256, (4, 50, 70, 3), dtype=np.uint8)
    a = train_transform(clip, np.random.default_rng(5))
    b = train_transform(clip, np.random.default_rng(5))
    c = train_transform(clip, np.random.default_rng(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0


@pytest.mark.parametrize("bad", [np.zeros((4, 10, 10, 3), np.float32), np.zeros((10, 10, 3), np.uint8),
                                 np.zeros((4, 10, 10, 1), np.uint8), np.zeros((0, 10, 10, 3), np.uint8)])
def test_bad_input_is_one_line_error(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="^frames: "):
        eval_transform(bad)


def test_uint8_output_is_the_float_output_rounded_as_pil_images_are() -> None:
    frames = np.random.default_rng(3).integers(0, 256, (4, 37, 53, 3), dtype=np.uint8)
    exact = eval_transform(frames)
    rounded = eval_transform(frames, as_uint8=True)
    assert rounded.dtype == torch.uint8 and rounded.shape == exact.shape
    assert torch.equal(rounded, (exact * 255).round().to(torch.uint8))
    same = np.random.default_rng(4)
    assert torch.equal(train_transform(frames, np.random.default_rng(4), as_uint8=True),
                       (train_transform(frames, same) * 255).round().to(torch.uint8))
