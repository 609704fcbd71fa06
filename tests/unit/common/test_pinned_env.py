"""The demo training's pinned environment (common.pinned_env, the Makefile's DEMO_TRAIN_ENV).

A tiny training (a convolution: oneDNN; Linear layers: OpenBLAS; reductions
and element-wise kernels: ATen, on OpenMP threads) run under two emulated
machines, another CPU's kernels on one thread and a 16-core host's thread
variables, gives the same bytes once it runs behind the pin, and other bytes
without it (so the ambient variables do reach the numbers, and the pin is
what removes them). docs/reproducibility.md has the same check on the three
demo trainings.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.pinned_env import PINNED, PINNED_THREADS, UNSET, pinned
from tests.paths import REPO


TINY_TRAINING = """
import hashlib, torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                            torch.nn.Linear(8 * 30 * 30, 64), torch.nn.ReLU(), torch.nn.Linear(64, 5))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 5, (64,))
for _ in range(3):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
weights = b"".join(p.detach().numpy().tobytes() for p in model.parameters())
print(hashlib.sha256(weights).hexdigest(), torch.get_num_threads())
"""

# kernel-choosing variables a machine may export (another CPU), removed before each emulated machine is set up
MACHINE_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                     "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
OLD_CPU = {"OPENBLAS_CORETYPE": "Prescott", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
BIG_HOST = {"OMP_NUM_THREADS": "16", "OPENBLAS_NUM_THREADS": "16", "GOTO_NUM_THREADS": "16",
            "MKL_NUM_THREADS": "16", "OMP_THREAD_LIMIT": "1", "OMP_WAIT_POLICY": "ACTIVE", "OMP_DYNAMIC": "TRUE"}


def tiny_training(machine: dict[str, str], *, pin: bool) -> tuple[str, int]:
    """(sha256 of the weights, torch's thread count) of TINY_TRAINING on an emulated machine."""
    env = {k: v for k, v in os.environ.items() if k not in MACHINE_VARIABLES}
    env.update(machine, PYTHONPATH=str(REPO))
    prefix = [sys.executable, "-m", "common.pinned_env"] if pin else []
    done = subprocess.run([*prefix, sys.executable, "-c", TINY_TRAINING], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True)
    digest, threads = done.stdout.split()
    return digest, int(threads)


@pytest.mark.slow  # two trainings in subprocesses (19 s of the loaded fast tier)
def test_the_same_weights_on_two_emulated_machines_only_behind_the_pin() -> None:
    old_cpu, big_host = tiny_training(OLD_CPU, pin=True), tiny_training(BIG_HOST, pin=True)
    assert old_cpu == big_host
    assert old_cpu[1] == int(PINNED_THREADS)
    unpinned = tiny_training(OLD_CPU, pin=False)
    assert unpinned[1] == 1 and unpinned[0] != old_cpu[0]  # the ambient variables reach the weights


def test_pinned_overrides_and_removes_what_the_shell_exports() -> None:
    env = pinned({**BIG_HOST, **OLD_CPU, "HOME": "/h"})
    assert env["HOME"] == "/h"
    assert {k: env[k] for k in PINNED} == PINNED
    assert not set(UNSET) & set(env)
    # every library that picks kernels or threads by itself is pinned
    assert {"OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
            "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_NUM_THREADS", "MKL_CBWR"} <= set(PINNED)


def test_make_trains_every_demo_weights_file_behind_the_pin(tmp_path: Path) -> None:
    targets = [f"{tmp_path}/weights/{test}_demo.pt" for test in ("l2cs", "rit", "dfer")]
    done = subprocess.run(["make", "-n", "--no-print-directory", f"BUILD={tmp_path}", *targets], cwd=REPO,
                          capture_output=True, text=True, check=True)
    trainings = [line for line in done.stdout.splitlines() if "/train.py --" in line]
    assert len(trainings) == 3
    for line in trainings:
        assert line.startswith(".venv/bin/python -m common.pinned_env .venv/bin/python "), line
        assert "--device cpu" in line, line


def test_a_missing_command_is_one_error_line_and_exit_2(tmp_path: Path) -> None:
    for args in ([], [str(tmp_path / "no-such-program")]):
        done = subprocess.run([sys.executable, "-m", "common.pinned_env", *args], cwd=REPO, capture_output=True,
                              text=True)
        assert done.returncode == 2 and done.stdout == ""
        assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error: "), done.stderr
    assert "no-such-program: cannot run" in done.stderr
