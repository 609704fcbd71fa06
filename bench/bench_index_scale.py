"""Does `nia index` scale linearly? Time and peak memory per size, extrapolated to 2.5 M labels.

Writes the largest tree once with bench_index.py's writer (realistic ~3.5 kB
labels and a 6 kB PNG each, 100 per folder), then for each size in
ascending order moves just enough of its folders into the indexed root (a
rename: nothing is rewritten), warms the page cache and runs, each in a new
child process so that its peak memory is its own:

* ``nia index``: ``build_index`` with all cores, fresh (``reuse=False``),
* ``nia re-index``: ``build_index`` again on the unchanged tree (the
  default of a second ``nia index``: stat calls, reuse of every label),
* ``nia stats`` and ``nia split`` (the commands themselves, output
  discarded), which follow the index.

Per command and size, the fastest of ``--repeat`` runs (other load only
slows a run down) with the largest memory of any: seconds, microseconds per
label, peak RSS of the main process (exact) and of the largest pool worker
(its VmHWM, read from /proc; a forked worker's RSS also counts pages it
shares with the parent), and the peak total PSS of the main process plus its
workers, sampled every ``--sample`` seconds from /proc (shared pages counted
once: what the run really needs; a short peak between samples can be
missed, so read it beside the main RSS).

Then the per-label slope between consecutive sizes, the extrapolation from
the two largest to 2.5 M labels, and whether the slope is flat (linear) or
growing (superlinear). On a shared machine the time slopes of single sizes
move by 20-30 % from run to run: read a "growing" time verdict against a
second run. ``--full-scale`` also runs ``nia stats`` and ``nia split`` on a
2.5 M-row manifest made of copies of the largest one: measured, not
extrapolated (``nia split`` converts at most one 1 Mi-row group at a time
for writing, which sizes up to 250k cannot show).

Usage: python bench/bench_index_scale.py [--sizes 25000,100000,250000] [--workers W] [--repeat R]
       [--full-scale]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_index import read_only, write_labels  # the same writer and cache warm-up as bench/bench_index.py

TARGET = 2_500_000  # labels of the full NIA delivery
PER_FOLDER = 100  # bench_index.write_labels puts 100 labels in each folder
GROWING = 1.25  # a per-label slope this much above the previous one counts as superlinear
COMMANDS = ("index", "re-index", "stats", "split")
MB = 1 << 20


# --- child process: one measured run -----------------------------------------------

def _proc_kib_field(pid: int, file: str, key: str) -> int:
    """A ``key: N kB`` line of /proc/PID/FILE, in bytes; 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/{file}", encoding="ascii") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _pss_bytes(pid: int) -> int:
    """Proportional set size of one process (shared pages split among their users); 0 if it is gone."""
    return _proc_kib_field(pid, "smaps_rollup", "Pss:")


def _peak_rss_bytes(pid: int) -> int:
    """Peak RSS so far of one process (VmHWM); 0 if it is gone."""
    return _proc_kib_field(pid, "status", "VmHWM:")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class PssSampler:
    """Peak over time of the PSS of this process plus its children (the index's pool workers),
    and the largest peak RSS of a child.

    The children's peak comes from /proc, not from ``RUSAGE_CHILDREN``: that
    also counts the ``uname`` that importing pandas runs, which the kernel
    credits with the RSS its parent had when it was spawned.
    """

    def __init__(self, interval: float) -> None:
        self.interval, self.peak, self.child_peak = interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval):
            children = _children(me)
            self.peak = max(self.peak, sum(_pss_bytes(p) for p in [me, *children]))
            self.child_peak = max([self.child_peak, *(_peak_rss_bytes(p) for p in children)])

    def __enter__(self) -> "PssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _pss_bytes(os.getpid()))


def replicate(src: str, dest: str, rows: int) -> None:
    """A manifest of ``rows`` rows made of copies of ``src``, each with its own sample ids, paths,
    videos and people: `nia stats` and `nia split` at full scale without millions of files."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(src)
    copies = []
    for k in range(-(-rows // table.num_rows)):
        copy = table
        for name in ("sample_id", "png_path", "json_path", "video_path", "video_stem", "metaid", "subject"):
            tagged = pc.binary_join_element_wise(pa.scalar(f"{k}"), copy.column(name), "/")  # null stays null
            copy = copy.set_column(copy.schema.get_field_index(name), name, tagged)
        copies.append(copy)
    pq.write_table(pa.concat_tables(copies).slice(0, rows), dest)


def _run_task(task: str, args: list[str]) -> dict:
    """Run one command here; its own numbers (seconds, and for the index its stages and counts)."""
    if task == "replicate":
        replicate(args[0], args[1], int(args[2]))
        return {"seconds": 0.0}
    if task in ("index", "re-index"):
        from common.delivery.manifest import build_index

        root, out, workers = args
        start = time.perf_counter()
        result = build_index(root, out, int(workers), reuse=task == "re-index")
        return {"seconds": time.perf_counter() - start, "rows": result.n_rows, "parsed": result.n_parsed,
                "stages": result.seconds}
    from common.cli import main

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        main([task, *args], standalone_mode=False)
    return {"seconds": time.perf_counter() - start}


def child(task: str, args: list[str], interval: float) -> None:
    """Entry point of the child process: run the task, print its numbers as one JSON line."""
    with PssSampler(interval) as pss:
        numbers = _run_task(task, args)
    own = resource.getrusage(resource.RUSAGE_SELF)
    numbers |= {"main_rss": own.ru_maxrss * 1024, "worker_rss": pss.child_peak, "total_pss": pss.peak}
    print(json.dumps(numbers))


# --- parent: trees, tables, verdict -------------------------------------------------

@dataclass
class Run:
    """One command on one size."""

    labels: int
    seconds: float
    main_mb: float
    worker_mb: float
    total_mb: float
    stages: dict[str, float] = field(default_factory=dict)


def measure_once(task: str, args: list[str], n: int, interval: float) -> Run:
    """Run ``task`` in a fresh Python process on a tree of ``n`` labels."""
    cmd = [sys.executable, __file__, "--child", task, "--sample", str(interval), "--", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{task} child failed ({done.returncode}):\n{done.stderr}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    if "rows" in got and (got["rows"] != n or (task == "re-index" and got["parsed"])):
        raise SystemExit(f"{task} of {n} labels: {got['rows']} rows, {got['parsed']} parsed")
    return Run(n, got["seconds"], got["main_rss"] / MB, got["worker_rss"] / MB, got["total_pss"] / MB,
               got.get("stages", {}))


def measure(task: str, args: list[str], n: int, interval: float, repeat: int) -> Run:
    """The fastest of ``repeat`` runs (other load on the machine only ever slows a run down),
    with the largest peak memory of any of them."""
    runs = [measure_once(task, args, n, interval) for _ in range(repeat)]
    best = min(runs, key=lambda r: r.seconds)
    return Run(n, best.seconds, max(r.main_mb for r in runs), max(r.worker_mb for r in runs),
               max(r.total_mb for r in runs), best.stages)


def grow_tree(spare: Path, root: Path, n: int) -> None:
    """Move folders from ``spare`` (the written tree) into ``root`` until it holds the first ``n`` labels."""
    for i in range(0, n, PER_FOLDER):
        src = next(spare.glob(f"*/{i // PER_FOLDER:05d}"), None)
        if src is None:
            continue  # moved for a smaller size
        dest = root / src.parent.name / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dest)


def run_size(tmp: Path, root: Path, n: int, args: argparse.Namespace) -> tuple[dict[str, Run], float]:
    """Every command on the tree of ``n`` labels; and the manifest's size on disk (MB)."""
    manifest = tmp / f"manifest{n}.parquet"
    tree = [str(root), str(manifest), str(args.workers)]
    runs = {"index": measure("index", tree, n, args.sample, args.repeat)}
    size = manifest.stat().st_size / MB
    runs["re-index"] = measure("re-index", tree, n, args.sample, args.repeat)
    runs["stats"] = measure("stats", [str(manifest), "--out", str(tmp / "stats")], n, args.sample, args.repeat)
    runs["split"] = measure("split", [str(manifest), "--out", str(tmp / "splits")], n, args.sample, args.repeat)
    return runs, size


HEADER = (f"{'command':9s} {'labels':>8s} {'seconds':>8s} {'us/label':>8s} {'main RSS MB':>11s} "
          f"{'worker RSS MB':>13s} {'total PSS MB':>12s}  stages (s)")


def run_line(command: str, r: Run) -> str:
    stages = ", ".join(f"{k} {v:.2f}" for k, v in r.stages.items())
    return (f"{command:9s} {r.labels:8d} {r.seconds:8.2f} {r.seconds / r.labels * 1e6:8.1f} {r.main_mb:11.0f} "
            f"{r.worker_mb:13.0f} {r.total_mb:12.0f}  {stages}")


def slopes(xs: list[int], ys: list[float]) -> list[float]:
    """Per-label growth of ``ys`` between consecutive sizes ``xs``."""
    return [(y1 - y0) / (x1 - x0) for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:])]


def verdict(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a (needs three sizes)"
    if values[-2] <= 0:
        return "n/a (the previous slope is not positive: sizes too small to tell)"
    growth = values[-1] / values[-2]
    return f"{'growing (superlinear)' if growth > GROWING else 'flat (linear)'}, last slope / previous = {growth:.2f}"


def scaling_line(name: str, xs: list[int], ys: list[float], per_label_unit: str, scale: float,
                 at_target: str) -> str:
    """Slopes, the extrapolation from the two largest sizes to TARGET, and the verdict."""
    s = slopes(xs, ys)
    projected = ys[-1] + s[-1] * (TARGET - xs[-1])
    shown = f"{projected / 60:.1f} min" if at_target == "min" else f"{projected / 1024:.2f} GB"
    return (f"  {name:13s} per label: " + " -> ".join(f"{v * scale:6.1f} {per_label_unit}" for v in s)
            + f"; at {TARGET:,} labels: {shown}; {verdict(s)}")


def print_scaling(results: dict[int, dict[str, Run]], manifest_mb: dict[int, float]) -> None:
    xs = sorted(results)
    print(f"\nscaling (slope between consecutive sizes; extrapolated from the two largest to {TARGET:,}):")
    for command in COMMANDS:
        runs = [results[n][command] for n in xs]
        print(f"{command}:")
        print(scaling_line("time", xs, [r.seconds for r in runs], "us", 1e6, "min"))
        print(scaling_line("main RSS", xs, [r.main_mb for r in runs], "kB", 1024, "GB"))
        print(scaling_line("total PSS", xs, [r.total_mb for r in runs], "kB", 1024, "GB"))
    print("manifest:")
    print(scaling_line("size on disk", xs, [manifest_mb[n] for n in xs], "B ", MB, "GB"))


def full_scale(tmp: Path, largest: int, args: argparse.Namespace) -> None:
    """`nia stats` and `nia split` on a TARGET-row manifest made of copies of the largest one."""
    manifest = tmp / "manifest_full.parquet"
    measure_once("replicate", [str(tmp / f"manifest{largest}.parquet"), str(manifest), str(TARGET)], 0, args.sample)
    print(f"\nat {TARGET:,} rows (copies of the {largest}-label manifest, each with its own ids, paths, videos, "
          "people):")
    print(HEADER)
    print(run_line("stats", measure("stats", [str(manifest), "--out", str(tmp / "stats")], TARGET, args.sample, 1)))
    print(run_line("split", measure("split", [str(manifest), "--out", str(tmp / "splits")], TARGET, args.sample, 1)))


def main() -> None:
    from common.delivery.manifest import default_workers

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="25000,100000,250000",
                        help="comma-separated label counts, rounded up to whole folders of 100 "
                             "(default 25000,100000,250000: about 1 GB of files, under 10 minutes on 2 cores)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="index workers (default: all cores)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of each command per size: the fastest counts, and the largest memory (default 2)")
    parser.add_argument("--sample", type=float, default=0.1, help="PSS sampling interval in seconds (default 0.1)")
    parser.add_argument("--full-scale", action="store_true",
                        help=f"also run stats and split once on a {TARGET:,}-row manifest made of copies of the "
                             "largest (about 2 more minutes; several GB of memory)")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the trees (default: the system's temp)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rest, args.sample)
        return
    sizes = sorted({-(-int(s) // PER_FOLDER) * PER_FOLDER for s in args.sizes.split(",")})
    results: dict[int, dict[str, Run]] = {}
    manifest_mb: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="nia-scale-", dir=args.tmp) as tmp:
        spare, root = Path(tmp) / "written", Path(tmp) / "tree"
        start = time.perf_counter()
        write_labels(spare, sizes[-1])
        print(f"wrote {sizes[-1]} labels in {time.perf_counter() - start:.0f} s; {args.workers} worker(s)")
        print(HEADER)
        for n in sizes:
            grow_tree(spare, root, n)
            read_only(root)  # warm the page cache, as bench_index.py does
            results[n], manifest_mb[n] = run_size(Path(tmp), root, n, args)
            for command in COMMANDS:
                print(run_line(command, results[n][command]), flush=True)
            print(f"{'manifest':9s} {n:8d} {manifest_mb[n]:8.1f} MB on disk")
        if len(sizes) > 1:
            print_scaling(results, manifest_mb)
        if args.full_scale:
            full_scale(Path(tmp), sizes[-1], args)


if __name__ == "__main__":
    main()
