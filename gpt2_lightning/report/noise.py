"""How far a figure can be trusted: how widely a run's steps spread, and whether two runs differ beyond it.

Both judgements read only the STATS that every results.json carries (n, median, p10, p90), so old runs, runs made
elsewhere and runs of a few steps are judged the same way.

- **Unstable run.** A run whose counted steps spread widely (p90/p10 above ``UNSTABLE_SPREAD``) was disturbed by
  something: other work on the machine, thermal or frequency changes, a profiler. Steps and forward passes on a
  quiet machine stay within 1.01-1.37 (docs/results: every H100 run, and GPT-2 small on a 2-core CPU); on a busy
  2-core machine one sweep point read 1.71 s against 64 ms for the next. 1.5 sits above every quiet run measured
  and far below what a busy machine does. Model builds (init) are short allocations and spread 1.3-1.74 even on a
  quiet H100 machine, so they are held to 2.5.
- **Within noise.** Two runs are within noise of each other when their p10-p90 ranges overlap. Equivalently, the
  range of the speed-up, [first.p10 / this.p90, first.p90 / this.p10], contains 1. It was chosen over a bootstrap
  interval of the median ratio because runs have few steps (5 by default): resampling 5 values gives a median that
  takes only a handful of distinct values, so the interval is coarse and itself noisy; it needs every step's times
  (older results and other tools' files have only STATS); and it changes with the random seed. The overlap test is
  deterministic and asks the question a reader of a benchmark has: is the difference bigger than the step-to-step
  spread? Simulated (tests/report/test_compare.py): two runs of 5 steps from one distribution are called different 2-3% of
  the time, of 10 or more steps under 1% of the time; a 10% shift with a 5% standard deviation per step is called real 62% of the
  time at 5 steps and less at more steps, as the ranges do not shrink with more steps. So "beyond noise" is strong
  evidence and "within noise" means "not shown", not "equal". With 3 steps one pair in seven from one distribution
  would be called different, so fewer than ``MIN_STEPS_TO_JUDGE`` counted steps give no judgement.
"""

from __future__ import annotations

import os
from typing import Any

from gpt2_lightning.report.profiled import counted_steps_profiler

UNSTABLE_SPREAD = {"init": 2.5}  # per experiment; anything else uses DEFAULT_UNSTABLE_SPREAD
DEFAULT_UNSTABLE_SPREAD = 1.5
MIN_STEPS = 3  # for a spread at all
MIN_STEPS_TO_JUDGE = 5  # for a noise judgement between two runs (see above)
# the phase whose STATS stand for each experiment's timed unit (a build, a forward pass, an optimizer step)
TIMED_PHASE = {"init": "init", "inference": "forward", "train": "step"}

WITHIN_NOISE = "within noise"
BEYOND_NOISE = "beyond noise"


def load_average() -> list[float] | None:
    """The machine's 1, 5 and 15 minute load averages (os.getloadavg), or None where the system has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def spread(stats: dict[str, Any] | None, min_steps: int = MIN_STEPS) -> float | None:
    """p90 / p10 of a STATS dict; None when there are fewer than ``min_steps`` steps or no positive p10."""
    if not stats or (stats.get("n") or 0) < min_steps:
        return None
    p10, p90 = stats.get("p10_ms"), stats.get("p90_ms")
    if not p10 or p90 is None or p10 <= 0:
        return None
    return p90 / p10


def timed_stats(exp: str, result: dict[str, Any]) -> dict[str, Any] | None:
    """STATS of an experiment's timed unit (init: a build; inference: a forward pass; train: a step)."""
    stats = result.get("phases", {}).get(TIMED_PHASE.get(exp, ""))
    return stats if stats and stats.get("n") else None


def unstable(exp: str, result: dict[str, Any]) -> float | None:
    """The spread (p90/p10) of an experiment whose timed steps spread beyond its threshold, else None."""
    s = spread(timed_stats(exp, result))
    limit = UNSTABLE_SPREAD.get(exp, DEFAULT_UNSTABLE_SPREAD)
    return s if s is not None and s > limit else None


def unstable_experiments(data: dict[str, Any]) -> list[tuple[str, float, list[float] | None]]:
    """(experiment, spread, load average when it ended) for every unstable experiment of a run."""
    found = []
    for exp, result in data.get("experiments", {}).items():
        s = unstable(exp, result) if isinstance(result, dict) and "error" not in result else None
        if s is not None:
            found.append((exp, s, result.get("load_avg")))
    return found


def _fmt_load(load: list[float] | None, cores: int | None) -> str:
    if not load:
        return "load average not recorded"
    on = f" on {cores} cores" if cores else ""
    return f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}{on}"


def repeat_count(result: dict[str, Any] | None) -> int:
    """How many repeats an experiment's figures summarise (``--repeat``; 0: one run's, over its steps)."""
    block = (result or {}).get("repeats")
    return int(block.get("n") or 0) if isinstance(block, dict) else 0


def instability_lines(data: dict[str, Any]) -> list[str]:
    """One warning per unstable experiment (the spread, the load average, the likely cause and what to do), then
    what the process could see of other work on the machine (contention_lines)."""
    config = data.get("config", {})
    cores = data.get("env", {}).get("cpu_count")
    steps = config.get("steps")
    if "train" in config:  # scripts/train.py: its timed steps are the training run's own
        more = "a longer --max-steps"
    else:
        more = f"more --steps (now {steps})" if steps else "more --steps"
    profiler = counted_steps_profiler(data)  # --profiler pytorch on a CPU leaves the counted steps un-profiled
    if profiler != "none":
        cause = (f"This run was profiled (--profiler {profiler}), which slows some steps far more than others; "
                 f"rerun without it and with {more}")
    else:
        cause = f"Something else was probably using the machine; rerun with {more} when it is quiet"
    lines = []
    for exp, s, load in unstable_experiments(data):
        repeated = repeat_count(data["experiments"][exp])
        between, what = (" between repeats", "of the repeats' medians ") if repeated else ("", "")
        why = ("Something else was probably using the machine while some repeats ran (each is a fresh process); "
               "rerun when it is quiet") if repeated and profiler == "none" else cause
        lines.append(f"WARNING: {exp} figures are unstable{between}: p90/p10 {what}= {s:.2f} (above "
                     f"{UNSTABLE_SPREAD.get(exp, DEFAULT_UNSTABLE_SPREAD)}), {_fmt_load(load, cores)}. {why} before "
                     "trusting or comparing them.")
    return lines + contention_lines(data)


# a run whose threads waited for a core this share of the time they were ready to run, or more, measured the other
# work on the machine as much as itself (gpt2_lightning.profile.machine). In the pilot of scripts/noise_check.py on the shared
# 2-core machine, tiny repeats that waited under 5% of the time read train steps of 14.6-18.9 ms, those that waited
# 25% or more 16.8-51.9 ms (median 33.0): a step's time grows as 1 / (1 - share) (docs/performance.md)
BUSY_WAITING_SHARE = 0.25


def _machines(data: dict[str, Any], exp: str) -> list[dict[str, Any]]:
    """The ``machine`` records of an experiment: every repeat's, or its own."""
    own = [r["experiments"][exp].get("machine") for r in data.get("repeats") or [] if exp in r.get("experiments", {})]
    own = own or [data["experiments"][exp].get("machine")]
    return [m for m in own if isinstance(m, dict)]


def kept_waiting(machine: dict[str, Any] | None) -> float | None:
    """The share of its runnable time a process waited for a core, when that marks it as disturbed, else None."""
    share = (machine or {}).get("waiting_share")
    return share if share is not None and share >= BUSY_WAITING_SHARE else None


def busy_share(result: dict[str, Any] | None) -> float | None:
    """How much of the time an experiment's threads waited for a core, when that marks the run as measured on a busy
    machine: a single run's own share, or the median of its repeats' (most repeats disturbed); else None."""
    block = (result or {}).get("repeats")
    if isinstance(block, dict):
        shares = sorted(w for w in block.get("waiting_shares") or [] if w is not None)
        share = shares[len(shares) // 2] if shares else None
    else:
        share = ((result or {}).get("machine") or {}).get("waiting_share")
    return share if share is not None and share >= BUSY_WAITING_SHARE else None


def contention_lines(data: dict[str, Any]) -> list[str]:
    """What moves a CPU run's figures from one process to the next, as far as the process could see it: more
    intra-op threads than the machine had free cores, and threads that other work kept off the cores. Both make
    steps slower as a whole, so a run can look steady and still read far slower than the machine's own speed."""
    env = data.get("env", {})
    if env.get("device_type") != "cpu":
        return []
    threads, cpus = env.get("torch_threads") or 1, env.get("usable_cpus") or env.get("cpu_count") or 1
    lines = []
    for exp, result in data.get("experiments", {}).items():
        if not isinstance(result, dict) or "error" in result:
            continue
        machines = _machines(data, exp)
        switches = max((m.get("involuntary_switches") or 0 for m in machines), default=0)
        load = result.get("load_avg")
        if threads > 1 and load and load[0] > cpus:
            # the threads were pushed off their cores only if the kernel says it switched them out (not 0 times)
            pushed = (f", so each parallel operator waited for threads pushed off their cores ({switches} involuntary "
                      "context switches)" if switches else "")
            lines.append(f"WARNING: {exp}: torch ran {threads} threads on {cpus} usable CPUs with a load average of "
                         f"{load[0]:.2f}: more runnable work than cores{pushed}. --threads 1 gives steadier figures "
                         "on a shared machine.")
        waited = [w for w in map(kept_waiting, machines) if w is not None]
        if waited:
            who = (f"in {len(waited)} of {len(machines)} repeats the threads waited for a core up to"
                   if data.get("repeats") else "its threads waited for a core")
            counted = f" ({switches} involuntary context switches)" if switches else ""
            lines.append(f"WARNING: {exp}: {who} {max(waited):.0%} of the time they were ready to run{counted}: other "
                         "work held the cores, so these times are slower than this machine's own. Measure on a quiet "
                         "machine.")
    return lines
