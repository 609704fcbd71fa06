"""Label rate of `nia index` against a plain json.load walk and a read-only walk.

Writes N label files of realistic size (the published example, pretty-printed,
about 3.5 kB each) plus a PNG per label (a uniform 1920x1080 image, 6 kB: `nia
index` reads its first 33 and last 12 bytes) into a temporary directory,
warms the page cache, then times in one run on the same files:

* read-only: os.walk + reading every JSON's bytes (the I/O limit),
* plain: os.walk + ``json.load`` of every JSON, one process,
* ``nia index`` (``common.delivery.manifest.build_index``) with all cores, fresh
  (``reuse=False``) and re-index of the unchanged tree (stat calls + reuse).

The four are timed in turn, ``--rounds`` times (the machine is shared: other
load comes and goes); each round's ratios are printed, and the ratios of the
best time of each. Then the stages of the best fresh index (walk, pair,
parse, ...).

Targets (issue 2, on 2 cores): index >= 4x plain and >= 0.5x read-only.

Usage: python bench/bench_index.py [N] [--workers W] [--rounds R]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import frame_label, png_bytes, video_stem  # noqa: E402  (the test fixtures' label writer)

from common.delivery.manifest import build_index, default_workers  # noqa: E402


def write_labels(root: Path, n: int) -> None:
    """n frame labels in 100-file folders, each with a PNG beside it."""
    png = png_bytes(1920, 1080)
    for i in range(n):
        subject = f"{i // 2000 % 1000:03d}"
        stem = f"{video_stem(subject, 10 + i // 100 % 50, 'S', 'rgb', 'F', 'D')}_{i % 100}"
        folder = root / subject / f"{i // 100:05d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        label = frame_label(stem, subject, "S", "rgb", "F", "D", i % 100, (100 + i % 1700, 100 + i % 900))
        (folder / f"{stem}.json").write_text(json.dumps(label, indent=2), encoding="utf-8")
        (folder / f"{stem}.png").write_bytes(png)


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


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the index workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, *args, **kwargs):
    """(wall seconds, CPU seconds, return value)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, cpu_seconds() - cpu, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=20000, help="number of label files (default 20000)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="index worker processes (default: all cores)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds; best of each is compared (default 3)")
    args = parser.parse_args()
    names = ("read-only", "plain json.load", "nia index", "nia re-index")
    best = dict.fromkeys(names, float("inf"))
    cpu = dict.fromkeys(names, float("inf"))
    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="nia-bench-") as tmp:
        root = Path(tmp) / "tree"
        write_labels(root, args.n)
        size = os.path.getsize(next(json_files(root)))
        read_only(root)  # warm the page cache: all rates are measured warm
        print(f"{args.n} labels, {args.workers} worker(s), {size} bytes per label")
        for r in range(args.rounds):
            out = Path(tmp) / f"manifest{r}.parquet"
            runs = {"read-only": timed(read_only, root), "plain json.load": timed(plain_json, root),
                    "nia index": timed(build_index, root, out, args.workers, reuse=False),
                    "nia re-index": timed(build_index, root, out, args.workers)}
            times = {k: wall for k, (wall, _, _) in runs.items()}
            cpu = {k: min(cpu[k], runs[k][1]) for k in names}
            result, again = runs["nia index"][2], runs["nia re-index"][2]
            if again.n_parsed or again.n_reused != args.n:
                raise SystemExit(f"re-index parsed {again.n_parsed} labels of an unchanged tree (expected 0)")
            if times["nia index"] < best["nia index"]:
                stages = result.seconds
            best = {k: min(best[k], times[k]) for k in names}
            print(f"round {r + 1}: " + ", ".join(f"{k} {times[k]:.2f} s" for k in names)
                  + f"; index/plain {times['plain json.load'] / times['nia index']:.2f}x"
                  + f", index/read-only {times['read-only'] / times['nia index']:.2f}x")
    print("best of each (wall; CPU of all our processes, which other load on the machine does not inflate as much):")
    for name in names:
        print(f"  {name:16s} {best[name]:7.2f} s  {args.n / best[name]:9.0f} labels/s"
              f"   CPU {cpu[name]:6.2f} s = {cpu[name] / args.n * 1e6:5.1f} us/label")
    print("  index stages:   " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))
    print(f"index / plain     = {best['plain json.load'] / best['nia index']:.2f}x  (target >= 4)")
    print(f"index / read-only = {best['read-only'] / best['nia index']:.2f}x  (target >= 0.5)")
    print(f"re-index / index  = {best['nia index'] / best['nia re-index']:.2f}x faster than a fresh index")
    print(f"CPU per label, plain / index = {cpu['plain json.load'] / cpu['nia index']:.2f}x "
          f"(with {args.workers} idle cores the wall ratio could reach at most {args.workers}x this)")


if __name__ == "__main__":
    main()
