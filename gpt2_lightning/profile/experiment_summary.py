"""What one timed stage leaves for results.json: phases, rates, memory, the first step, every step, the ranks, the host
clock's view and fit's wall time, all read off the timing and throughput callbacks (no Trainer is run here)."""

from __future__ import annotations

from typing import Any

from callbacks import PhaseTimingCallback, StepRecord, ThroughputCallback
from gpt2_lightning.analysis.ranks import global_rate, straggler
from gpt2_lightning.report.noise import load_average


def _first_step(timing: PhaseTimingCallback, stage: str, phase: str) -> dict[str, float | None]:
    """The first (warm-up) step, and what it cost beyond a steady one: compilation with --compile, allocator and
    autotuning warm-up otherwise. Never part of the counted figures."""
    warm = timing.warmup_records(stage)
    first = warm[0].phases.get(phase) if warm else None
    median = timing.summary(stage)[phase]["median_ms"]
    return {
        "first_step_ms": first,
        "first_step_overhead_ms": first - median if first is not None and median is not None else None,
    }


def _ranks(timing: PhaseTimingCallback, stage: str, timed_phase: str, waits: Any = None) -> dict[str, Any]:
    """Per-rank figures (phases, tokens, threads really set, time blocked in collectives), the straggler and the
    job's global rate when several processes ran; nothing for one (gpt2_lightning.analysis.ranks)."""
    ranks = timing.rank_summaries.get(stage)
    if not ranks:
        return {"world_size": 1}
    extra = {r["rank"]: r for r in (waits.rank_figures.get(stage, []) if waits is not None else [])}
    ranks = [r | {k: v for k, v in extra.get(r["rank"], {}).items() if k != "rank"} for r in ranks]
    rate, basis = global_rate(ranks, timed_phase)
    return {
        "world_size": len(ranks),
        "ranks": ranks,
        "straggler": straggler(ranks, timed_phase),
        # the job's tokens over its slowest rank's time: it ends when that rank ends
        "global_tokens_per_sec": rate,
        "global_rate": basis,
    }


def _per_step(records: list[StepRecord], stage: str) -> list[dict[str, Any]]:
    """Every warm-up and counted step (the uncounted extra steps of an energy window are only counted: a tiny model's
    2 s window can hold thousands)."""
    return [{"step": r.step, "warmup": r.warmup, "tokens": r.tokens, **{f"{k}_ms": v for k, v in r.phases.items()}}
            for r in records if r.stage == stage and not r.extra]


# ------------------------------------------------------------------------------------------------ experiments


def experiment_summary(
    timing: PhaseTimingCallback, throughput: ThroughputCallback, stage: str, timed_phase: str, waits: Any = None,
    flops: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Phases, rates, memory, first step, per-step times and per-rank figures of one timed stage; on CUDA the host
    clock's view beside the device's (``host``); for training, fit's wall time against its parts (``fit``)."""
    out = {
        "phases": timing.summary(stage),
        "throughput": throughput.summary(stage) | (flops or {}),  # with the FLOPs count used, and its source
        "memory": throughput.memory_summary(),
        **_first_step(timing, stage, timed_phase),
        "per_step": _per_step(timing.records, stage),
        "extra_steps": sum(r.extra for r in timing.records if r.stage == stage),
        **_ranks(timing, stage, timed_phase, waits),
        "load_avg": load_average(),  # how busy the machine was, for the noise warning (gpt2_lightning.report.noise)
    }
    host = timing.host_summary(stage)
    if host:
        out["host"] = host
    fit = timing.fit_summary() if stage == "train" else None
    if fit is not None:
        out["fit"] = fit
    return out
