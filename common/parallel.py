"""Chunks of work through a process pool with a progress bar (``nia crops``, ``nia clips``).

One worker process per core by default; OpenCV inside each worker uses one
thread, because the processes are the parallelism. At most 4 chunks per
worker are in flight, so memory stays flat however many chunks there are
(the chunks may be a lazy generator over millions of rows).

Workers die with their parent: a ``kill -9`` of the command (which no
``finally`` can see) must not leave workers writing into OUT, then idling at
some 190 MB each. On Linux the kernel sends them SIGKILL when the parent
dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a thread polls the parent id.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from typing import Callable, Iterable, Iterator, Sized, TypeVar

A = TypeVar("A")
C = TypeVar("C", bound=Sized)
R = TypeVar("R")


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process end when ``parent_pid``, its parent, ends, however it ends.

    Call it first in a worker; ``parent_pid`` is the parent's ``os.getpid()``
    taken before the workers start, so a parent that died before the call is
    seen too.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            _watch_parent(parent_pid)
    else:
        _watch_parent(parent_pid)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _watch_parent(parent_pid: int, every_s: float = 1.0) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def init_worker(parent_pid: int) -> None:
    """Runs first in every worker process: dies with its parent; OpenCV on one thread."""
    die_with_parent(parent_pid)
    import cv2

    cv2.setNumThreads(1)


def map_chunks(fn: Callable[[C, A], R], chunks: Iterable[C], arg: A, *, workers: int, total: int,
               desc: str, unit: str, progress: bool = True) -> Iterator[R]:
    """``fn(chunk, arg)`` for every chunk, in ``workers`` processes (in this process when 1).

    Results come back as they finish (not in order); the progress bar
    advances by ``len(chunk)`` items per finished chunk, out of ``total``.
    ``fn`` and ``arg`` must pickle (a module-level function, plain data).
    """
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1:
            for chunk in chunks:
                result = fn(chunk, arg)
                bar.update(len(chunk))
                yield result
            return
        with ProcessPoolExecutor(max_workers=workers, initializer=init_worker, initargs=(os.getpid(),)) as pool:
            pending: dict = {}
            try:
                for chunk in chunks:
                    pending[pool.submit(fn, chunk, arg)] = len(chunk)
                    if len(pending) >= 4 * workers:
                        done, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            bar.update(pending.pop(future))
                            yield future.result()
                for future in as_completed(pending):
                    bar.update(pending[future])
                    yield future.result()
            except BaseException:  # a chunk failed (a full disk...): start no more of them
                for future in pending:
                    future.cancel()
                raise
    finally:
        bar.close()
