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
  spread? Simulated (tests/test_compare.py): two runs of 5 steps from one distribution are called different 2-3% of
  the time, of 10 or more steps under 1% of the time; a 10% shift with a 5% standard deviation per step is called real 62% of the
  time at 5 steps and less at more steps, as the ranges do not shrink with more steps. So "beyond noise" is strong
  evidence and "within noise" means "not shown", not "equal". With 3 steps one pair in seven from one distribution
  would be called different, so fewer than ``MIN_STEPS_TO_JUDGE`` counted steps give no judgement.
"""

from __future__ import annotations

import os
from typing import Any

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


def instability_lines(data: dict[str, Any]) -> list[str]:
    """One warning per unstable experiment: the spread, the load average, the likely cause and what to do."""
    config = data.get("config", {})
    cores = data.get("env", {}).get("cpu_count")
    steps = config.get("steps")
    if "train" in config:  # scripts/train.py: its timed steps are the training run's own
        more = "a longer --max-steps"
    else:
        more = f"more --steps (now {steps})" if steps else "more --steps"
    profiler = config.get("profiler") or "none"
    if profiler != "none":
        cause = (f"This run was profiled (--profiler {profiler}), which slows some steps far more than others; "
                 f"rerun without it and with {more}")
    else:
        cause = f"Something else was probably using the machine; rerun with {more} when it is quiet"
    return [
        f"WARNING: {exp} figures are unstable: p90/p10 = {s:.2f} (above "
        f"{UNSTABLE_SPREAD.get(exp, DEFAULT_UNSTABLE_SPREAD)}), {_fmt_load(load, cores)}. {cause} before trusting "
        "or comparing them."
        for exp, s, load in unstable_experiments(data)
    ]


def speedup_range(speedup: float | None, base: dict[str, Any] | None, this: dict[str, Any] | None
                  ) -> tuple[float, float] | None:
    """Where a speed-up over ``base`` lies when each run's step could be anywhere in its p10-p90 range.

    ``speedup`` is already oriented (above 1 is faster); ``base`` and ``this`` are the STATS of the times it rests
    on. For a time, speedup = base/this and the range is [base.p10/this.p90, base.p90/this.p10]; a rate over the
    median step (tokens/s, TFLOP/s, MFU) scales the same way.
    """
    if speedup is None or any(spread(s, MIN_STEPS_TO_JUDGE) is None for s in (base, this)):
        return None
    if not base.get("median_ms") or not this.get("median_ms"):
        return None
    low = speedup * (base["p10_ms"] / base["median_ms"]) * (this["median_ms"] / this["p90_ms"])
    high = speedup * (base["p90_ms"] / base["median_ms"]) * (this["median_ms"] / this["p10_ms"])
    return low, high


def judge(speedup_range_: tuple[float, float] | None) -> str | None:
    """WITHIN_NOISE when the speed-up's range holds 1 (the p10-p90 ranges overlap), BEYOND_NOISE when it does
    not, None when there is no spread to judge by."""
    if speedup_range_ is None:
        return None
    low, high = speedup_range_
    return WITHIN_NOISE if low <= 1.0 <= high else BEYOND_NOISE
