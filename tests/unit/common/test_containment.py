"""common.containment: a file named by data is read only inside its folder."""
from __future__ import annotations

from pathlib import Path

from common.containment import escapes, inside_folder


def test_inside_folder_takes_a_plain_name_and_refuses_absolute_climbing_and_linked_out(tmp_path: Path) -> None:
    folder, outside = tmp_path / "result", tmp_path / "elsewhere"
    (folder / "overlays").mkdir(parents=True)
    outside.mkdir()
    (folder / "overlays" / "a.png").write_bytes(b"")
    (outside / "b.png").write_bytes(b"")
    (folder / "link").symlink_to(outside)
    assert inside_folder(folder, "overlays/a.png") == folder / "overlays" / "a.png"
    assert inside_folder(folder, str(outside / "b.png")) is None
    assert inside_folder(folder, "../elsewhere/b.png") is None
    assert inside_folder(folder, "link/b.png") is None


def test_escapes_spots_absolute_drive_and_parent_parts() -> None:
    assert [escapes(p) for p in ("a/b.jpg", "/etc/passwd", "C:\\x.jpg", "a/../../b", "a\\..\\b")] == [
        False, True, True, True, True]
