"""A demo training epoch with cores busy against the same epoch quiet (issue 23: at most 1.6x with one core busy).

For each test (`--test`, default all three), its demo preset (`--preset demo`, the Makefile's DEMO_TRAIN_ENV:
its fixed thread count and CPU kernels, as `make` trains it) trains one epoch on small generated data, in a
process of its own: quiet, then with `--load` busy processes (one core each) running alongside, `--repeats`
times. Prints each epoch's seconds (the `seconds` column of log.csv), each ratio and their median. `--items` sets
the training items.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from bench.timing import start_load, stop_load  # noqa: E402
from common.suite.registry import BUILTIN_KEYS, get_test  # noqa: E402
from common.pinned_env import PINNED, pinned  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {key: get_test(key).train_script for key in BUILTIN_KEYS}
TARGET = 1.6  # loaded epoch / quiet epoch, one core busy on 2


def make_data(test: str, folder: Path, items: int) -> Path:
    """Generated training data of `items` training items (a tenth as many for validation)."""
    counts = {"train": items, "val": max(5, items // 10), "test": 5}
    if test == "l2cs":
        from tests.l2cs_fakes import make_fake_crops

        return make_fake_crops(folder, counts, width=112, height=56)
    if test == "rit":
        from tests.rit_fakes import make_seg_crops

        return make_seg_crops(folder, counts, width=80, height=48)
    from tests.dfer_fakes import balanced_clips, write_clip_set

    return write_clip_set(folder, balanced_clips({**counts, "train": max(16, items // 8)}))


def epoch_seconds(test: str, data: Path, out: Path) -> float:
    """One demo epoch of `test` on `data`, as `make` trains it; the epoch's seconds from its log.csv."""
    env = {**pinned(os.environ), "PYTHONPATH": str(REPO)}  # as the Makefile's DEMO_TRAIN_ENV runs it
    done = subprocess.run([sys.executable, str(REPO / SCRIPTS[test]), "--preset", "demo", "--data", str(data),
                           "--out", str(out), "--epochs", "1"], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{SCRIPTS[test]} exited {done.returncode}: {done.stderr[-2000:]}")
    cores = [line for line in (done.stdout + done.stderr).splitlines() if "cores: " in line]
    if cores:
        print(f"  {cores[0].split('cores: ', 1)[1]}")
    return float(pd.read_csv(out / "log.csv")["seconds"].iloc[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", choices=sorted(SCRIPTS), action="append", help="the test(s) to train [all]")
    parser.add_argument("--items", type=int, default=256, help="training crops (clips: an eighth as many)")
    parser.add_argument("--load", type=int, default=1, help="busy processes during the loaded epoch")
    parser.add_argument("--repeats", type=int, default=1,
                        help="quiet/loaded pairs per test; the median ratio is the figure (epochs of a few seconds "
                             "move by 10-20 %% from run to run on shared cores)")
    args = parser.parse_args()
    print(f"demo training epoch, quiet then with {args.load} busy process(es); DEMO_TRAIN_ENV: "
          f"{' '.join(f'{k}={v}' for k, v in PINNED.items())}; {os.cpu_count()} cores")
    for test in args.test or sorted(SCRIPTS):
        ratios = []
        with tempfile.TemporaryDirectory() as tmp:
            data = make_data(test, Path(tmp) / "data", args.items)
            for repeat in range(max(1, args.repeats)):
                quiet = epoch_seconds(test, data, Path(tmp) / f"quiet{repeat}")
                busy = start_load(args.load)
                try:
                    loaded = epoch_seconds(test, data, Path(tmp) / f"loaded{repeat}")
                finally:
                    stop_load(busy)
                ratios.append(loaded / quiet)
                print(f"{test}: demo epoch quiet {quiet:.1f} s, with --load {args.load} {loaded:.1f} s: "
                      f"{loaded / quiet:.2f}x", flush=True)
        print(f"{test}: median of {len(ratios)}: {statistics.median(ratios):.2f}x (target <= {TARGET}x with one core "
              f"busy; runs {min(ratios):.2f}x-{max(ratios):.2f}x)", flush=True)


if __name__ == "__main__":
    main()
