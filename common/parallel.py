"""Chunks of work through a process pool with a progress bar (``nia crops``, ``nia clips``).

One worker process per core by default; OpenCV inside each worker uses one
thread, because the processes are the parallelism. At most 4 chunks per
worker are in flight, so memory stays flat however many chunks there are
(the chunks may be a lazy generator over millions of rows).
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from typing import Callable, Iterable, Iterator, Sized, TypeVar

A = TypeVar("A")
C = TypeVar("C", bound=Sized)
R = TypeVar("R")


def init_worker() -> None:
    """Runs first in every worker process: OpenCV on one thread."""
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
        with ProcessPoolExecutor(max_workers=workers, initializer=init_worker) as pool:
            pending: dict = {}
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
    finally:
        bar.close()
