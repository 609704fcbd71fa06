"""A CPU forward pass as independent one-thread streams, one per core: no barrier between cores.

With torch's intra-op threads, every layer ends at a barrier where the threads wait for the slowest. On a
shared machine the slowest is the one whose core another process holds: with one of 2 cores busy,
Former-DFER's 2-thread forward pass ran 1.20x a one-thread script, its streams 2.06x
(bench/bench_dfer_valid.py --load 1, docs/development.md).
Here each core's thread runs whole items on its own (torch at one thread in it), so a preempted thread
delays only its own items. The items' outputs are computed alone, on one thread: they do not depend on
the batch size or the core count (eval mode; equal to a one-thread pass over one item at a time).

The streams are Python threads: torch releases the GIL inside each operator, so they run in parallel
while the operators are large (Former-DFER's; RIT-Net's hundreds of small ones gained nothing and stay
on intra-op threads).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn


class InStreams(nn.Module):
    """The wrapped model run on `size` items at a time, `streams` of them at once, each on one torch thread
    (outputs concatenated in the batch's order). Its state_dict is the wrapped model's, under `model.`."""

    def __init__(self, model: nn.Module, streams: int, size: int = 1) -> None:
        super().__init__()
        if streams < 1 or size < 1:
            raise ValueError(f"streams {streams} and items per pass {size}: both must be >= 1")
        self.model, self.streams, self.size = model, streams, size
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._modes = (False, True)  # the caller's (inference mode, grad mode), taken at each call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.split(self.size)
        if self.streams == 1 or len(parts) == 1:
            return torch.cat([self._alone(part) for part in parts])
        return torch.cat(list(self._executor().map(self._alone, parts)))

    def _alone(self, part: torch.Tensor) -> torch.Tensor:
        """One pass on this thread alone, in the caller's grad mode (grad and inference modes are per thread)."""
        inference, grad = self._modes
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return self.model(part)

    def __call__(self, *args, **kwargs):
        self._modes = (torch.is_inference_mode_enabled(), torch.is_grad_enabled())
        return super().__call__(*args, **kwargs)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="forward-stream",
                                                initializer=torch.set_num_threads, initargs=(1,))
            return self._pool

    def close(self) -> None:
        """Stop the streams' threads (also done when the wrapper is collected)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def __del__(self) -> None:
        pool = self.__dict__.get("_pool")
        if pool is not None:
            pool.shutdown(wait=False)
