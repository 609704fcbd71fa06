"""Run a command with every machine-dependent choice of the CPU training path pinned.

`python -m common.pinned_env CMD [ARGS...]` runs CMD (exec: same process id,
same exit code) in the current environment with `PINNED` set and `UNSET`
removed, whatever the caller's environment held. The Makefile's
`DEMO_TRAIN_ENV` is this command, so the demo weights come out the same bytes
on any x86-64 machine with AVX2, however many cores it has and whatever its
shell exports (docs/reproducibility.md has the emulated machines).

Why each pin: float sums depend on how work is split between threads and on
which vector kernels run, and training amplifies the last-bit differences
into different weights and verdicts. The kernels and thread counts are
chosen when a library loads, from these variables, so they must be in the
environment of the process from its start (setting them in Python after
`import torch` is too late).
"""
from __future__ import annotations

import os
import sys
from typing import Mapping, NoReturn, Sequence

PINNED_THREADS = "2"  # the thread count every pinned library is given (OpenMP, OpenBLAS, MKL)

PINNED: dict[str, str] = {
    # OpenMP: ATen's intra-op threads (`common.engine.device.use_available_cores` keeps a set
    # OMP_NUM_THREADS), no dynamic shrinking; PASSIVE sleeps instead of spin-waiting between
    # regions (numbers unchanged; a waiting thread no longer holds a core another process needs)
    "OMP_NUM_THREADS": PINNED_THREADS,
    "OMP_DYNAMIC": "FALSE",
    "OMP_WAIT_POLICY": "PASSIVE",
    # OpenBLAS (Debian's torch: libopenblas0-pthread; Linear layers' matrix products): it picks its
    # kernels per CPU model (Cooperlake, Zen, SkylakeX, ...) and its own thread count, which reads
    # OPENBLAS_NUM_THREADS, then GOTO_NUM_THREADS, then OMP_NUM_THREADS
    "OPENBLAS_CORETYPE": "Haswell",
    "OPENBLAS_NUM_THREADS": PINNED_THREADS,
    "GOTO_NUM_THREADS": PINNED_THREADS,
    "OPENBLAS_L2_SIZE": "512",
    # ATen's own vectorised kernels and oneDNN's convolutions (DNNL_ is oneDNN's older spelling;
    # FPMATH STRICT: no implicit bf16/tf32 down-conversion on CPUs that have it)
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
    "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT",
    "DNNL_DEFAULT_FPMATH_MODE": "STRICT",
    # MKL (PyPI's torch 2.x): threads and Conditional Numerical Reproducibility at the AVX2 code path
    "MKL_NUM_THREADS": PINNED_THREADS,
    "MKL_DYNAMIC": "FALSE",
    "MKL_CBWR": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    # Python's string hashing: set and dict-of-set orders the same in every run
    "PYTHONHASHSEED": "0",
}

# variables that would narrow what PINNED asks for (a thread cap below OMP_NUM_THREADS)
UNSET: tuple[str, ...] = ("OMP_THREAD_LIMIT", "MKL_DOMAIN_NUM_THREADS", "MKL_CBWR_BRANCH")


def pinned(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with `PINNED` set over it and `UNSET` removed."""
    env = {key: value for key, value in environ.items() if key not in UNSET}
    env.update(PINNED)
    return env


def main(argv: Sequence[str] | None = None) -> None:
    """Exec argv (default: this process's arguments) in the pinned environment; a usage error or a command
    that cannot run is one `error:` line and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        _fail("no command given: python -m common.pinned_env CMD [ARGS...] runs CMD with the demo training's "
              "threads and CPU kernels pinned")
    try:
        os.execvpe(args[0], args, pinned(os.environ))
    except OSError as error:
        _fail(f"{args[0]}: cannot run: {error.strerror}")


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
