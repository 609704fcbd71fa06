"""Synthetic-track patterns, quality flags and the published-vs-measured table."""
import json
import re

import cv2
import numpy as np
import pytest

from common.delivery.manifest import build_index, read_manifest
from common.delivery.stats import compute_stats, published
from common.delivery.synthetic_tracks import PATTERNS, SyntheticTrack, classify_track, synthetic_reason
from tests.conftest import edit_label, indexed, nia_ok


def test_constant_point():
    assert synthetic_reason([[812, 400]] * 30) == "constant point (812, 400) over 30 frames"


def test_constant_x_30():
    assert synthetic_reason([[30, 10 * i] for i in range(20)]) == "constant x = 30 over 20 frames"


def test_straight_diagonal_sweep_with_rounding():
    pts = [[round(1913 * i / 29), round(1076 * i / 29)] for i in range(30)]
    assert synthetic_reason(pts) == "straight diagonal sweep from (0, 0) to (1913, 1076) over 30 frames"


def test_zigzag():
    xs = np.concatenate([np.arange(0, 500, 50), np.arange(500, 0, -50), np.arange(0, 500, 50)])
    pts = np.column_stack([xs, np.arange(len(xs)) * 20])
    assert synthetic_reason(pts) == "zig-zag: straight segments with 2 turns over 30 frames"


def test_realistic_noisy_track_is_not_flagged():
    rng = np.random.default_rng(3)
    fixations = rng.uniform([200, 150], [1700, 950], size=(6, 2))
    pts = np.repeat(fixations, 8, axis=0) + rng.normal(0, 4, size=(48, 2))
    assert synthetic_reason(np.round(pts)) is None


def test_too_short_track_is_not_judged():
    assert synthetic_reason([[1, 1]] * 4) is None


_ZIGZAG_X = np.concatenate([np.arange(0, 500, 50), np.arange(500, 0, -50), np.arange(0, 500, 50)])


@pytest.mark.parametrize("points, pattern", [
    ([[812, 400]] * 30, "constant point"),
    ([[30, 10 * i] for i in range(20)], "constant x"),
    ([[10 * i, 540] for i in range(20)], "constant y"),
    ([[round(1913 * i / 29), round(1076 * i / 29)] for i in range(30)], "straight diagonal sweep"),
    (np.column_stack([_ZIGZAG_X, np.arange(len(_ZIGZAG_X)) * 20]), "zig-zag"),
])
def test_classify_track_names_the_pattern(points, pattern):
    track = classify_track(points)
    assert track == SyntheticTrack(pattern, synthetic_reason(points)) and pattern in PATTERNS
    # stats.json keys stay what nia stats wrote when it parsed the pattern out of the message
    assert re.split(r" \(|:| =| from| over", track.message)[0] == pattern


def test_published_composition_file():
    pub = published()
    assert sum(pub["frames"].values()) == pub["frames_total"] == 2558104
    assert sum(pub["videos"].values()) == pub["videos_total"] == 87740
    assert pub["shares_percent"]["state"]["F"] == 24.97


@pytest.fixture
def flagged_manifest(nia_tree, tmp_path):
    """One subject, 2 videos x 6 frames; video 0 gets a constant point, frame 1 a bad head
    pose and no l_iris, frame 2 a mismatching state."""
    tree = nia_tree(1, videos_per_subject=2, frames_per_video=6)

    def flag(i: int, ann: dict) -> None:
        ann["pose"]["point"] = [640, 360]
        if i == 1:
            ann["pose"]["head"] = [0, 200.0, 0]
            ann["annotations"] = [s for s in ann["annotations"] if s["label"] != "l_iris"]
        if i == 2:
            ann["condition"] = "S"

    for i, stem in enumerate(tree.frames[:6]):
        edit_label(tree, stem, lambda ann, i=i: flag(i, ann))
    return indexed(tree, tmp_path), tree


def test_quality_flags(flagged_manifest):
    out, tree = flagged_manifest
    df, _ = read_manifest(out)
    table, flags, tracks = compute_stats(df)
    assert tracks["video_stem"].tolist() == [tree.videos[0]]
    assert tracks["reason"].iloc[0] == "constant point (640, 360) over 6 frames"
    assert tracks["pattern"].iloc[0] == "constant point"
    assert flags["synthetic_track_by_pattern"] == {"constant point": 1}
    assert flags["head_pose_out_of_range"] == {"head_roll": 0, "head_pitch": 1, "head_yaw": 0}
    assert flags["missing_eye_frames"] == 1 and flags["missing_eye_by_label"]["l_iris"] == 1
    assert flags["name_json_mismatch_by_field"] == {"state": 1}
    row = table[(table["group"] == "state %") & (table["key"] == "F")].iloc[0]
    assert row["published"] == 24.97 and row["measured"] == pytest.approx(100 * 5 / 12)  # video 1 is state S; one F frame says S
    assert table[(table["group"] == "frames") & (table["key"] == "total")]["measured"].item() == 12


def test_invalid_rows_are_counted_by_path(flagged_manifest):
    out, _ = flagged_manifest
    df, root = read_manifest(out)
    df.loc[0, ["valid", "error"]] = [False, "a.json: Annotations.annotations[3].rx: expected a radius > 0"]
    _, flags, _ = compute_stats(df)
    assert flags["invalid_rows"] == 1
    assert flags["invalid_by_path"] == {"Annotations.annotations[].rx": 1}


def test_cli_stats_saves_files(flagged_manifest, tmp_path):
    out, _ = flagged_manifest
    res = nia_ok("stats", out, "--out", tmp_path / "st")
    assert "state %    F               24.97        41.67" in res.output
    saved = json.loads((tmp_path / "st" / "stats.json").read_text(encoding="utf-8"))
    assert saved["flags"]["synthetic_track_videos"] == 1
    assert (tmp_path / "st" / "synthetic_tracks.csv").read_text().count("\n") == 2
    plot = cv2.imread(str(tmp_path / "st" / "stats.png"))
    assert plot is not None and plot.shape[1] > 4 * plot.shape[0] / 2 and plot.std() > 0  # one panel per group


def test_error_paths_fold_indices_and_survive_unbalanced_brackets():
    from common.delivery.stats import _error_path

    assert _error_path("a.json: Annotations.annotations[3].points[0]: bad") == "Annotations.annotations[].points[]"
    # a file name with a stray '[' used to loop forever here (regression)
    assert _error_path("duplicate stem: also at x/a[1.png") == "duplicate stem: also at x/a[1.png"


def test_image_problems_and_sizes_are_reported(nia_tree, tmp_path):
    from tests.conftest import png_bytes

    tree = nia_tree(1, videos_per_subject=2, frames_per_video=4)  # S/rgb and T/rgb frames at 1920x1080
    next(tree.root.rglob(f"{tree.frames[0]}.png")).write_bytes(b"")
    next(tree.root.rglob(f"{tree.frames[5]}.png")).write_bytes(png_bytes(640, 360))
    out = tmp_path / "m.parquet"
    build_index(tree.root, out, workers=1)
    df, _ = read_manifest(out)
    _, flags, _ = compute_stats(df)
    assert flags["invalid_rows"] == 2
    assert flags["invalid_by_path"] == {"PNG file": 1, "image size": 1}
    assert flags["image_errors_by_check"] == {"PNG file": 1, "image size": 1}
    assert flags["image_sizes"] == {"S/rgb": {"1920x1080": 3}, "T/rgb": {"1920x1080": 3, "640x360": 1}}


def test_a_manifest_from_before_the_header_check_still_has_stats(flagged_manifest):
    out, _ = flagged_manifest
    df, _ = read_manifest(out)
    _, flags, _ = compute_stats(df.drop(columns=["png_width", "png_height", "image_error"]))
    assert "image_sizes" not in flags and flags["invalid_rows"] == 0
