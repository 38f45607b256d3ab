"""What the machine was doing while a run measured: which code (the git commit of the current directory and whether
its tracked files had changes), where the process could run (usable CPUs), how fast those cores were clocked, and
how much the process was kept waiting during each experiment (CPU time against wall time, involuntary context
switches, the hypervisor's steal time).

These are what moves a small run's figures from one process to the next on a shared machine: measured on this
project's 2-core machine under load, tiny runs with torch's 2 intra-op threads read train steps of 44-141 ms where 1
thread read 16-24 ms (each parallel operator waits for its slowest thread, and a thread that another process pushed
off its core is slow), and with 1 thread a repeat's step grew as 1 / (1 - the share of time its threads waited for a
core) (docs/performance.md, "Telling runs apart"). The VM shows a fixed clock and no cpufreq, and no steal. Plain
Python, no torch; a figure the system does not expose is None, never a guess.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from typing import Any

GIT_TIMEOUT_S = 5


def _git(args: list[str], cwd: str | None) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None  # no git on this machine, or it hung
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(cwd: str | None = None) -> dict[str, Any] | None:
    """{"commit", "commit_time", "dirty", "root"} of the git repository holding ``cwd`` (default: the current
    directory), or None outside one. ``dirty``: tracked files differ from the commit (staged or not); untracked files
    are not counted, or every run directory written inside the repository would count."""
    head = _git(["log", "-1", "--format=%H%n%cI"], cwd)
    if not head:
        return None
    commit, _, commit_time = head.partition("\n")
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {"commit": commit, "commit_time": commit_time or None,
            "dirty": None if status is None else bool(status), "root": _git(["rev-parse", "--show-toplevel"], cwd)}


def usable_cpus() -> int | None:
    """CPUs this process may run on (its affinity mask; a container's cpuset shows here), or None."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cpu_clock() -> dict[str, Any]:
    """{"cpu_mhz": mean current clock of the usable cores, "governor": the cpufreq governor}; None where hidden (a VM
    often shows a fixed nominal clock and no cpufreq at all)."""
    mhz = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            mhz = [float(line.split(":", 1)[1]) for line in f if line.startswith("cpu MHz")]
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", encoding="utf-8") as f:
            governor: str | None = f.read().strip()
    except OSError:
        governor = None
    return {"cpu_mhz": round(sum(mhz) / len(mhz), 1) if mhz else None, "governor": governor}


def _proc_stat() -> list[int] | None:
    """The machine's CPU time counters (user nice system idle iowait irq softirq steal ...), or None."""
    try:
        with open("/proc/stat", encoding="utf-8") as f:
            return [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def _schedstat() -> dict[str, tuple[int, int]]:
    """Per thread of this process: (ns on a CPU, ns runnable but waiting for one), from /proc/self/task/*/schedstat
    (Linux with schedstats); {} where unreadable."""
    out = {}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return {}
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/schedstat", encoding="utf-8") as f:
                run, wait, _ = (int(v) for v in f.read().split()[:3])
            out[tid] = (run, wait)
        except (OSError, ValueError):
            continue
    return out


def waiting_share(start: dict[str, tuple[int, int]], end: dict[str, tuple[int, int]]) -> float | None:
    """The share of the time this process's threads were runnable that they spent waiting for a core (threads born
    in between count from zero; threads that ended are missed); None without schedstat."""
    run = wait = 0
    for tid, (r1, w1) in end.items():
        r0, w0 = start.get(tid, (0, 0))
        run, wait = run + r1 - r0, wait + w1 - w0
    return round(wait / (run + wait), 3) if run + wait > 0 else None


class Contention:
    """How much this process was kept from running between ``start()`` and ``result()``.

    ``cpu_per_wall``: this process's CPU time (all its threads) over the wall time; on a machine it has to itself a
    compute-bound run reads about its thread count, and far less when others take its cores. ``involuntary_switches``:
    times the kernel took a core from one of its threads. ``steal_pct``: the share of the machine's CPU time that the
    hypervisor gave to other guests (0 on bare metal). ``waiting_share``: the share of the time its threads were
    runnable that they waited for a core (the scheduler's own account, /proc schedstat): sleeps and device waits do
    not count, so it is the cleanest sign that other work (or too many threads) held the cores."""

    def start(self) -> "Contention":
        self._wall = time.perf_counter()
        self._usage = resource.getrusage(resource.RUSAGE_SELF)
        self._stat = _proc_stat()
        self._sched = _schedstat()
        return self

    def result(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._wall
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (usage.ru_utime + usage.ru_stime) - (self._usage.ru_utime + self._usage.ru_stime)
        stat, steal = _proc_stat(), None
        if stat and self._stat and len(stat) > 7:
            delta = [b - a for a, b in zip(self._stat, stat)]
            steal = round(100 * delta[7] / sum(delta), 1) if sum(delta) > 0 else None
        return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                "cpu_per_wall": round(cpu / wall, 2) if wall > 0 else None,
                "involuntary_switches": usage.ru_nivcsw - self._usage.ru_nivcsw, "steal_pct": steal,
                "waiting_share": waiting_share(self._sched, _schedstat()),
                **cpu_clock()}
