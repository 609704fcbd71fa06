"""What the validation benches (`bench_*_valid.py`) time and print alike.

Each bench keeps its own anchor loop, our loop and the model's input; this
module holds the stopwatch parts: the command-line options they share, a
timed call, the forward-only rate (the compute ceiling) and the ratio lines
the tests and the docs read. Not a bench itself (`make bench` runs
`bench/bench_*.py` only).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from common.engine.device import pick_device, set_cudnn_mode


def bench_parser(doc: str, unit: str, anchor: int, ours: int, ours_help: str,
                 batch_size: int) -> argparse.ArgumentParser:
    """The options every validation bench takes: `--anchor-UNIT` and `--UNIT` (how many items the anchor loop
    and ours time), `--batch-size`, `--workers` and `--device`; a bench adds its own after them."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(f"--anchor-{unit}", type=int, default=anchor, help=f"{unit} timed with the anchor loop")
    parser.add_argument(f"--{unit}", type=int, default=ours, help=ours_help)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu or cuda")
    return parser


def our_device(name: str) -> tuple[torch.device, int]:
    """The device and torch threads the validation scripts take (`pick_device`, deterministic cuDNN, no TF32)."""
    device = pick_device(name)
    set_cudnn_mode(reproducible=True)
    return device, torch.get_num_threads()


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


@dataclass
class AnchorRuns:
    """The anchor loop timed twice, and where ours runs."""
    model: torch.nn.Module  # moved to `device`
    default_threads: int  # the stack's default torch threads, as a plain script gets them
    default_rate: float  # items/s on the CPU with `default_threads`
    output: np.ndarray  # the anchor's predictions from that run
    device: torch.device  # what `pick_device` gives ours
    threads: int
    same_rate: float  # items/s on `device` with `threads`


def time_anchor(model: torch.nn.Module, anchor: Callable[[torch.nn.Module, torch.device, int], np.ndarray], n: int,
                warm_up: int, device_name: str, **style: object) -> AnchorRuns:
    """Time `anchor(model, device, count)` (the anchor loop on the first `count` items) on `n` items, after
    `warm_up` items: first as a plain script runs it (CPU, the stack's default threads), then on the device
    and threads the validation script takes. `style`: `timed`'s unit, width and digits."""
    default_threads = torch.get_num_threads()
    cpu = torch.device("cpu")
    anchor(model, cpu, warm_up)
    default_rate, output = timed(f"anchor, CPU, {default_threads} thread(s) (stack default)", n,
                                 lambda: anchor(model, cpu, n), **style)
    device, threads = our_device(device_name)
    model = model.to(device)
    anchor(model, device, warm_up)
    same_rate, _ = timed(f"anchor, {device}, {threads} thread(s)", n, lambda: anchor(model, device, n), **style)
    return AnchorRuns(model, default_threads, default_rate, output, device, threads, same_rate)


def print_ratios(ours: float, anchor_default: float, anchor_same: float, ceiling: float, also: str = "") -> None:
    """The target ratio, the ceiling's and ours on the anchor's device and threads (rates in items/s)."""
    print(f"ratio ours / anchor as a plain script runs it: {ours / anchor_default:.2f}x (target >= 5x)")
    print(f"ceiling (forward alone / anchor as a plain script runs it): {ceiling / anchor_default:.2f}x; "
          f"ours reaches {100 * ours / ceiling:.0f} % of the forward-only rate")
    print(f"ratio ours / anchor on the same device and threads: {ours / anchor_same:.2f}x{also}")
