"""How many cores this process may use, and how a run spends them: torch threads, decode workers, OpenMP's wait.

Kept free of heavy imports: `nia index` sizes its pool without loading torch, and `settle_wait_policy` must run
before torch is imported (libgomp reads ``OMP_WAIT_POLICY`` once, when it loads).

The choice (`plan_cores`):

* torch's intra-op threads: ``OMP_NUM_THREADS`` when set (the user's, or the demo training's pin), else one per
  usable core (CPU affinity, narrowed by a cgroup CPU quota), shared among local DDP processes. Never fewer because
  another process is busy: float sums depend on how the work is split (L2CS-Net's and RIT-Net's outputs differ
  in their last bits between 1 and 2 threads), so a thread count that followed the neighbours' load would make the
  verdict follow it too.
* decode workers (DataLoader processes): an explicit ``--workers`` wins; else the cores left free beside the
  threads, at least one (decoding then overlaps the forward pass) and at most one per 4 threads (decoding costs
  1-18 % of the forward pass's CPU in the three tests); on a GPU all usable cores but the one that feeds it.
* the OpenMP wait policy: ``OMP_WAIT_POLICY`` when set; else PASSIVE whenever the threads and workers do not all
  fit on the free cores. A spinning OpenMP thread holds a core that a decode worker or another process needs,
  and waits for a thread of its own that such a process has preempted: with one core busy elsewhere, that made
  the 2-thread run slower than a 1-thread script. Sleeping threads change no number.
* a core of its own for each thread, for the scripts that ask (`settle_thread_binding`; RIT-Net's training):
  when the threads fill every core the process may run on, each is bound to one of them. Unbound, the
  scheduler can leave two of them on one core while a busy neighbour holds the other, and oneDNN's backward
  convolutions meet at barriers that spin without yielding: a thread spins out its time slice while the
  thread it waits for cannot run. RIT-Net's backward is hundreds of tiny convolutions, and its demo epoch took
  2.96x its quiet time with one core busy, 1.36-1.62x bound. L2CS-Net's and Former-DFER's larger ones lose
  less unbound, and bound their quiet epochs got slower (a bound thread cannot step aside from a decode
  worker): they stay free (docs/development.md). Where cores are left over, or a quota narrows them, nothing
  is bound. Binding changes no number.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, MutableMapping

CGROUP_ROOT = Path("/sys/fs/cgroup")
WAIT_POLICY_VAR = "OMP_WAIT_POLICY"  # the environment variable that sets how idle OpenMP threads wait
THREADS_VAR = "OMP_NUM_THREADS"  # the environment variable that sets the OpenMP thread count
BIND_VAR = "OMP_PROC_BIND"  # OpenMP: whether threads stay on their places
PLACES_VAR = "OMP_PLACES"  # OpenMP: the places (here one CPU each) the threads are bound to
BINDING_VARS = (BIND_VAR, PLACES_VAR, "GOMP_CPU_AFFINITY")  # any of them set: the user's binding, left alone
THREADS_PER_WORKER = 4  # at most one decode worker per this many threads (decode <= 18 % of the forward's CPU)


def affinity_cpus() -> list[int]:
    """The CPUs this process may run on, in order (its CPU affinity, which containers and taskset narrow). Where
    `settle_thread_binding` bound the threads, the binding's CPUs: libgomp narrowed the calling thread to one."""
    bound = places_cpus(os.environ)
    if bound:
        return bound
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def places_cpus(environ: Mapping[str, str]) -> list[int]:
    """The CPUs of a binding in force (`OMP_PLACES` as `binding_places` writes it: "{0},{1}"), [] when none;
    a CPU the machine lacks (a user's mistyped place, which libgomp ignores) is no CPU of the binding."""
    if not binding_in_force(environ):
        return []
    named = {int(cpu) for cpu in re.findall(r"\{(\d+)\}", environ.get(PLACES_VAR, ""))}
    return sorted(named & set(range(os.cpu_count() or 1)))


def affinity_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return max(1, len(affinity_cpus()))


def quota_cores(root: Path = CGROUP_ROOT, self_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """Cores' worth of CPU time the process's cgroup may use per period (`docker --cpus`), None when unlimited.

    cgroup v2: ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD") in the process's own cgroup, else at the root;
    cgroup v1: ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: unlimited).
    """
    own = _own_cgroup(self_cgroup)
    for folder in dict.fromkeys([root / own, root]):
        fields = _read(folder / "cpu.max").split()
        if len(fields) == 2:
            return None if fields[0] == "max" else _ratio(fields[0], fields[1])
    for controller in ("cpu,cpuacct", "cpu"):
        quota, period = _read(root / controller / "cpu.cfs_quota_us"), _read(root / controller / "cpu.cfs_period_us")
        if quota and period:
            return None if quota.strip() == "-1" else _ratio(quota, period)
    return None


def available_cores() -> int:
    """Cores this process may use: its affinity, narrowed by its cgroup's CPU quota (rounded up)."""
    quota = quota_cores()
    cores = affinity_cores()
    return cores if quota is None else max(1, min(cores, math.ceil(quota - 1e-9)))


def busy_between(before: str, after: str, cpus: set[int] | None = None) -> float:
    """Cores' worth of busy time between two reads of /proc/stat, over `cpus` (all when None).

    Per-CPU lines ``cpuN user nice system idle iowait irq softirq steal ...``: busy is everything but idle and
    iowait. A CPU whose counters did not move counts as idle.
    """
    first, second = _cpu_times(before), _cpu_times(after)
    busy = 0.0
    for cpu, (total, idle) in second.items():
        if cpu not in first or (cpus is not None and cpu not in cpus):
            continue
        d_total, d_idle = total - first[cpu][0], idle - first[cpu][1]
        if d_total > 0:
            busy += min(1.0, max(0.0, 1.0 - d_idle / d_total))
    return busy


def busy_cores(sample_s: float = 0.1, stat: Path = Path("/proc/stat")) -> float:
    """Cores' worth of work other processes keep busy now, over this process's CPUs (sampled for `sample_s`;
    this process sleeps meanwhile). 0 where /proc/stat cannot be read."""
    before = _read(stat)
    if not before:
        return 0.0
    time.sleep(sample_s)
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return busy_between(before, _read(stat), cpus)


@dataclass(frozen=True)
class CorePlan:
    """How a run spends the cores it may use."""

    usable: int                # cores the process may use (affinity and quota)
    busy: float | None         # cores busy with other work when sampled; None: not needed for the choice
    threads: int               # torch intra-op threads
    workers: int               # DataLoader decode processes
    wait_policy: str           # OMP_WAIT_POLICY in force: PASSIVE, ACTIVE, or "default" (libgomp's brief spin)
    threads_from: str          # what set the threads: "usable cores" or OMP_NUM_THREADS
    workers_from: str          # "chosen", or "given" (--workers, a training config)
    bound_to: str = ""         # OMP_PLACES the threads are bound to ("{0},{1}"), "" when unbound

    def line(self) -> str:
        """The one line a run prints about it."""
        busy = "" if self.busy is None else f", {self.busy:.1f} busy elsewhere"
        workers = "worker" if self.workers == 1 else "workers"
        bound = f", bound to CPUs {self.bound_to}" if self.bound_to else ""
        return (f"cores: {self.threads} torch thread(s) ({self.threads_from}{bound}), {self.workers} decode "
                f"{workers} ({self.workers_from}), OpenMP wait {self.wait_policy}; {self.usable} usable core(s)"
                f"{busy} [override: {THREADS_VAR}, --workers, {WAIT_POLICY_VAR}, {BIND_VAR}]")

    def provenance(self) -> dict[str, int | str]:
        """What metrics.json records (not the load sample: it differs between reruns that agree to the bit)."""
        return {"torch_threads": self.threads, "threads_from": self.threads_from, "decode_workers": self.workers,
                "omp_wait_policy": self.wait_policy, "usable_cores": self.usable,
                "threads_bound_to": self.bound_to or "none"}


def plan_cores(usable: int, *, requested_workers: int | None = None, env: Mapping[str, str] | None = None,
               busy: Callable[[], float] = busy_cores, local_processes: int = 1,
               accelerator: bool = False, in_force: str | None = None) -> CorePlan:
    """The threads, decode workers and wait policy for a process that may use `usable` cores (see the module
    docstring). `env`: the environment (os.environ when None); `busy()` is called only when the choice depends
    on the neighbours' load (threads fewer than the usable cores). `in_force`: the wait policy libgomp has
    already read (reported as is, not chosen)."""
    env = os.environ if env is None else env
    share = max(1, usable // max(1, local_processes))
    pinned = _positive_int(env.get(THREADS_VAR, ""))
    threads = pinned or share
    sampled: list[float] = []

    def free_cores() -> int:  # the load is sampled once, and only when the choice depends on it
        if not sampled:
            sampled.append(busy())
        return max(0, share - round(sampled[0]))

    if requested_workers is not None:
        workers, workers_from = requested_workers, "given"
    elif accelerator:
        workers, workers_from = max(1, share - 1), "chosen"
    else:  # with at most one core beside the threads, one worker whatever the load
        beside = free_cores() - threads if share - threads > 1 else 1
        workers, workers_from = min(max(1, beside), max(1, math.ceil(threads / THREADS_PER_WORKER))), "chosen"
    wait_policy = in_force or env.get(WAIT_POLICY_VAR, "").strip().upper()
    if not wait_policy:
        fits = threads + workers <= share and threads + workers <= free_cores()
        wait_policy = "default" if fits else "PASSIVE"
    return CorePlan(usable=usable, busy=sampled[0] if sampled else None, threads=threads, workers=workers,
                    wait_policy=wait_policy, threads_from=THREADS_VAR if pinned else "usable cores",
                    workers_from=workers_from)


def plan_for_run(requested_workers: int | None, *, accelerator: bool = False) -> CorePlan:
    """The plan of a run that has loaded torch: the wait policy is the one libgomp read when it loaded
    (`settle_wait_policy`'s, or the user's), whatever the workers asked for now."""
    plan = plan_cores(available_cores(), requested_workers=requested_workers, accelerator=accelerator,
                      local_processes=_local_processes(os.environ),
                      in_force=os.environ.get(WAIT_POLICY_VAR) or "default")
    return dataclasses.replace(plan, bound_to=binding_in_force(os.environ))


def settle_wait_policy(environ: MutableMapping[str, str] | None = None, *, torch_loaded: bool | None = None) -> str:
    """Set ``OMP_WAIT_POLICY`` as `plan_cores` chooses it for a CPU run with its default decode workers, unless
    the user set it; return the policy in force. Call it before torch is imported: libgomp reads it once, when it
    loads. Once torch is loaded (`torch_loaded`, default: whether it is imported) it changes nothing, so the
    environment that child processes inherit stays the user's."""
    environ = os.environ if environ is None else environ
    loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    if WAIT_POLICY_VAR not in environ and not loaded:
        policy = plan_cores(available_cores(), env=environ, local_processes=_local_processes(environ)).wait_policy
        if policy != "default":
            environ[WAIT_POLICY_VAR] = policy
    return environ.get(WAIT_POLICY_VAR, "default")


def binding_places(cpus: list[int], threads: int, local_processes: int = 1, local_rank: int = 0) -> str:
    """``OMP_PLACES`` giving each of this process's `threads` a CPU of its own among `cpus` (the affinity), or ""
    where binding would take the scheduler's freedom away: fewer than 2 threads, or the local processes'
    threads not filling the CPUs exactly (CPUs left over, or a thread count beyond them). Local process
    `local_rank` takes its own slice."""
    if threads < 2 or threads * local_processes != len(cpus) or not 0 <= local_rank < local_processes:
        return ""
    return ",".join(f"{{{cpu}}}" for cpu in cpus[local_rank * threads:(local_rank + 1) * threads])


def settle_thread_binding(environ: MutableMapping[str, str] | None = None, *, torch_loaded: bool | None = None,
                          cpus: list[int] | None = None) -> str:
    """For a training process: bind each OpenMP thread to a CPU of its own (`binding_places`) unless the user set
    any of `BINDING_VARS`; return the places in force ("" when unbound). Like `settle_wait_policy`, it must run
    before torch loads (libgomp reads the binding once) and changes nothing after. The quota check of
    `available_cores` applies: a quota below the affinity leaves the threads unbound."""
    environ = os.environ if environ is None else environ
    loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    if loaded or any(var in environ for var in BINDING_VARS):
        return binding_in_force(environ)
    cpus = affinity_cpus() if cpus is None else cpus
    local = _local_processes(environ)
    quota = quota_cores()
    if quota is not None and quota < len(cpus):
        return ""
    threads = _positive_int(environ.get(THREADS_VAR, "")) or max(1, len(cpus) // local)
    places = binding_places(cpus, threads, local, _positive_int(environ.get("LOCAL_RANK", "")))
    if places:
        environ[BIND_VAR], environ[PLACES_VAR] = "true", places
    return places


def binding_in_force(environ: Mapping[str, str]) -> str:
    """The OMP_PLACES the threads are bound to, "" when OMP_PROC_BIND does not bind them."""
    bind = environ.get(BIND_VAR, "").strip().lower()
    if not bind or bind == "false":
        return ""
    return environ.get(PLACES_VAR, "") or f"{BIND_VAR}={bind}"


def release_from_binding(environ: Mapping[str, str] | None = None) -> None:
    """Let a process forked from a bound thread run on every CPU of the binding (a decode worker inherits its
    parent thread's single CPU otherwise, and would share it with that thread)."""
    cpus = places_cpus(os.environ if environ is None else environ)
    if cpus and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:  # a CPU no longer allowed (the cgroup changed): keep the inherited one
            pass


def _local_processes(environ: Mapping[str, str]) -> int:
    """Processes that share this machine's cores in one run (torchrun's LOCAL_WORLD_SIZE; 1 without it)."""
    return _positive_int(environ.get("LOCAL_WORLD_SIZE", "")) or 1


def _cpu_times(stat: str) -> dict[int, tuple[int, int]]:
    """{cpu: (total jiffies, idle + iowait jiffies)} from /proc/stat's per-CPU lines."""
    times = {}
    for line in stat.splitlines():
        name, *fields = line.split() or [""]
        if name.startswith("cpu") and name[3:].isdigit() and len(fields) >= 4:
            values = [int(v) for v in fields[:8]]
            times[int(name[3:])] = (sum(values), values[3] + (values[4] if len(values) > 4 else 0))
    return times


def _own_cgroup(self_cgroup: Path) -> str:
    """The process's cgroup v2 path (the ``0::/path`` line), relative; "" when none."""
    for line in _read(self_cgroup).splitlines():
        if line.startswith("0::"):
            return line[3:].strip().lstrip("/")
    return ""


def _ratio(quota: str, period: str) -> float | None:
    try:
        value, base = float(quota), float(period)
    except ValueError:
        return None
    return value / base if value > 0 and base > 0 else None


def _positive_int(text: str) -> int:
    """`text` as an int >= 1, else 0 (unset or not a count: libgomp ignores it too)."""
    try:
        return max(0, int(text.strip()))
    except ValueError:
        return 0


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
