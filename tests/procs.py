"""Running the entry points as a user does: torchrun commands for the DDP tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for torchrun's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(script: Path, args: list[str], nproc: int) -> list[str]:
    """`python -m torch.distributed.run` with `nproc` local processes running `script args`."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
            "--redirects", "2", "--tee", "2",  # torch 1.13 + Python 3.11: the default "0" crashes torchrun
            str(script), *args]


def run_torchrun(script: Path, args: list[str], timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    """`script args` under torchrun as 2 local processes, with ENV added; a run past `timeout` fails the test with
    the end of torchrun's stderr (where it hung: a watchdog's or faulthandler's stacks, when the script dumps them)."""
    try:
        return subprocess.run(torchrun(script, args, nproc=2), env={**os.environ, "PYTHONPATH": str(REPO), **env},
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as hung:
        stderr = hung.stderr.decode(errors="replace") if isinstance(hung.stderr, bytes) else hung.stderr or ""
        pytest.fail(f"torchrun ran past {timeout} s; its stderr ends:\n{stderr[-6000:]}")


def run_two_processes(script: str, args: list[str], ran_as: str, timeout: int = 300, **env: str) -> None:
    """`script args` (script relative to the repository) under torchrun as 2 local processes, with ENV added;
    fails the test unless it exits 0 and its log says it trained as RAN_AS (e.g. "on cpu x2")."""
    done = run_torchrun(REPO / script, args, timeout, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ran_as in done.stderr + done.stdout
