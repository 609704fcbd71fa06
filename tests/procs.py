"""Running the entry points as a user does: torchrun commands for the DDP tests."""
from __future__ import annotations

import socket
import sys
from pathlib import Path


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
