"""What the validation benches (`bench_*_valid.py`) time and print alike.

Each bench keeps its own anchor loop, our loop and the model's input; this
module holds the stopwatch parts: the command-line options they share, a
timed call, the forward-only rate (the compute ceiling) and the ratio lines
the tests and the docs read; `--load N` (N busy processes for the whole run,
so the anchor, ours and the forward-only ceiling are all timed under it) and
the targets of issue 23: quiet, ours >= 95 % of the ceiling; one core busy
of 2, >= 90 % of the ceiling under that load and >= 1.2x the anchor script;
on a GPU, the one-GPU figures (`GPU_TARGETS`). Not a bench itself (`make
bench` runs `bench/bench_*.py` only).
"""
from __future__ import annotations

import argparse
import atexit
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from common.cores import available_cores
from common.engine.device import core_plan, pick_device, set_cudnn_mode

# What one GPU must do (issue 23): items, seconds, unit, per test
GPU_TARGETS = {"l2cs": (250_000, 120, "crops"), "rit": (250_000, 60, "crops"), "dfer": (8_640, 120, "clips")}
# A busy process: one core's worth of `while True: pass` that ends when the bench that started it is gone
BUSY_LOOP = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(10**6): pass\n"
# A stream of work with no barriers: one thread multiplying small matrices from a "go" line for argv[1] seconds;
# prints how many it did
STREAM = ("import sys, time, torch\ntorch.set_num_threads(1)\na = torch.randn(160, 160)\na @ a\n"
          "sys.stdin.readline()\nend, n = time.perf_counter() + float(sys.argv[1]), 0\n"
          "while time.perf_counter() < end:\n    a @ a\n    n += 1\nprint(n)\n")


def bench_parser(doc: str, unit: str, anchor: int, ours: int, ours_help: str,
                 batch_size: int) -> argparse.ArgumentParser:
    """The options every validation bench takes: `--anchor-UNIT` and `--UNIT` (how many items the anchor loop
    and ours time), `--batch-size`, `--workers`, `--device` and `--load`; a bench adds its own after them."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(f"--anchor-{unit}", type=int, default=anchor, help=f"{unit} timed with the anchor loop")
    parser.add_argument(f"--{unit}", type=int, default=ours, help=ours_help)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--workers", type=int, default=None,
                        help="decode workers of ours (default: chosen as the validation chooses them)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu or cuda")
    parser.add_argument("--load", type=int, default=0, help="busy processes (one core each) running all along")
    parser.add_argument("--repeats", type=int, default=1,
                        help="time ours and the forward-only ceiling alternately this many times and take the medians "
                             "(a shared VM's speed drifts by tens of %% between minutes)")
    return parser


def start_load(count: int) -> list[subprocess.Popen]:
    """Start `count` busy processes; `stop_load` stops them, else the end of this run (they also end if it dies).
    First prints what the machine's CPUs give (`print_machine`), quiet and then under the load."""
    quiet = machine_streams()
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(max(0, count))]
    if busy:
        atexit.register(stop_load, busy)
        print(f"load: {count} busy process(es) running all along (pids {', '.join(str(p.pid) for p in busy)})",
              flush=True)
    print_machine(quiet, machine_streams() if busy else None, len(busy))
    return busy


def stream_work(count: int, seconds: float = 1.5) -> list[int]:
    """Run `count` one-thread streams (`STREAM`) at once for `seconds`, the scheduler free to place them; the
    work each did. Streams share nothing, so no barrier slows them: what they do together is what the
    machine's CPUs give, whatever their names (a VM's vCPUs may share one physical core)."""
    streams = [subprocess.Popen([sys.executable, "-c", STREAM, str(seconds)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
               for _ in range(count)]
    for stream in streams:  # all started and warmed up: go together
        stream.stdin.write("go\n")
        stream.stdin.flush()
    return [int(stream.communicate()[0]) for stream in streams]


@dataclass(frozen=True)
class Streams:
    """Work of one stream alone and of one stream per usable core at once (`stream_work`)."""
    cores: int
    one: int
    all: int


def machine_streams() -> Streams:
    """One stream, then one per usable core (`available_cores`), as the machine is now."""
    cores = available_cores()
    return Streams(cores, stream_work(1)[0], sum(stream_work(cores)))


def print_machine(quiet: Streams, loaded: Streams | None, load: int = 0) -> None:
    """What the CPUs give: the work of one stream per core over one stream's (`cores`.00 on independent cores),
    and under a load what one stream and all keep of their quiet work, and all streams over one stream (4/3
    with 1 of 2 independent cores busy: three runnable tasks share 2 cores). Read the benches' figures
    against it: a shared VM's vCPUs can give less than their count."""
    print(f"machine: {quiet.cores} usable core(s); one one-thread stream per core together do "
          f"{quiet.all / quiet.one:.2f} streams' work (independent cores: {quiet.cores}.00)", flush=True)
    if loaded is not None:
        # fair shares of `cores` independent cores among the runnable tasks: ours and the `load` busy ones
        one_share, each_share = min(1.0, loaded.cores / (1 + load)), min(1.0, loaded.cores / (loaded.cores + load))
        fair_gain, fair_slowdown = loaded.cores * each_share / one_share, 1 / each_share
        print(f"machine under the load: one stream keeps {100 * loaded.one / quiet.one:.0f} % of its quiet work, "
              f"{loaded.cores} together {100 * loaded.all / quiet.all:.0f} %; under this load a stream per core "
              f"does {loaded.all / loaded.one:.2f}x one stream's work (fair shares of independent cores: "
              f"{fair_gain:.2f}x); work on one thread per core takes at least {quiet.all / loaded.all:.2f}x its quiet "
              f"time here (fair shares: {fair_slowdown:.2f}x)", flush=True)


def stop_load(busy: Iterable[subprocess.Popen]) -> None:
    for process in busy:
        if process.poll() is None:
            process.terminate()
        process.wait()


def our_device(name: str, workers: int | None) -> tuple[torch.device, int, int]:
    """The device, torch threads and decode workers the validation scripts take (`pick_device`, deterministic
    cuDNN, no TF32, `core_plan`); prints the plan's line as they do."""
    device = pick_device(name)
    set_cudnn_mode(reproducible=True)
    plan = core_plan(workers, device)
    print(plan.line(), flush=True)
    return device, torch.get_num_threads(), plan.workers


def timed(label: str, n: int, fn: Callable[[], np.ndarray], unit: str = "images", width: int = 44,
          digits: int = 1) -> tuple[float, np.ndarray]:
    """Run `fn` once; print and return its rate (`n` items per second) with its result."""
    started = time.perf_counter()
    result = fn()
    rate = n / (time.perf_counter() - started)
    print(f"{label:<{width}} {rate:8.{digits}f} {unit}/s  ({n} {unit})", flush=True)
    return rate, result


def forward_rate(model: torch.nn.Module, x: torch.Tensor, repeats: int, device: torch.device) -> float:
    """Items/s of the model's forward pass alone on the batch `x` (after one warm-up pass)."""
    with torch.inference_mode():
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        for _ in range(repeats):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return len(x) * repeats / (time.perf_counter() - started)


def ours_and_ceiling(repeats: int, time_ours: Callable[[], tuple[float, np.ndarray]],
                     time_ceiling: Callable[[], float], unit: str = "images") -> tuple[float, np.ndarray, float]:
    """Ours (`time_ours`: rate and output) and the forward-only ceiling (`time_ceiling`: rate) timed alternately
    `repeats` times, so that both see the same minutes of a machine whose speed drifts; returns the median rate
    of ours, the first pass's output and the median ceiling. With repeats > 1 it prints each pass's share."""
    ours, ceilings, output = [], [], None
    for _ in range(max(1, repeats)):
        rate, result = time_ours()
        output = result if output is None else output
        ours.append(rate)
        ceilings.append(time_ceiling())
    if len(ours) > 1:
        shares = ", ".join(f"{100 * o / c:.0f} %" for o, c in zip(ours, ceilings))
        print(f"ours / ceiling pass by pass: {shares}; medians {np.median(ours):.1f} and {np.median(ceilings):.1f} "
              f"{unit}/s", flush=True)
    return float(np.median(ours)), output, float(np.median(ceilings))


@dataclass
class AnchorRuns:
    """The anchor loop timed twice, and where ours runs."""
    model: torch.nn.Module  # moved to `device`
    default_threads: int  # the stack's default torch threads, as a plain script gets them
    default_rate: float  # items/s on the CPU with `default_threads`
    output: np.ndarray  # the anchor's predictions from that run
    device: torch.device  # what `pick_device` gives ours
    threads: int
    workers: int  # ours' decode workers (`core_plan`)
    same_rate: float  # items/s on `device` with `threads`


def time_anchor(model: torch.nn.Module, anchor: Callable[[torch.nn.Module, torch.device, int], np.ndarray], n: int,
                warm_up: int, device_name: str, workers: int | None, **style: object) -> AnchorRuns:
    """Time `anchor(model, device, count)` (the anchor loop on the first `count` items) on `n` items, after
    `warm_up` items: first as a plain script runs it (CPU, the stack's default threads), then on the device
    and threads the validation script takes (`workers`: ours', None to choose them as it does). `style`:
    `timed`'s unit, width and digits."""
    default_threads = torch.get_num_threads()
    cpu = torch.device("cpu")
    anchor(model, cpu, warm_up)
    default_rate, output = timed(f"anchor, CPU, {default_threads} thread(s) (stack default)", n,
                                 lambda: anchor(model, cpu, n), **style)
    device, threads, workers = our_device(device_name, workers)
    model = model.to(device)
    anchor(model, device, warm_up)
    same_rate, _ = timed(f"anchor, {device}, {threads} thread(s)", n, lambda: anchor(model, device, n), **style)
    return AnchorRuns(model, default_threads, default_rate, output, device, threads, workers, same_rate)


def print_ratios(ours: float, anchor_default: float, anchor_same: float, ceiling: float, also: str = "",
                 load: int = 0) -> None:
    """The target ratio, the ceiling's and ours on the anchor's device and threads (rates in items/s), and the
    targets of issue 23 for the `load` (busy processes) the run had."""
    print(f"ratio ours / anchor as a plain script runs it: {ours / anchor_default:.2f}x (target >= 5x)")
    print(f"ceiling (forward alone / anchor as a plain script runs it): {ceiling / anchor_default:.2f}x; "
          f"ours reaches {100 * ours / ceiling:.0f} % of the forward-only rate")
    print(f"ratio ours / anchor on the same device and threads: {ours / anchor_same:.2f}x{also}")
    share = 100 * ours / ceiling
    if load:
        print(f"with --load {load}: ours / anchor script {ours / anchor_default:.2f}x (target >= 1.2x, aim 1.5x; "
              f"the forward pass alone: {ceiling / anchor_default:.2f}x); ours / forward-only ceiling under the "
              f"same load {share:.0f} % (target >= 90 %)")
    else:
        print(f"quiet: ours / anchor script {ours / anchor_default:.2f}x; ours / forward-only ceiling {share:.0f} % "
              "(target >= 95 %)")


def drain(loader: Iterable) -> None:
    """Read every batch of a loader and drop it: the decode rate alone."""
    for _ in loader:
        pass


def print_pipeline(test: str, ours: float, decode: float, ceiling: float, device: torch.device) -> None:
    """Decode rate against forward rate (items/s); on a GPU also its busy share and the one-GPU target of
    `test` (`GPU_TARGETS`), which a run without one reports as skipped."""
    count, seconds, unit = GPU_TARGETS[test]
    print(f"decode alone {decode:.1f} {unit}/s vs forward alone {ceiling:.1f} {unit}/s: decode / forward "
          f"{decode / ceiling:.2f} (under 1: decoding bounds ours)")
    if device.type != "cuda":
        share = ceiling / (available_cores() * decode)  # decode's core-seconds per item over the forward's
        print(f"decoding costs {100 * share:.0f} % of the forward pass's CPU time: with every core computing, ours can "
              f"reach at most {100 / (1 + share):.0f} % of the forward-only ceiling")
        print(f"GPU figures skipped: device {device}, no CUDA GPU used (target on one GPU: {count:,} {unit} in "
              f"<= {seconds / 60:g} min)")
        return
    needed = count / ours
    print(f"GPU: ours {ours:.1f} {unit}/s; GPU busy {100 * min(1.0, ours / ceiling):.0f} % of the loop "
          f"(forward-only time / loop time); {count:,} {unit} in {needed / 60:.1f} min (target <= {seconds / 60:g} "
          f"min: {'met' if needed <= seconds else 'missed'})")
