"""nia index reads every PNG's header (bytes, not a decode) and checks the image against its labels.

Issue 10, item 5: a PNG at another resolution than its labels, labels outside
their image, and damaged files (0 bytes, not a PNG, truncated) used to be
``valid`` rows. Each is now invalid with a one-line reason naming the file.
"""
import json
import os
import zlib
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import common.delivery.manifest.workers as manifest_workers
from common.cli import main
from common.delivery.manifest import build_index, read_manifest, write_manifest
from common.delivery.png_header import PNG_SIGNATURE, read_png_header
from tests.conftest import png_bytes

SIZE = (1100, 400)  # holds the fixture labels (x 865..1055, y 280..303)


def _tree(nia_tree, frames: int = 4):
    """One subject, 2 videos (displays S and T, both RGB) of ``frames`` frames at 1100x400."""
    return nia_tree(1, videos_per_subject=2, frames_per_video=frames, image_size=SIZE)


def _index(root: Path, out: Path, **kw):
    result = build_index(root, out, workers=kw.pop("workers", 1), **kw)
    return result, read_manifest(out)[0].set_index("sample_id", drop=False)


def _file(tree, name: str) -> Path:
    return next(tree.root.rglob(name))


def _replace(path: Path, data: bytes) -> None:
    """New bytes and an mtime 1 s later, so that a re-index sees the change."""
    st = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


# --- the header reader ------------------------------------------------------------

def test_header_of_a_valid_png_gives_its_size(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(37, 21))
    header = read_png_header(str(path), "a.png")
    assert (header.width, header.height, header.error) == (37, 21, "")
    assert (header.size, header.mtime_ns) == (path.stat().st_size, path.stat().st_mtime_ns)


@pytest.mark.parametrize("data, reason", [
    (b"", "a.png: PNG file: empty file (0 bytes)"),
    (b"<!DOCTYPE html><html>403</html>", "a.png: PNG file: not a PNG (starts with 3c 21 44 4f 43 54 59 50)"),
    (png_bytes(8, 8)[:20], "a.png: PNG file: truncated header (20 bytes; the signature and IHDR chunk need 33)"),
    (png_bytes(8, 8)[:-30], "a.png: PNG file: truncated (the file does not end with the IEND chunk)"),
    (png_bytes(8, 8)[:16] + b"\x00\x00\x00\x09" + png_bytes(8, 8)[20:],
     "a.png: PNG file: IHDR checksum does not match (damaged header)"),
    (PNG_SIGNATURE + b"\x00\x00\x00\x0dIDAT" + b"\x00" * 40, "a.png: PNG file: first chunk is 'IDAT', not IHDR"),
])
def test_damaged_headers_are_named_with_a_reason(tmp_path, data, reason):
    (tmp_path / "a.png").write_bytes(data)
    header = read_png_header(str(tmp_path / "a.png"), "a.png")
    assert header.error == reason and header.width is None and header.height is None


def test_zero_width_is_refused(tmp_path):
    ihdr = b"IHDR" + (0).to_bytes(4, "big") + (5).to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    data = PNG_SIGNATURE + (13).to_bytes(4, "big") + ihdr + zlib.crc32(ihdr).to_bytes(4, "big") + png_bytes(1, 1)[33:]
    (tmp_path / "a.png").write_bytes(data)
    assert read_png_header(str(tmp_path / "a.png"), "a.png").error == "a.png: PNG file: image size 0x5"


# --- the manifest --------------------------------------------------------------------

def test_frames_carry_their_png_size_and_stay_valid(nia_tree, tmp_path):
    tree = _tree(nia_tree)
    result, df = _index(tree.root, tmp_path / "m.parquet")
    frames = df[df["kind"] == "frame"]
    assert result.n_invalid == 0 and frames["valid"].all()
    assert set(frames["png_width"]) == {1100} and set(frames["png_height"]) == {400}
    assert df.loc[tree.videos[0], ["png_width", "png_height"]].isna().all()
    assert (df["image_error"] == "").all()


def test_damaged_pngs_are_invalid_and_named(nia_tree, tmp_path):
    tree = _tree(nia_tree)
    f = tree.frames
    _file(tree, f"{f[0]}.png").write_bytes(b"")
    _file(tree, f"{f[1]}.png").write_bytes(b"GIF89a not a png at all")
    _file(tree, f"{f[2]}.png").write_bytes(png_bytes(*SIZE)[:25])
    _file(tree, f"{f[3]}.png").write_bytes(png_bytes(*SIZE)[:-1])
    result, df = _index(tree.root, tmp_path / "m.parquet")
    assert result.n_invalid == 4 and df.loc[f[4:], "valid"].all()
    reasons = {stem: df.loc[stem, "error"] for stem in f[:4]}
    for stem, reason in zip(f[:4], ("empty file (0 bytes)", "not a PNG (starts with 47 49 46 38",
                                      "truncated header (25 bytes", "does not end with the IEND chunk")):
        assert reasons[stem].startswith(df.loc[stem, "png_path"] + ": PNG file: "), reasons[stem]
        assert reason in reasons[stem]
        assert df.loc[stem, "image_error"] == reasons[stem] and pd.isna(df.loc[stem, "png_width"])
    assert result.image_problems == {"PNG file": 4}


def test_an_image_at_another_size_than_the_delivery_is_invalid(nia_tree, tmp_path):
    tree = _tree(nia_tree)  # S/rgb frames f[0..3], T/rgb frames f[4..7]
    f = tree.frames
    _file(tree, f"{f[1]}.png").write_bytes(png_bytes(1280, 720))  # labels fit, the size does not
    _file(tree, f"{f[5]}.png").write_bytes(png_bytes(160, 90))  # labels far outside it too
    _, df = _index(tree.root, tmp_path / "m.parquet")
    assert not df.loc[f[1], "valid"] and not df.loc[f[5], "valid"]
    assert df.loc[f[1], "error"] == (f"{df.loc[f[1], 'png_path']}: image size: 1280x720, "
                                     "but 3 of the 4 S/rgb images are 1100x400")
    assert df.loc[f[5], "error"] == (f"{df.loc[f[5], 'png_path']}: image size: 160x90, "
                                     "but 3 of the 4 T/rgb images are 1100x400")
    assert (df.loc[f[1], "png_width"], df.loc[f[1], "png_height"]) == (1280, 720)
    assert df.loc[[s for s in f if s not in (f[1], f[5])], "valid"].all()


def test_no_strict_majority_marks_no_size(nia_tree, tmp_path):
    tree = nia_tree(1, videos_per_subject=1, frames_per_video=2, image_size=SIZE)
    _file(tree, f"{tree.frames[1]}.png").write_bytes(png_bytes(1280, 720))
    _, df = _index(tree.root, tmp_path / "m.parquet")
    assert df.loc[tree.frames, "valid"].all()  # 1 of 2: neither size is the delivery's


def test_labels_outside_their_image_are_invalid(nia_tree, tmp_path):
    tree = _tree(nia_tree)
    f = tree.frames
    path = _file(tree, f"{f[2]}.json")
    label = json.loads(path.read_text(encoding="utf-8"))
    lid = next(s for s in label["Annotations"]["annotations"] if s["label"] == "l_eyelid")
    lid["points"][3] = [1103.5, 298]  # 3.5 px beyond the right edge (tolerance 2 px)
    path.write_text(json.dumps(label), encoding="utf-8")
    path = _file(tree, f"{f[3]}.json")
    label = json.loads(path.read_text(encoding="utf-8"))
    lid = next(s for s in label["Annotations"]["annotations"] if s["label"] == "l_eyelid")
    lid["points"][3] = [1101.5, 298]  # within the tolerance
    path.write_text(json.dumps(label), encoding="utf-8")
    _, df = _index(tree.root, tmp_path / "m.parquet")
    assert not df.loc[f[2], "valid"] and df.loc[f[3], "valid"]
    assert df.loc[f[2], "error"] == (f"{df.loc[f[2], 'json_path']}: labels outside image: l_eyelid point "
                                     "(1103.5, 298.0) lies outside the 1100x400 PNG (tolerance 2 px)")


def test_reindex_reads_only_changed_pngs_and_drops_added_columns_of_rows_that_changed(nia_tree, tmp_path,
                                                                                      monkeypatch):
    tree = _tree(nia_tree)
    f = tree.frames
    out = tmp_path / "m.parquet"
    build_index(tree.root, out, workers=1)
    df, root = read_manifest(out)
    df["split"] = "train"
    write_manifest(df, out, root)
    read = []
    real = manifest_workers.read_png_header
    monkeypatch.setattr(manifest_workers, "read_png_header", lambda path, rel: read.append(rel) or real(path, rel))
    result, df = _index(tree.root, out)
    assert read == [] and result.n_invalid == 0 and (df["split"] == "train").all()
    changed = _file(tree, f"{f[1]}.png")
    _replace(changed, png_bytes(1280, 720))
    result, df = _index(tree.root, out)
    assert read == [changed.relative_to(tree.root).as_posix()]
    assert result.n_parsed == 0 and not df.loc[f[1], "valid"] and "image size: 1280x720" in df.loc[f[1], "error"]
    assert pd.isna(df.loc[f[1], "split"]) and (df.loc[f[2:], "split"] == "train").all()
    _replace(changed, png_bytes(*SIZE))  # repaired: valid again, the labels were reused all along
    result, df = _index(tree.root, out)
    assert (result.n_parsed, result.n_invalid) == (0, 0) and df.loc[f[1], "valid"]


def test_damaged_png_is_read_again_on_reindex(nia_tree, tmp_path, monkeypatch):
    """A reused header must carry its error: an unreadable one is simply read again (they are few)."""
    tree = _tree(nia_tree)
    bad = _file(tree, f"{tree.frames[0]}.png")
    bad.write_bytes(b"")
    out = tmp_path / "m.parquet"
    build_index(tree.root, out, workers=1)
    read = []
    real = manifest_workers.read_png_header
    monkeypatch.setattr(manifest_workers, "read_png_header", lambda path, rel: read.append(rel) or real(path, rel))
    _, df = _index(tree.root, out)
    assert read == [bad.relative_to(tree.root).as_posix()]
    assert df.loc[tree.frames[0], "error"].endswith("PNG file: empty file (0 bytes)")


def test_parallel_equals_serial_with_damaged_images(nia_tree, tmp_path):
    tree = nia_tree(3, videos_per_subject=2, frames_per_video=3, image_size=SIZE)
    _file(tree, f"{tree.frames[4]}.png").write_bytes(b"x")
    _file(tree, f"{tree.frames[7]}.png").write_bytes(png_bytes(1280, 720))
    build_index(tree.root, tmp_path / "a.parquet", workers=1)
    build_index(tree.root, tmp_path / "b.parquet", workers=2, chunk=2)
    a, b = read_manifest(tmp_path / "a.parquet")[0], read_manifest(tmp_path / "b.parquet")[0]
    pd.testing.assert_frame_equal(a, b)
    assert (~a["valid"]).sum() == 2


def test_cli_index_names_the_damaged_images(nia_tree, tmp_path):
    tree = _tree(nia_tree)
    _file(tree, f"{tree.frames[0]}.png").write_bytes(b"")
    _file(tree, f"{tree.frames[5]}.png").write_bytes(png_bytes(1280, 720))
    res = CliRunner().invoke(main, ["index", str(tree.root), "--out", str(tmp_path / "m.parquet"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "invalid images: PNG file 1, image size 1" in res.output
    assert f"{tree.frames[0]}.png: PNG file: empty file (0 bytes)" in res.output
    assert f"{tree.frames[5]}.png: image size: 1280x720" in res.output
