"""Observer states differ in the signals that define them; composition follows the published shares."""
from collections import Counter

import numpy as np
import pytest

from common.synth.dynamics import make_track
from common.synth.scene import GLASSES_SHARE, STATE_SHARES, VIDEO_COUNTS, make_subject, make_videos

SCREEN_MM = (344.2, 193.6)  # the laptop profile's screen
N_CLIPS, N_FRAMES = 80, 48


def _tracks(state: str):
    return [make_track(state, N_FRAMES, np.random.default_rng([7, k]), SCREEN_MM) for k in range(N_CLIPS)]


@pytest.fixture(scope="module")
def tracks():
    return {state: _tracks(state) for state in "FSDAN"}


def _mean(values) -> float:
    return float(np.mean(list(values)))


def test_sleepy_lids_droop_compared_with_focused(tracks):
    focused = _mean(t.openness.mean() for t in tracks["F"])
    sleepy = _mean(t.openness.mean() for t in tracks["S"])
    assert focused > 0.8 and sleepy < 0.6


def test_sleepy_blinks_last_longer_than_focused_blinks(tracks):
    def closed_run_lengths(track):
        closed = track.openness < 0.3
        runs, length = [], 0
        for value in closed:
            if value:
                length += 1
            elif length:
                runs.append(length)
                length = 0
        return runs + ([length] if length else [])
    focused = [r for t in tracks["F"] for r in closed_run_lengths(t)]
    sleepy = [r for t in tracks["S"] for r in closed_run_lengths(t)]
    assert focused and sleepy and np.mean(sleepy) > 2 * np.mean(focused)


def test_lack_of_focus_glances_off_screen_more_often(tracks):
    focused = _mean((~t.on_screen).mean() for t in tracks["F"])
    distracted = _mean((~t.on_screen).mean() for t in tracks["D"])
    assert focused < 0.1 and distracted > 0.3


def test_falling_focus_looks_away_more_in_the_second_half(tracks):
    half = N_FRAMES // 2
    first = _mean((~t.on_screen[:half]).mean() for t in tracks["A"])
    second = _mean((~t.on_screen[half:]).mean() for t in tracks["A"])
    assert second > first + 0.2


def test_negligent_clips_are_mostly_away_or_closed(tracks):
    def lost(track):
        return ((~track.on_screen) | (track.openness == 0.0)).mean()
    assert _mean(lost(t) for t in tracks["N"]) > 0.45
    assert _mean(lost(t) for t in tracks["F"]) < 0.15


def test_off_screen_targets_lie_outside_the_point_space(tracks):
    for track in tracks["D"]:
        off = track.point_px[~track.on_screen]
        outside = (off[:, 0] < 0) | (off[:, 0] > 1920) | (off[:, 1] < 0) | (off[:, 1] > 1080)
        assert outside.all()


def test_unknown_state_is_refused():
    with pytest.raises(ValueError, match="observer state"):
        make_track("X", 10, np.random.default_rng(0), SCREEN_MM)


def test_composition_follows_the_published_shares():
    subjects = [make_subject(i, 1) for i in range(400)]
    videos = [v for s in subjects for v in make_videos(s, 1, 5, 16)]
    total = sum(VIDEO_COUNTS.values())
    pairs = Counter((v.device, v.image_type) for v in videos)
    assert set(pairs) <= set(VIDEO_COUNTS)  # IR only for V and M
    for pair, count in VIDEO_COUNTS.items():
        assert pairs[pair] / len(videos) == pytest.approx(count / total, abs=0.03)
    states = Counter(v.state for v in videos)
    for state, share in STATE_SHARES.items():
        assert states[state] / len(videos) == pytest.approx(share / 100, abs=0.03)
    assert np.mean([s.glasses for s in subjects]) == pytest.approx(GLASSES_SHARE, abs=0.06)
    assert len({v.stem for v in videos}) == len(videos)  # the scenario field keeps stems unique
    assert subjects[0].metaid == "001" and subjects[-1].metaid == "400"
