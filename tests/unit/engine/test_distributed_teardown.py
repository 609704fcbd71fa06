"""Leaving the process group: a teardown that never returns (pytorch/pytorch#75097) must not hang the run
(hostile case train_teardown_hangs)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.hostile_corpus import OUTPUTS, by_id
from tests.paths import REPO

CASE = by_id(OUTPUTS)["train_teardown_hangs"]

JOIN_ONE_PROCESS_GROUP = """
import sys, time
sys.path.insert(0, {repo!r})
import torch.distributed as dist
from common.engine import distributed
dist.init_process_group("gloo", init_method="file://{store}", rank=0, world_size=1)
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_a_stuck_teardown_ends_the_process_with_its_stacks(tmp_path: Path) -> None:
    done = run_python(JOIN_ONE_PROCESS_GROUP.format(repo=str(REPO), store=str(tmp_path / "store")) + """
dist.destroy_process_group = lambda: time.sleep(3600)  # torch's teardown, hung
distributed.cleanup_distributed(wait_s=0.5)
print("returned", flush=True)
""")
    assert done.returncode == CASE.code, done.stderr
    assert "returned" not in done.stdout
    assert all(part in done.stderr for part in CASE.expected()), done.stderr
    assert "leaving the process group did not return in 0.5 s" in done.stderr
    assert "Thread 0x" in done.stderr and "cleanup_distributed" in done.stderr  # the stacks, the stuck call among them


def test_a_normal_teardown_leaves_the_group_and_returns(tmp_path: Path) -> None:
    done = run_python(JOIN_ONE_PROCESS_GROUP.format(repo=str(REPO), store=str(tmp_path / "store")) + """
distributed.cleanup_distributed(wait_s=0.5)
time.sleep(1.0)  # past the watchdog's wait: it must have stood down
print("initialized after:", dist.is_initialized(), flush=True)
""")
    assert done.returncode == 0, done.stderr
    assert "initialized after: False" in done.stdout
    assert "did not return" not in done.stderr
