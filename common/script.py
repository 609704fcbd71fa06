"""The first lines of every script in a model folder (`python l2cs/train.py`, `python ritnet/test.py`, ...).

Run as a file, a script has its own folder first on `sys.path`, where a
module such as `ritnet/test.py` would shadow the standard library's `test`
and `dfer/config.py` anyone's `config`; the repository root takes its place
(the package itself is found through the install or, in the images,
`PYTHONPATH`). Then OpenMP's wait policy is settled, which must happen
before torch loads. Kept free of heavy imports for that reason.
"""
from __future__ import annotations

import sys
from pathlib import Path

from common.cores import settle_thread_binding, settle_wait_policy


def start_script(package: str | None, file: str, *, bind_threads: bool = False) -> None:
    """Call with the script's `__package__` and `__file__` before importing torch; `bind_threads`: give each
    OpenMP thread a core of its own when they fill the machine (`common.cores.settle_thread_binding`)."""
    if package in (None, ""):  # run as a file, not as `python -m l2cs.train`
        sys.path[0] = str(Path(file).resolve().parents[1])
    settle_wait_policy()  # libgomp reads OMP_WAIT_POLICY once, when torch loads it
    if bind_threads:
        settle_thread_binding()  # and OMP_PROC_BIND / OMP_PLACES
