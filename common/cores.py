"""How many cores this process may use: one answer for worker pools and torch threads.

Kept free of heavy imports, so `nia index` can size its pool without loading torch.
"""
from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
