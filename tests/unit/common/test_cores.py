"""common/cores.py: the cores a process may use (affinity, cgroup quota), the load of the others, and the
threads / decode workers / OpenMP wait policy chosen from them (issue 23). Fake affinity, quota and load: no
timing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common import cores
from tests.paths import REPO
from common.cores import (binding_places, busy_between, plan_cores, quota_cores, settle_thread_binding,
                          settle_wait_policy)


def never_sampled() -> float:
    raise AssertionError("the load was sampled where the choice does not depend on it")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "150000 100000\n"}, 1.5),                                  # cgroup v2 at the root (a container)
    ({"cpu.max": "max 100000\n"}, None),                                    # v2, no limit
    ({"job/cpu.max": "50000 100000\n", "cpu.max": "max 100000\n"}, 0.5),    # v2: the process's own cgroup first
    ({"cpu,cpuacct/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 3.0),  # v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),                     # v1, none
    ({}, None),                                                             # no cgroup files at all
])
def test_quota_cores_reads_cgroup_v2_and_v1(tmp_path: Path, files: dict[str, str], expected: float | None) -> None:
    for name, text in files.items():
        write(tmp_path / "fs" / name, text)
    write(tmp_path / "self", "1:cpu:/\n0::/job\n")
    assert quota_cores(tmp_path / "fs", tmp_path / "self") == expected


def test_available_cores_is_the_affinity_narrowed_by_the_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cores, "affinity_cores", lambda: 8)
    monkeypatch.setattr(cores, "quota_cores", lambda: 1.5)   # docker --cpus 1.5: two threads may run
    assert cores.available_cores() == 2
    monkeypatch.setattr(cores, "quota_cores", lambda: 16.0)  # a quota above the affinity changes nothing
    assert cores.available_cores() == 8
    monkeypatch.setattr(cores, "quota_cores", lambda: None)
    assert cores.available_cores() == 8


def test_busy_between_counts_other_work_on_this_process_cpus() -> None:
    before = "cpu  30 0 30 140 0 0 0 0\ncpu0 10 0 10 80 0 0 0 0\ncpu1 20 0 20 60 0 0 0 0\nintr 5\n"
    # cpu0: 100 jiffies, all busy; cpu1: 100 jiffies, 25 busy, 70 idle, 5 iowait (not busy)
    after = "cpu  x\ncpu0 60 0 60 80 0 0 0 0\ncpu1 35 0 30 130 5 0 0 0\n"
    assert busy_between(before, after) == pytest.approx(1.25)
    assert busy_between(before, after, cpus={1}) == pytest.approx(0.25)
    assert busy_between(before, before) == 0.0  # counters that did not move: idle


def test_two_cores_quiet_or_busy_keep_both_threads_one_worker_and_sleep_when_waiting() -> None:
    """The thread count never follows the load (it would move the last bits of the verdict); with both cores
    running torch threads, one decode worker beside them and passive waiting, whatever the load."""
    plan = plan_cores(2, env={}, busy=never_sampled)
    assert (plan.threads, plan.workers, plan.wait_policy, plan.busy) == (2, 1, "PASSIVE", None)
    assert plan.threads_from == "usable cores" and plan.workers_from == "chosen"


def test_pinned_threads_fill_free_cores_with_workers_and_spin_only_when_all_fits() -> None:
    quiet = plan_cores(16, env={"OMP_NUM_THREADS": "8"}, busy=lambda: 0.0)
    assert (quiet.threads, quiet.workers, quiet.wait_policy, quiet.threads_from) == (8, 2, "default",
                                                                                       "OMP_NUM_THREADS")
    fits = plan_cores(16, env={"OMP_NUM_THREADS": "8"}, busy=lambda: 7.4)  # 9 cores free: 8 threads, 1 worker
    assert (fits.threads, fits.workers, fits.wait_policy, fits.busy) == (8, 1, "default", 7.4)
    crowded = plan_cores(16, env={"OMP_NUM_THREADS": "8"}, busy=lambda: 8.0)  # 8 free: the worker shares
    assert (crowded.threads, crowded.workers, crowded.wait_policy) == (8, 1, "PASSIVE")
    one = plan_cores(2, env={"OMP_NUM_THREADS": "1"}, busy=lambda: 0.2)  # the other core is free: it decodes
    assert (one.threads, one.workers, one.wait_policy) == (1, 1, "default")
    busy = plan_cores(2, env={"OMP_NUM_THREADS": "1"}, busy=lambda: 1.0)  # a neighbour holds it
    assert (busy.threads, busy.workers, busy.wait_policy) == (1, 1, "PASSIVE")


def test_explicit_settings_win() -> None:
    plan = plan_cores(4, requested_workers=3, env={"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "active"},
                      busy=never_sampled)
    assert (plan.threads, plan.workers, plan.wait_policy, plan.workers_from) == (2, 3, "ACTIVE", "given")
    no_workers = plan_cores(4, requested_workers=0, env={}, busy=lambda: 0.0)  # 4 threads on 4 idle cores: spin
    assert (no_workers.workers, no_workers.wait_policy) == (0, "default")
    assert plan_cores(4, env={"OMP_NUM_THREADS": "bad"}, busy=never_sampled).threads == 4  # not a count: ignored
    assert plan_cores(4, env={}, busy=never_sampled, in_force="default").wait_policy == "default"


def test_local_processes_share_the_cores_and_a_gpu_run_decodes_on_the_rest() -> None:
    assert plan_cores(8, env={}, busy=never_sampled, local_processes=4).threads == 2
    gpu = plan_cores(8, env={}, busy=never_sampled, accelerator=True)
    assert gpu.workers == 7


def test_the_plan_prints_one_line_and_records_no_load() -> None:
    plan = plan_cores(16, env={"OMP_NUM_THREADS": "8"}, busy=lambda: 3.0)
    assert "\n" not in plan.line() and "8 torch thread(s)" in plan.line() and "3.0 busy" in plan.line()
    assert plan.provenance() == {"torch_threads": 8, "threads_from": "OMP_NUM_THREADS", "decode_workers": 2,
                                 "omp_wait_policy": "default", "usable_cores": 16, "threads_bound_to": "none"}


def test_settle_sets_the_wait_policy_before_torch_loads_and_keeps_the_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cores, "available_cores", lambda: 2)
    environ: dict[str, str] = {}
    assert settle_wait_policy(environ, torch_loaded=False) == "PASSIVE" and environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    mine = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert settle_wait_policy(mine, torch_loaded=False) == "ACTIVE" and mine == {"OMP_WAIT_POLICY": "ACTIVE"}
    late: dict[str, str] = {}
    assert settle_wait_policy(late, torch_loaded=True) == "default" and late == {}  # too late: leave it


def test_threads_are_bound_only_when_they_fill_the_cpus_exactly() -> None:
    assert binding_places([0, 1], 2) == "{0},{1}"
    assert binding_places([4, 5, 6, 7], 2, local_processes=2, local_rank=1) == "{6},{7}"  # its own slice
    assert binding_places([0, 1, 2, 3], 2) == ""  # CPUs left over: the scheduler may move a thread off a busy one
    assert binding_places([0], 2) == "" and binding_places([0, 1], 1) == ""  # beyond the CPUs; one thread
    assert binding_places([0, 1], 2, local_processes=1, local_rank=1) == ""  # no slice of its own


def test_settle_binding_before_torch_loads_and_keeps_the_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cores, "quota_cores", lambda: None)
    pinned = {"OMP_NUM_THREADS": "2"}
    assert settle_thread_binding(pinned, torch_loaded=False, cpus=[2, 3]) == "{2},{3}"
    assert pinned == {"OMP_NUM_THREADS": "2", "OMP_PROC_BIND": "true", "OMP_PLACES": "{2},{3}"}
    assert settle_thread_binding({}, torch_loaded=False, cpus=[0, 1, 2, 3]) == "{0},{1},{2},{3}"  # one per core
    spare = {"OMP_NUM_THREADS": "2"}
    assert settle_thread_binding(spare, torch_loaded=False, cpus=[0, 1, 2, 3]) == "" and "OMP_PLACES" not in spare
    for users in ({"OMP_PROC_BIND": "false"}, {"GOMP_CPU_AFFINITY": "0-1"}, {"OMP_PLACES": "cores"}):
        mine = dict(users)
        settle_thread_binding(mine, torch_loaded=False, cpus=[0, 1])
        assert mine == users  # the user's binding (or refusal of one) is left alone
    late: dict[str, str] = {}
    assert settle_thread_binding(late, torch_loaded=True, cpus=[0, 1]) == "" and late == {}  # libgomp has read it
    monkeypatch.setattr(cores, "quota_cores", lambda: 1.5)  # docker --cpus 1.5 on 2 CPUs: not whole cores
    assert settle_thread_binding({}, torch_loaded=False, cpus=[0, 1]) == ""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="binding needs 2 CPUs")
def test_a_bound_training_thread_keeps_one_cpu_and_its_decode_workers_get_all(tmp_path: Path) -> None:
    """The real thing: libgomp binds the main thread to the first place; a DataLoader worker forked from it
    would inherit that one CPU, and `worker_init` gives it the binding's CPUs back."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    script = tmp_path / "probe.py"
    script.write_text(f"""
import os, sys
sys.path.insert(0, {str(REPO)!r})
from common.script import start_script
start_script("probe", __file__, bind_threads=True)
import torch
from torch.utils.data import DataLoader
from common.engine.batches import worker_init
from common.engine.device import use_available_cores
threads = use_available_cores()  # one per usable core: the binding's, not the bound main thread's one
torch.ones(64, 64).sum()  # starts the OpenMP team
class Affinity(torch.utils.data.Dataset):
    def __len__(self): return 1
    def __getitem__(self, i): return sorted(os.sched_getaffinity(0))
worker = next(iter(DataLoader(Affinity(), num_workers=1, worker_init_fn=worker_init, batch_size=None)))
print(threads, os.environ["OMP_PLACES"], sorted(os.sched_getaffinity(0)), worker)
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    done = subprocess.run(["taskset", "-c", ",".join(map(str, cpus)), sys.executable, str(script)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    places = ",".join(f"{{{c}}}" for c in cpus)
    assert done.stdout.split() == ["2", places, f"[{cpus[0]}]", f"[{cpus[0]},", f"{cpus[1]}]"]


def test_release_from_a_binding_to_cpus_not_allowed_keeps_the_inherited_ones() -> None:
    """A user's OMP_PLACES naming a CPU this machine lacks: the decode worker keeps running where it was."""
    before = os.sched_getaffinity(0)
    cores.release_from_binding({"OMP_PROC_BIND": "true", "OMP_PLACES": "{4095}"})
    cores.release_from_binding({"OMP_PROC_BIND": "false", "OMP_PLACES": "{0}"})  # not bound: nothing to release
    assert os.sched_getaffinity(0) == before
    assert cores.places_cpus({"OMP_PROC_BIND": "true", "OMP_PLACES": "cores"}) == []  # the user's abstract places
    mistyped = {"OMP_PROC_BIND": "true", "OMP_PLACES": "{0},{4095}"}
    assert cores.places_cpus(mistyped) == [0]  # not a CPU of this machine: not counted as a usable core
