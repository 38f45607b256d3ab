"""How long a CPU run will take, said before it starts when that is more than about two minutes.

GPT-2 small at B8 x T1024 on a 2-core CPU takes ~14 s per forward pass: a default ``--accelerator cpu`` run is many
minutes, and nothing said so. The estimate is the run's FLOPs (``gpt2_lightning.flops``: 6N + 12·L·d·T per trained
token, a third of it per inferred token) over the rate this machine reaches on one large fp32 matmul, measured for
~0.3 s just before (with the threads the run will use), plus the model builds at the rate the machine fills
weights with random numbers. It counts every step that runs, warm-up and the uncounted ones (an energy window's,
the diagnosis's, each of those CPU_PROFILED_SLOWDOWN times slower under the profiler) included, and says what to run
instead for a first look. GPU runs are not estimated: their steps take milliseconds to seconds.

With ``--module`` the FLOPs are the workload's (FlopCounterMode's count of one step, made once for results.json
anyway, never inside a counted step) at the batch shape its data really gives; the quick alternative is fewer
--steps or a smaller --module-args / --datamodule-args (``--model tiny`` is refused beside --module). Where the
workload has no count (FlopCounterMode could not count the model), nothing is said: no figure beats a wrong one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

WORTH_SAYING_S = 120.0  # shorter runs start without a word
QUICK = "--model tiny --seq-len 64 --batch-size 2"  # a first look in seconds (README's first command)
# the model reaches this share of a large matmul's rate (measured on the 2-core CPU: docs/reading-results.md)
MODEL_EFFICIENCY = {"inference": 0.8, "train": 0.6}


@dataclass
class MachineRates:
    """What this machine does per second: fp32 matmul FLOPs, and random numbers written into weights."""

    flops_per_s: float
    init_values_per_s: float


SLOW_MACHINE = MachineRates(flops_per_s=5e9, init_values_per_s=2e7)  # slower than any machine worth running on


def measure_rates(seconds: float = 0.3, n: int = 1024, clock: Callable[[], float] = time.perf_counter
                  ) -> MachineRates:
    """One n x n fp32 matmul repeated for ``seconds``, and a weight initialisation (normal_) of 4M values."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # the first call pays one-off costs (threads start, kernels chosen)
    count, start = 0, clock()
    while True:
        a @ b
        count += 1
        elapsed = clock() - start
        if elapsed >= seconds:
            break
    w = torch.empty(4 * 1024 * 1024)
    start = clock()
    w.normal_(0.0, 0.02)
    init_s = max(clock() - start, 1e-9)
    return MachineRates(flops_per_s=2.0 * n**3 * count / elapsed, init_values_per_s=w.numel() / init_s)


@dataclass
class StepWork:
    """What the run's steps cost: FLOPs of one train step and one inference step (None: not known), the parameters
    each build fills, the batch shape, and the experiments the model cannot run (not estimated)."""

    name: str
    batch_size: int
    seq_len: int
    flops: dict[str, float | None]
    params: int
    skipped: tuple[str, ...] = ()


def step_work(cfg: Any) -> StepWork:
    """The run's workload's FLOPs per step and parameters, as results.json records them (the built-in GPT-2 by its
    formula, --module by FlopCounterMode): the workload is built once per process and settings, its FLOPs counted
    once on its probe (a meta-device GPT-2), and the run's record reuses both."""
    from gpt2_lightning.profile.workload import workload_for

    workload = workload_for(cfg)
    used = workload.flops_used()
    b, t = workload.batch_shape()
    return StepWork(workload.name, b, t, {"train": used["train"], "inference": used["inference"]},
                    workload.num_params(),
                    tuple(e for e in ("init", "inference", "train") if workload.cannot_run(e) is not None))


def estimate_seconds(cfg: Any, rates: MachineRates, work: StepWork | None = None) -> dict[str, float] | None:
    """Seconds per experiment that cfg asks for, on a machine with these rates; None when a step's FLOPs are not
    known (an own module FlopCounterMode could not count)."""
    work = step_work(cfg) if work is None else work
    steps = cfg.warmup_steps + cfg.steps
    per_step: dict[str, float] = {}
    for exp in ("inference", "train"):
        if exp in cfg.experiment_list and exp not in work.skipped:
            if work.flops.get(exp) is None:
                return None
            per_step[exp] = work.flops[exp] / (rates.flops_per_s * MODEL_EFFICIENCY[exp])
    build_s = work.params / rates.init_values_per_s
    out: dict[str, float] = {}
    for exp in cfg.experiment_list:
        if exp in work.skipped:
            continue
        if exp == "init":
            out[exp] = (steps + 1) * build_s  # and the first, uncounted build of the process
            continue
        window = 0.0 if cfg.no_energy else max(0.0, cfg.energy_window_s - cfg.steps * per_step[exp])
        timed = steps * per_step[exp] + window + build_s
        out[exp] = timed + diagnosis_seconds(cfg, per_step[exp], timed)
    return out


def diagnosis_seconds(cfg: Any, step_s: float, timed_s: float) -> float:
    """The CPU diagnosis's extra steps, each CPU_PROFILED_SLOWDOWN times a step, by the rule that runs them
    (``profile.diagnosis._cpu_not_run``): when asked for (--profiler pytorch, --keep-trace), else on one process
    when they cost at most CPU_BREAKDOWN_MAX_SHARE of the experiment; 0 when they will not run."""
    from gpt2_lightning.profile.diagnosis import (CPU_BREAKDOWN_MAX_SHARE, CPU_PROFILED_SLOWDOWN,
                                                  PROFILER_WARMUP_STEPS, diagnosis_asked_for, refit_unsafe)

    if cfg.no_diagnose or refit_unsafe(cfg.strategy):
        return 0.0
    extra = (PROFILER_WARMUP_STEPS + cfg.diagnose_steps) * step_s * CPU_PROFILED_SLOWDOWN
    if diagnosis_asked_for(cfg):
        return extra
    if cfg.world_size > 1 or extra / (timed_s + extra) > CPU_BREAKDOWN_MAX_SHARE:
        return 0.0
    return extra


def fmt_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def quicker(cfg: Any) -> str:
    """What to run instead for a first look: the README's tiny GPT-2, or for --module fewer steps or a smaller model
    or batch through its own arguments (--model is refused beside --module)."""
    if not getattr(cfg, "module", None):
        return f"for a first look in seconds: {QUICK}"
    smaller = "--module-args" + (" or --datamodule-args" if getattr(cfg, "datamodule", None) else "")
    return f"for a first look sooner: fewer --steps (now {cfg.steps}), or a smaller model or batch through {smaller}"


def estimate_line(cfg: Any, rates: MachineRates, work: StepWork | None = None,
                  parts: dict[str, float] | None = None) -> tuple[float | None, str | None]:
    """The estimate in seconds, and the line to print when it is worth saying (None below WORTH_SAYING_S); (None,
    None) when it cannot be made. ``parts``: ``estimate_seconds``'s answer for these rates, when already made."""
    work = step_work(cfg) if work is None else work
    parts = estimate_seconds(cfg, rates, work) if parts is None else parts
    if parts is None:
        return None, None
    total = sum(parts.values())
    if total < WORTH_SAYING_S:
        return total, None
    split = ", ".join(f"{exp} {fmt_seconds(s)}" for exp, s in parts.items())
    repeat = getattr(cfg, "repeat", 1) or 1  # each repeat is a process of its own, and each says this line
    what = (f"each of the {repeat} repeats will take about {fmt_seconds(total)} ({fmt_seconds(total * repeat)} in "
            f"all)" if repeat > 1 else f"this run will take about {fmt_seconds(total)}")
    line = (f"{what} on this CPU ({split}: {work.name}, "
            f"B{work.batch_size} x T{work.seq_len}, {cfg.warmup_steps} + {cfg.steps} steps each, at the "
            f"{rates.flops_per_s / 1e9:.0f} GFLOP/s this machine's matmul reached just now); {quicker(cfg)}")
    busy = busy_note()
    return total, line + (f"; {busy}" if busy else "")


def busy_note(load: float | None = None, cpus: int | None = None) -> str | None:
    """Other work slows the run below the machine's own speed, which is what the estimate is: say so when the load
    average exceeds the usable cores. Measured: a run estimated at 50 s took 2 min 1 s while its threads waited for
    a core 50-75% of the time (docs/reading-results.md)."""
    import os

    try:
        load = os.getloadavg()[0] if load is None else load
        cpus = len(os.sched_getaffinity(0)) if cpus is None else cpus
    except (OSError, AttributeError):
        return None
    if load <= cpus:
        return None
    return f"other work loads this machine (load {load:.1f} on {cpus} cores): expect up to {load / cpus:.1f}x longer"


def say_estimate(cfg: Any, device_type: str, say: Callable[[str], None],
                 measure: Callable[[], MachineRates] = measure_rates) -> dict[str, Any] | None:
    """On a CPU: measure the machine, print the estimate when the run is long, and return what results.json keeps
    (``env.estimate``), to set against what the run then took. None on a GPU."""
    if device_type != "cpu":
        return None
    work = step_work(cfg)
    slow = estimate_seconds(cfg, SLOW_MACHINE, work)
    if slow is None or sum(slow.values()) < WORTH_SAYING_S:
        return None  # no FLOPs count, or short even on a slow machine: not worth the measurement's 0.3 s
    rates = measure()
    parts = estimate_seconds(cfg, rates, work)
    total, line = estimate_line(cfg, rates, work, parts)
    if line:
        say(f"profile.py: {line}")
    return {"seconds": round(total, 1), "per_experiment_s": {k: round(v, 1) for k, v in parts.items()},
            "matmul_gflops": round(rates.flops_per_s / 1e9, 1), "said": line is not None}
