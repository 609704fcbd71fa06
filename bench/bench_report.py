"""`nia report` and `nia report --compare` at the real test set's size (issue 21, "Scale").

Generates two l2cs result folders of ``--rows`` (250,000) per-sample rows
with NIA names (60 subjects, every display, image type, state, posture and
direction, 5 % off-screen crops far off), the second with other predictions,
then times, each as the CLI runs it (a fresh process, imports included):

* ``nia report OLD --out R``: target < 30 s on 2 cores;
* the size of R/report.html: target < 10 MB;
* ``nia report --compare OLD NEW --out C``: target < 60 s.

Prints the three figures with their targets and the machine's cores.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from common.metrics.angular import angular_errors_deg
from common.metrics.bootstrap import mean_ci
from common.verdicts.provenance import collect_provenance
from common.verdicts.results import write_results

TARGETS = {"report_s": 30.0, "html_mb": 10.0, "compare_s": 60.0}


def gaze_rows(n: int, seed: int) -> pd.DataFrame:
    """``n`` l2cs per-sample rows with NIA names; the seed sets the predictions, not the truths or names."""
    rng = np.random.default_rng(0)
    i = np.arange(n)
    fields = {"subject": pd.Series(100 + i % 60).astype(str), "device": pd.Series(np.array(list("STLVM"))[i % 5]),
              "type": pd.Series(np.array(["rgb", "ir"])[(i // 5) % 2]),
              "state": pd.Series(np.array(list("FSDAN"))[(i // 10) % 5]),
              "posture": pd.Series(np.array(list("SDPLF"))[(i // 50) % 5]),
              "direction": pd.Series(np.array(list("TLR"))[(i // 250) % 3])}
    frame = pd.Series(i // 750).astype(str)  # with the fields above, a unique name per row
    names = ("NIA22EYE_A_" + fields["subject"] + "_1_2_" + fields["device"] + "_" + fields["type"] + "_"
             + fields["state"] + "_" + fields["posture"] + "_" + fields["direction"] + "_" + frame + "_eyes")
    true = rng.uniform(-20, 20, size=(n, 2))
    off = rng.random(n) < 0.05
    true[off, 0] = rng.uniform(-57, -40, off.sum())
    pred = true + np.random.default_rng(seed).normal(0, 4.0, size=(n, 2))
    pred[off, 0] += 35.0
    return pd.DataFrame({"name": names, "subject": fields["subject"], "inst": fields["device"],
                         "pred_pitch": pred[:, 0], "pred_yaw": pred[:, 1], "true_pitch": true[:, 0],
                         "true_yaw": true[:, 1], "error_deg": angular_errors_deg(pred, true), "on_screen": ~off})


def write_run(out: Path, rows: int, seed: int) -> None:
    frame = gaze_rows(rows, seed)
    errors = frame["error_deg"].to_numpy()
    write_results(out, test="l2cs", metric="mean_angular_error_deg", value=float(errors.mean()), per_sample=frame,
                  n_skipped=0, skipped={}, ci95=mean_ci(errors, frame["subject"]), n_in_split=len(frame),
                  provenance=collect_provenance(extra={"gaze_method": "geometric", "seed": seed}))


def timed_cli(*args: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one `nia` run in a fresh process (exit 0 or 1 are both a report).

    The CPU seconds (user + system of the child) say what the run costs where other work shares the cores."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "common", *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode not in (0, 1):
        raise SystemExit(f"nia {' '.join(args)} exited {run.returncode}: {run.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000, help="per-sample rows of each generated run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        root = Path(tmp)
        write_run(root / "old" / "l2cs", args.rows, seed=1)
        write_run(root / "new" / "l2cs", args.rows, seed=2)
        report_wall, report_cpu = timed_cli("report", str(root / "old" / "l2cs"), "--out", str(root / "report"))
        html_mb = (root / "report" / "report.html").stat().st_size / 1e6
        compare_wall, compare_cpu = timed_cli("report", "--compare", str(root / "old"), str(root / "new"),
                                              "--out", str(root / "compare"))
    print(f"nia report on {args.rows} l2cs rows, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}):")
    for label, figure, cpu, target in (("nia report (s)", report_wall, report_cpu, TARGETS["report_s"]),
                                       ("report.html (MB)", html_mb, None, TARGETS["html_mb"]),
                                       ("nia report --compare (s)", compare_wall, compare_cpu, TARGETS["compare_s"])):
        verdict = "meets" if figure < target else "MISSES"
        cpu_text = f"  (CPU {cpu:.2f} s)" if cpu is not None else ""
        print(f"  {label:<26} {figure:8.2f}   target < {target:g}: {verdict}{cpu_text}")


if __name__ == "__main__":
    main()
