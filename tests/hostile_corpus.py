"""The hostile corpus: bad inputs made by code (no binary file is committed), with what each must give.

A :class:`Case` says what the input is, the one line the suite must print
about it (every string of ``line`` appears in that line; ``{file}`` is the
input's name) and the exit code. Those four are data, in ``tests/hostile_cases.json`` (one table per group of
cases, with its area and where its line is); this module adds the code that makes each input (a table's
makers, by case id). The tests that feed each area's cases to the
suite are ``tests/hostile/test_hostile_*.py``; ``python -m tests.hostile_corpus``
prints the table of docs/reliability.md.

Where a case is one file of a delivery (labels, media, trees, members of a
zip), the run goes on with the rest: the line is where the suite records it
(the manifest's ``error`` column, ``crops_skipped.csv``, the clip index's
``error``, a ``refused:``/``warning:`` line of ``nia prepare``) and the exit
code is that of the run over the whole delivery.
"""
from __future__ import annotations

import io
import json
import math
import os
import stat
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Case:
    id: str
    area: str
    input: str                       # what the hostile input is
    line: tuple[str, ...]            # strings the one line must hold ({file}: the input's name)
    code: int                        # exit code of the command (of the run over the delivery)
    make: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    where: str = "stderr"            # where the line is: stderr, or the file/column that records it

    def expected(self, file: str = "") -> list[str]:
        return [part.replace("{file}", file) for part in self.line]


CASES_FILE = Path(__file__).with_name("hostile_cases.json")
_TABLES: dict[str, dict[str, Any]] = json.loads(CASES_FILE.read_text(encoding="utf-8"))


def _cases(table: str, makers: dict[str, Callable[..., Any]] | None = None, extra: tuple = ()) -> list[Case]:
    """The cases of ``table`` in hostile_cases.json (rows ``[id, input, line, code]``, then the rows of ``extra``),
    each given its maker from ``makers`` (by id; a maker for no case of the table is an error)."""
    spec = _TABLES[table]
    rows = [*spec["cases"], *extra]
    makers = makers or {}
    for row in rows:
        if len(row) != 4:
            raise ValueError(f"{CASES_FILE.name}: table {table}, case {row[0]!r}: expected [id, input, line, code]")
    unknown = sorted(set(makers) - {row[0] for row in rows})
    if unknown:
        raise KeyError(f"{CASES_FILE.name}: table {table} has no case {', '.join(unknown)} (a maker names it)")
    return [Case(id_, spec["area"], input_, tuple(line), code, makers.get(id_), spec["where"])
            for id_, input_, line, code in rows]


# --- labels: one frame label of a delivery (nia index: the manifest's error column) ---------------------

def _edit(path: list, value: Any) -> Callable[[dict], bytes]:
    """A label with the value at ``path`` (keys and indices under the root) set, or deleted when ``value``
    is _DELETE; NaN and infinities are written as JSON's NaN / Infinity tokens."""
    def make(label: dict) -> bytes:
        node = label
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return json.dumps(label).encode()
    return make


_DELETE = object()
_A = "Annotations"


def _text(data: bytes) -> Callable[[dict], bytes]:
    return lambda label: data


def _cut(label: dict) -> bytes:
    data = json.dumps(label).encode()
    return data[:len(data) // 2]


LABELS = _cases("LABELS", {
    "label_empty": _text(b""),
    "label_truncated": _cut,
    "label_malformed": _text(b"{broken: yes"),
    "label_not_utf8": _text('{"Annotations": "눈"}'.encode("cp949")),
    "label_array_root": _text(b"[1, 2, 3]"),
    "label_nesting_bomb": _text(b"[" * 100_000 + b"]" * 100_000),
    "label_missing_pose": _edit([_A, "pose"], _DELETE),
    "label_missing_metaid": _edit([_A, "metaid"], _DELETE),
    "label_wrong_type_head": _edit([_A, "pose", "head"], "up"),
    "label_bool_distance": _edit([_A, "distance", "cam"], True),
    "label_unknown_inst": _edit([_A, "inst"], "X"),
    "label_unknown_shape": _edit([_A, "annotations", 0, "label"], "nose"),
    "label_nan": _edit([_A, "pose", "head", 1], math.nan),
    "label_inf": _edit([_A, "pose", "point", 0], math.inf),
    "label_huge_integer": _edit([_A, "distance", "cam"], 10 ** 400),
    "label_zero_radius": _edit([_A, "annotations", 0, "rx"], 0),
    "label_two_point_eyelid": _edit([_A, "annotations", 2, "points"], [[1, 2], [3, 4]]),
    "label_negative_distance": _edit([_A, "distance", "display"], -5),
    "label_outside_image": _edit([_A, "annotations", 0, "cx"], 5000.0),
})


# --- media: a PNG of a frame (nia index: image_error; nia crops: crops_skipped.csv) ------------------------

def png(width: int, height: int, value: int = 90, idat: bytes | None = None) -> bytes:
    """An 8-bit RGB PNG; ``idat`` replaces the compressed pixel data (for damaged files)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\x00" + bytes([value]) * (3 * width)
    data = idat if idat is not None else zlib.compress(row * height, 6)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


FRAME = (1920, 1080)

PNGS = _cases("PNGS", {
    "png_empty": lambda good: b"",
    "png_truncated": lambda good: good[:len(good) // 2],
    "png_not_png": lambda good: b"GIF89a, not a png" * 8,
    "png_wrong_size": lambda good: png(640, 360),
    "png_pixel_bomb": lambda good: png(60000, 60000, idat=zlib.compress(b"\0" * 1000)),
    "png_damaged_pixels": lambda good: png(*FRAME, idat=b"\x78\x9c" + b"\xff" * 200),
})


# --- media: videos (nia clips: the clip index's reason and error) ------------------------------------------

def coded_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """``n`` BGR frames with a moving bar (P-frames carry motion)."""
    frames = []
    for i in range(n):
        frame = np.full((height, width, 3), 96, np.uint8)
        x = (i * 3) % (width - 8)
        frame[20:28, x:x + 8] = 220
        frames.append(frame)
    return frames


def _mp4(n: int, durations: list[float] | None = None) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        from common.synth.mp4 import write_mp4

        write_mp4(path, coded_frames(n), 30.0, frame_durations=durations)
    return make


def _mp4_cut(path: Path) -> None:
    _mp4(24)(path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.6)])


def _mp4_rotated(path: Path) -> None:
    """20 frames of 64x48, the container tagged rotate=90 (stream copy by the ffmpeg program)."""
    import subprocess

    plain = path.with_name(f"plain_{path.name}")
    _mp4(20)(plain)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(plain), "-c", "copy", "-metadata:s:v", "rotate=90",
                    str(path)], check=True)
    plain.unlink()


def _mp4_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


VIDEOS = _cases("VIDEOS", {
    "mp4_empty": _mp4_bytes(b""),
    "mp4_truncated": _mp4_cut,
    "mp4_not_mp4": _mp4_bytes(b"this is not a video\n" * 50),
    "mp4_short": _mp4(8),
    "mp4_vfr": _mp4(20, [1.0] * 10 + [3.0] * 10),
    "mp4_rotated": _mp4_rotated,
})


# --- coverage: one sample of the scored split damaged (the three tests, every shape of --data; issue 19) -----------

def _unlink(column: str) -> Callable[[Path, Any], None]:
    return lambda root, row: (root / row[column]).unlink()


def _rewrite(column: str, change: Callable[[bytes, Any], bytes]) -> Callable[[Path, Any], None]:
    def make(root: Path, row: Any) -> None:
        path = root / row[column]
        path.write_bytes(change(path.read_bytes(), row))
    return make


def _first_half(data: bytes, row: Any) -> bytes:
    return data[:len(data) // 2]


def _pixels_that_do_not_inflate(data: bytes, row: Any) -> bytes:
    """The row's PNG with a sound header of its size and pixel data that does not inflate."""
    return png(row["png_width"], row["png_height"], idat=b"\x78\x9c" + b"\xff" * 200)


def _condition_x(data: bytes, row: Any) -> bytes:
    label = json.loads(data)
    label["Annotations"]["condition"] = "X"
    return json.dumps(label).encode()


COVERAGE = _cases("COVERAGE", {
    "cov_frame_png_missing": _unlink("png_path"),
    "cov_frame_png_truncated": _rewrite("png_path", _first_half),
    "cov_frame_png_damaged_pixels": _rewrite("png_path", _pixels_that_do_not_inflate),
    "cov_frame_label_missing": _unlink("json_path"),
    "cov_frame_label_truncated": _rewrite("json_path", _first_half),
    "cov_frame_unknown_condition": _rewrite("json_path", _condition_x),
    "cov_video_mp4_missing": _unlink("video_path"),
    "cov_video_label_truncated": _rewrite("json_path", _first_half),
})


def is_video_case(case: Case) -> bool:
    """A coverage case that damages a video sample (else a frame sample)."""
    return case.id.startswith("cov_video_")


# --- prepared indexes given as --data: paths that would leave the dataset folder (issue 19) ----------------------

INDEXES = _cases("INDEXES")
INDEX_FILES = _cases("INDEX_FILES")


# --- deliveries (nia prepare SRC DEST, each case alone in SRC beside a good archive) --------------------------

def zip_bytes(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method) as z:
        warnings.simplefilter("ignore")  # "Duplicate name": on purpose
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def zip_raw_names(members: dict[bytes, bytes]) -> bytes:
    """Names as raw bytes with the UTF-8 flag clear (old Korean tools' CP949): ASCII stand-ins of the same
    length are written, then swapped for the raw bytes in both headers."""
    stand_ins = {f"{i}".rjust(len(raw), "Q").encode(): raw for i, raw in enumerate(members)}
    data = zip_bytes([(s.decode(), members[raw]) for s, raw in stand_ins.items()])
    for s, raw in stand_ins.items():
        data = data.replace(s, raw)
    return data


def zip_with_symlink(name: str, target: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok/kept.json", b"{}")
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, target)
    return buf.getvalue()


def bad_crc_zip() -> bytes:
    data = bytearray(zip_bytes([("ok/first.json", b"fine"), ("ok/damaged.json", b"hello world " * 100)]))
    at = data.index(b"ok/damaged.json") + len("ok/damaged.json") + 5  # inside its compressed data
    data[at] ^= 0xFF
    return bytes(data)


def write_parts(folder: Path, name: str, data: bytes, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(data) // n)
    paths = []
    for i in range(n):
        path = folder / f"{name}.part{i}"
        path.write_bytes(data[i * size:(i + 1) * size])
        paths.append(path)
    return paths


def _single(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    def make(src: Path) -> None:
        (src / name).write_bytes(data() if callable(data) else data)
    return make


def _parts_then(edit: Callable[[list[Path]], None]) -> Callable[[Path], None]:
    def make(src: Path) -> None:
        edit(write_parts(src, "bad.zip", zip_bytes([(f"p/{i}.json", b"x" * 300) for i in range(20)]), 3))
    return make


def _both_forms(src: Path) -> None:
    data = zip_bytes([("p/a.json", b"1")])
    (src / "bad.zip").write_bytes(data)
    write_parts(src, "bad.zip", data, 2)


def _many_small_zeros() -> bytes:
    return zip_bytes([(f"z/{i:04d}.bin", b"\0" * 10_000) for i in range(400)])


GOOD_ARCHIVE = ("good.zip", [("g/a.json", b'{"a": 1}'), ("g/b.png", b"\x89PNG fake" * 20)])

DELIVERIES = _cases("DELIVERIES", {
    "zip_merge_empty": _parts_then(lambda parts: [p.write_bytes(b"") for p in parts]),
    "zip_merge_truncated": _parts_then(lambda parts: parts[-1].write_bytes(parts[-1].read_bytes()[:-40])),
    "zip_part_missing": _parts_then(lambda parts: parts[1].unlink()),
    "zip_merged_and_parts": _both_forms,
    "zip_not_a_zip": _single("bad.zip", b"PK? no, just text\n" * 10),
    "zip_member_dotdot": _single("bad.zip", zip_bytes([("fine.txt", b"1"), ("../escape.txt", b"2")])),
    "zip_member_absolute": _single("bad.zip", zip_bytes([("fine.txt", b"1"), ("/abs/escape.txt", b"2")])),
    "zip_member_drive": _single("bad.zip", zip_bytes([("C:\\escape.txt", b"2")])),
    "zip_member_symlink": _single("bad.zip", zip_with_symlink("ok/link", "/etc/passwd")),
    "zip_member_duplicate": _single("bad.zip", lambda: zip_bytes([("d/a.json", b"first"), ("d/a.json", b"second")])),
    "zip_bad_crc": _single("bad.zip", bad_crc_zip),
    "zip_bomb_member": _single("bad.zip", lambda: zip_bytes([("z.bin", b"\0" * (50 << 20))])),
    "zip_bomb_many_small": _single("bad.zip", _many_small_zeros),
    "zip_file_vs_folder": _single("bad.zip", lambda: zip_bytes([("x", b"file"), ("x/y.json", b"{}")])),
    "zip_cp949_names": _single("bad.zip", lambda: zip_raw_names({"원천데이터/눈.png".encode("cp949"): b"cp949"})),
})


# --- trees (nia index ROOT) -----------------------------------------------------------------------------------

TREES = _cases("TREES")


# --- score-only predictions (--predictions of the three validation entry points) ----------------------------------

def predictions_csv(names: list[str], pitch: list[float], yaw: list[float]) -> str:
    lines = ["name,pitch,yaw"] + [f"{n},{p!r},{y!r}" for n, p, y in zip(names, pitch, yaw)]
    return "\n".join(lines) + "\n"


L2CS_PREDICTIONS = _cases("L2CS_PREDICTIONS")

# a folder of class-map PNGs {crop id}.png; {file} is the PNG in question (the folder for rit_pred_not_a_folder)
RIT_PREDICTIONS = _cases("RIT_PREDICTIONS")

# CSV name,label (F, S, D, A, N)
DFER_PREDICTIONS = _cases("DFER_PREDICTIONS")

PREDICTIONS = L2CS_PREDICTIONS + RIT_PREDICTIONS + DFER_PREDICTIONS


# --- weights (--weights of the three validation entry points) --------------------------------------------------

MARKER_NAME = "pwned.marker"


class RunsCode:
    """Unpickling this calls ``os.system`` to create a marker file: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def pickle_that_runs_code(path: Path, marker: Path, *, legacy: bool = False) -> None:
    """A torch.save file whose unpickling would run ``touch marker`` (a plain pickle reduce); ``legacy``: in
    the stream format of torch < 1.6 (RIT-Net's shipped ``best_model.pkl`` is one)."""
    import torch

    torch.save({"fc_yaw_gaze.weight": RunsCode(marker)}, path, _use_new_zipfile_serialization=not legacy)


TORCHSCRIPT_SOURCE = """
from typing import Tuple

import torch


class Payload(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.zeros(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        # torch.from_file(shared=True) creates the file: what torch.jit.load runs when it loads the archive
        self.w = state[0] + torch.from_file({marker!r}, True, 2)
        self.training = state[1]
"""


def torchscript_that_runs_code(path: Path, marker: Path) -> None:
    """A TorchScript archive whose ``__setstate__`` creates ``marker`` when loaded: torch 1.13's
    ``torch.load(weights_only=True)`` hands such a zip to ``torch.jit.load``, which runs it."""
    import importlib.util

    import torch

    source = path.parent / f"{path.stem}_torchscript.py"   # torch.jit.script reads the class's source file
    source.write_text(TORCHSCRIPT_SOURCE.format(marker=str(marker)))
    spec = importlib.util.spec_from_file_location(source.stem, source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.jit.script(module.Payload()).save(str(path))


def _weights_that_run_code(test: str) -> tuple:
    """The weights cases whose loading would run code (the marker must never appear), alike for every test
    (``test``: the id prefix)."""
    return (
        (f"{test}weights_pickle_runs_code", "a pickle whose loading runs os.system",
         ["{file}", "refused: the pickle calls posix.system"], 2),
        (f"{test}weights_legacy_runs_code", "the same in torch's pre-1.6 stream format",
         ["{file}", "refused: the pickle calls posix.system"], 2),
        (f"{test}weights_torchscript", "a TorchScript archive whose __setstate__ creates a file",
         ["{file}", "refused: a TorchScript archive"], 2),
    )


L2CS_WEIGHTS = _cases("L2CS_WEIGHTS", extra=_weights_that_run_code(""))

RIT_WEIGHTS = _cases("RIT_WEIGHTS", extra=_weights_that_run_code("rit_"))

DFER_WEIGHTS = _cases("DFER_WEIGHTS", extra=_weights_that_run_code("dfer_"))

WEIGHTS = L2CS_WEIGHTS + RIT_WEIGHTS + DFER_WEIGHTS


def weights_kind(case: Case) -> str:
    """The kind of bad weights a case is, whichever test it is for: ``rit_weights_empty`` -> ``weights_empty``."""
    return case.id[case.id.index("weights_"):]


def write_hostile_weights(kind: str, path: Path, ours: Path, marker: Path, *, format_tag: str, wider: dict[str, Any],
                          other_test: Path | None = None) -> None:
    """Write the bad weights file of ``kind`` to ``path``.

    ``ours``: a checkpoint of the test's own ``format_tag`` (safetensors + JSON); ``wider``: config entries that,
    written into its header, make it describe another width than its tensors have; ``other_test``: a
    checkpoint of another of the suite's tests.
    """
    import torch

    if kind == "weights_empty":
        path.write_bytes(b"")
    elif kind == "weights_truncated":
        data = ours.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif kind == "weights_random":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "weights_other_model":
        import torchvision

        torch.save(torchvision.models.resnet18().state_dict(), path)
    elif kind == "weights_other_test":
        assert other_test is not None
        path.write_bytes(other_test.read_bytes())
    elif kind == "weights_wrong_shapes":
        from common.engine.checkpoint import read_checkpoint, save_checkpoint

        state = read_checkpoint(ours, (format_tag,))
        state["config"].update(wider)
        save_checkpoint(path, state, format_tag)
    elif kind == "weights_pickle_runs_code":
        pickle_that_runs_code(path, marker)
    elif kind == "weights_legacy_runs_code":
        pickle_that_runs_code(path, marker, legacy=True)
    elif kind == "weights_torchscript":
        torchscript_that_runs_code(path, marker)
    else:
        raise ValueError(f"unknown kind of weights {kind!r}")


# --- reports (nia report RESULTS_DIR... and nia suite over result folders and report.json) --------------------

REPORTS = _cases("REPORTS")


# --- outputs and options ------------------------------------------------------------------------------------------

OUTPUTS = _cases("OUTPUTS")

OPTIONS = _cases("OPTIONS")

# --- the suite's own runs: make validate-*, nia suite, the verdict table (tests/hostile/test_hostile_suite.py) -------------

SUITE_RUNS = _cases("SUITE_RUNS")

# --- the --data of the validation entry points: a damaged index (tests/hostile/test_hostile_rit_dfer.py) --------------------

DATASETS = _cases("DATASETS")

ALL: list[Case] = (LABELS + PNGS + VIDEOS + COVERAGE + INDEXES + INDEX_FILES + DELIVERIES + TREES + PREDICTIONS + WEIGHTS
                   + REPORTS + OUTPUTS + OPTIONS + SUITE_RUNS + DATASETS)


def by_id(cases: list[Case]) -> dict[str, Case]:
    return {c.id: c for c in cases}


def markdown_table() -> str:
    """The table of docs/reliability.md: area, case, input -> where the line is and what it holds -> exit code."""
    lines = ["| area | case | input | the line is in | it holds | exit |", "|---|---|---|---|---|---|"]
    for c in ALL:
        shown = " ... ".join(f"`{part}`" for part in c.line) if c.line else "(no line: handled)"
        lines.append(f"| {c.area} | `{c.id}` | {c.input} | {c.where} | {shown} | {c.code} |")
    return "\n".join(lines)


def counts() -> dict[str, int]:
    out: dict[str, int] = {}
    for c in ALL:
        out[c.area] = out.get(c.area, 0) + 1
    return out


if __name__ == "__main__":
    print(markdown_table())
    print(counts(), len(ALL))
