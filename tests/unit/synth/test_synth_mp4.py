"""nia synth's video options: variable frame rate (retimed mp4s) and keyframe intervals (common.synth.mp4)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from common.cli import main
from common.synth import SynthConfig, build_dataset
from common.synth.mp4 import (Mp4Error, find_box, iter_boxes, media_timescale, retime, sample_durations,
                              sync_samples, vfr_durations, write_mp4)
from common.synth.writer import SOURCE_DIR
from common.targets.video import count_frames, read_frames

CONFIG = SynthConfig(subjects=1, seed=7, videos_per_subject=2, frames_per_video=16, size=(160, 90))
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="keyframe intervals are written by the ffmpeg program "
                                         "(scripts/install-system-deps.sh installs it)")


def _mp4s(root: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted((root / SOURCE_DIR).rglob("*.mp4"))}


def _mdat(data: bytes) -> bytes:
    _, offset, header, size = find_box(data, ["mdat"])[-1]
    return data[offset + header:offset + size]


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synth_mp4")
    out = {"default": base / "default", "vfr": base / "vfr"}
    build_dataset(out["default"], CONFIG, workers=1)
    build_dataset(out["vfr"], SynthConfig(**{**CONFIG.__dict__, "vfr": True}), workers=1)
    return out


def test_the_default_writer_is_opencvs_constant_rate_with_a_keyframe_every_12(sets):
    params = json.loads((sets["default"] / ".nia-synth" / "params.json").read_text())
    assert "vfr" not in params and "keyframe_interval" not in params  # as before the options existed
    for mp4 in _mp4s(sets["default"]).values():
        data = mp4.read_bytes()
        assert sample_durations(data) == [512] * 16 and media_timescale(data) == 15360
        assert sync_samples(data) == [0, 12]


def test_vfr_retimes_the_same_coded_frames(sets):
    params = json.loads((sets["vfr"] / ".nia-synth" / "params.json").read_text())
    assert params["vfr"] is True and "keyframe_interval" not in params
    plain, vfr = _mp4s(sets["default"]), _mp4s(sets["vfr"])
    assert plain.keys() == vfr.keys()
    for k, name in enumerate(plain):
        a, b = plain[name].read_bytes(), vfr[name].read_bytes()
        assert _mdat(a) == _mdat(b)  # the frames are untouched
        expected = vfr_durations(16, np.random.default_rng([CONFIG.seed, 0, k, 0x5F5]))
        assert sample_durations(b) == [max(1, round(d * 512)) for d in expected]
        assert len(set(sample_durations(b))) > 2
        assert count_frames(vfr[name]) == 16
        np.testing.assert_array_equal(read_frames(vfr[name], range(16)), read_frames(plain[name], range(16)))
    for folder in ("default", "vfr"):  # everything but the mp4s and params.json is the same
        names = sorted(p.relative_to(sets[folder]).as_posix() for p in sets[folder].rglob("*") if p.is_file())
        assert names == sorted(p.relative_to(sets["default"]).as_posix()
                               for p in sets["default"].rglob("*") if p.is_file())


def test_vfr_durations_alternate_stretches_at_the_rate_and_a_third_of_it():
    durations = vfr_durations(400, np.random.default_rng(0))
    assert len(durations) == 400 and all(0.9 <= d <= 1.1 for d in durations[:4])
    assert all(0.9 <= d <= 1.1 or 2.7 <= d <= 3.3 for d in durations)
    slow = np.array([d > 2 for d in durations])
    assert 0.3 < slow.mean() < 0.7
    assert durations == vfr_durations(400, np.random.default_rng(0))


def test_retime_rewrites_timing_and_durations_by_hand(tmp_path):
    frames = [np.full((32, 32, 3), 10 * i, np.uint8) for i in range(6)]
    write_mp4(tmp_path / "a.mp4", frames, 30.0)
    data = (tmp_path / "a.mp4").read_bytes()
    new = retime(data, [512, 512, 1536, 1536, 1536, 700])
    assert sample_durations(new) == [512, 512, 1536, 1536, 1536, 700]
    mdhd = find_box(new, ["moov", "trak", "mdia", "mdhd"])[-1]
    assert int.from_bytes(new[mdhd[1] + 8 + 16:mdhd[1] + 8 + 20], "big") == 6332  # media duration, ticks
    mvhd = find_box(new, ["moov", "mvhd"])[-1]
    assert int.from_bytes(new[mvhd[1] + 8 + 16:mvhd[1] + 8 + 20], "big") == round(6332 * 1000 / 15360)  # ms
    assert [b[0] for b in iter_boxes(new)] == [b[0] for b in iter_boxes(data)]
    (tmp_path / "b.mp4").write_bytes(new)
    assert count_frames(tmp_path / "b.mp4") == 6
    with pytest.raises(Mp4Error, match="need 6 durations of at least one tick, got 5"):
        retime(data, [512] * 5)
    with pytest.raises(Mp4Error, match="a.mp4: 2 frame durations for 6 frames"):
        write_mp4(tmp_path / "a.mp4", frames, 30.0, frame_durations=[1.0, 2.0])


@needs_ffmpeg
def test_keyframe_interval_through_ffmpeg_and_vfr_on_top(tmp_path):
    config = SynthConfig(**{**CONFIG.__dict__, "vfr": True, "keyframe_interval": 5})
    build_dataset(tmp_path / "a", config, workers=1)
    build_dataset(tmp_path / "b", config, workers=2)
    params = json.loads((tmp_path / "a" / ".nia-synth" / "params.json").read_text())
    assert params["vfr"] is True and params["keyframe_interval"] == 5
    for name, mp4 in _mp4s(tmp_path / "a").items():
        data = mp4.read_bytes()
        assert data == (_mp4s(tmp_path / "b")[name]).read_bytes()  # byte-identical rerun
        assert sync_samples(data) == [0, 5, 10, 15] and len(set(sample_durations(data))) > 2
        frames = read_frames(mp4, range(16))
        pngs = sorted((mp4.parent / mp4.stem).glob("*.png"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        import cv2

        for frame, png in zip(frames, pngs):
            truth = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
            assert np.abs(frame.astype(int) - truth).mean() < 3.0  # the same picture, lossy-coded


@needs_ffmpeg
def test_b_frames_cannot_be_retimed(tmp_path):
    frames = [np.full((32, 32, 3), 10 * i, np.uint8) for i in range(8)]
    write_mp4(tmp_path / "b.mp4", frames, 30.0, keyframe_interval=4, b_frames=2)
    with pytest.raises(Mp4Error, match="composition offsets"):
        retime((tmp_path / "b.mp4").read_bytes(), [512] * 8)


def test_cli_flags_reach_the_config(tmp_path, monkeypatch):
    runner = CliRunner()
    args = ["synth", str(tmp_path / "v"), "--subjects", "1", "--videos-per-subject", "1", "--frames-per-video", "16",
            "--size", "96x54", "--workers", "1", "--vfr"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    params = json.loads((tmp_path / "v" / ".nia-synth" / "params.json").read_text())
    assert params["vfr"] is True and "keyframe_interval" not in params
    bad = runner.invoke(main, ["synth", str(tmp_path / "k"), "--keyframe-interval", "0"])
    assert bad.exit_code == 2 and "--keyframe-interval" in bad.output
    monkeypatch.setattr(shutil, "which", lambda name: None)
    missing = runner.invoke(main, [args[0], str(tmp_path / "w"), *args[2:-1], "--keyframe-interval", "4"])
    assert missing.exit_code == 1 and "--keyframe-interval needs the ffmpeg program" in missing.output
    assert not (tmp_path / "w").exists()  # refused before anything was written


def test_hashes_of_a_default_set_do_not_depend_on_the_new_code_path(sets, tmp_path):
    """A second default build gives the same bytes (the full demo recipe was compared before/after by hand)."""
    build_dataset(tmp_path / "again", CONFIG, workers=1)

    def digest(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in root.rglob("*") if p.is_file()}

    assert digest(tmp_path / "again") == digest(sets["default"])
