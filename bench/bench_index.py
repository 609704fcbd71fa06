"""Label rate of `nia index` against a plain json.load walk and a read-only walk.

Writes N label files of realistic size (the published example, pretty-printed,
about 3.5 kB each) plus an empty PNG per label into a temporary directory,
warms the page cache, then times in one run on the same files:

* read-only: os.walk + reading every JSON's bytes (the I/O limit),
* plain: os.walk + ``json.load`` of every JSON, one process,
* ``nia index`` (``common.manifest.build_index``) with all cores, fresh and re-index.

Targets (issue 2, on 2 cores): index >= 4x plain and >= 0.5x read-only.

Usage: python bench/bench_index.py [N] [--workers W]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import frame_label, video_stem  # noqa: E402  (the test fixtures' label writer)

from common.manifest import build_index, default_workers  # noqa: E402


def write_labels(root: Path, n: int) -> None:
    """n frame labels in 100-file folders, each with an empty PNG beside it."""
    for i in range(n):
        subject = f"{i // 2000 % 1000:03d}"
        stem = f"{video_stem(subject, 10 + i // 100 % 50, 'S', 'rgb', 'F', 'D')}_{i % 100}"
        folder = root / subject / f"{i // 100:05d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        label = frame_label(stem, subject, "S", "rgb", "F", "D", i % 100, (100 + i % 1700, 100 + i % 900))
        (folder / f"{stem}.json").write_text(json.dumps(label, indent=2), encoding="utf-8")
        (folder / f"{stem}.png").write_bytes(b"")


def json_files(root: Path):
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".json"):
                yield os.path.join(folder, name)


def read_only(root: Path) -> int:
    n = 0
    for path in json_files(root):
        with open(path, "rb") as f:
            f.read()
        n += 1
    return n


def plain_json(root: Path) -> int:
    n = 0
    for path in json_files(root):
        with open(path, encoding="utf-8") as f:
            json.load(f)
        n += 1
    return n


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=20000, help="number of label files (default 20000)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="index worker processes (default: all cores)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nia-bench-") as tmp:
        root = Path(tmp) / "tree"
        write_labels(root, args.n)
        read_only(root)  # warm the page cache: all three rates are measured warm
        t_read = timed(read_only, root)
        t_plain = timed(plain_json, root)
        out = Path(tmp) / "manifest.parquet"
        t_index = timed(build_index, root, out, args.workers)
        t_reindex = timed(build_index, root, out, args.workers)
        n = args.n
        print(f"{n} labels, {args.workers} worker(s), {os.path.getsize(next(json_files(root)))} bytes per label")
        for name, t in (("read-only", t_read), ("plain json.load", t_plain), ("nia index", t_index),
                        ("nia re-index", t_reindex)):
            print(f"  {name:16s} {t:7.2f} s  {n / t:9.0f} labels/s")
        print(f"index / plain     = {t_plain / t_index:.2f}x  (target >= 4)")
        print(f"index / read-only = {t_read / t_index:.2f}x  (target >= 0.5)")


if __name__ == "__main__":
    main()
