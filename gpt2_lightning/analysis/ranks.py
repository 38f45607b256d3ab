"""Several processes: which rank is the straggler, by how much and in which phase, and the job's global rate.

Plain Python over every rank's figures (``ranks`` in results.json: ``phases``, ``tokens``, ``waiting_ms``, ...).

- A rank's **own time** per step is its step (or forward pass) less the time it sat blocked in collectives
  (``waiting_ms``): under DDP every rank's step lasts as long as the slowest's, so the step alone cannot tell them
  apart.
- The **straggler** is the rank with the most own time; its **excess** is that over the median of the other ranks (for
  two ranks, the other one). Ranks that differ by less than ``NOISE_FRACTION`` of a step (and ``NOISE_MS``) name none.
- Its **phase** is the phase in which it is slowest against the others, once their wait (which sits in ``backward``,
  where DDP's all-reduce runs) is taken out; the sentence quotes that phase's own excess (``phase_excess_ms``) beside
  it, and the whole excess in own work (``excess_ms``, which also holds what the rank lost in the other phases) apart.
- The **global rate** is the job's tokens per step (every rank's) over the slowest rank's median step: the job ends
  when its slowest rank ends. It equals the sum of the ranks' own rates only when they agree.
"""

from __future__ import annotations

import statistics
from typing import Any

from gpt2_lightning.analysis.straggler_text import NOISE_MS, excess_phrase, others_wait_clause

NOISE_FRACTION = 0.15  # ranks' own times closer than this share of a step are the same (a busy machine's noise)
PHASES_BY_TIMED = {"step": ("data", "forward", "backward", "optimizer"), "forward": ("forward",)}


def _median(result: dict[str, Any], phase: str) -> float | None:
    return ((result.get("phases") or {}).get(phase) or {}).get("median_ms")


def own_ms(rank: dict[str, Any], timed_phase: str) -> float | None:
    """The rank's own work per step: ``own_ms`` where the rank measured it step by step (each step less its own
    wait), else its median step (or forward) less its median wait in collectives."""
    if rank.get("own_ms") is not None:
        return rank["own_ms"]
    step = _median(rank, timed_phase)
    return None if step is None else step - (rank.get("waiting_ms") or 0.0)


def _phase_ms(rank: dict[str, Any], phase: str) -> float | None:
    ms = _median(rank, phase)
    if ms is not None and phase == "backward" and rank.get("waits_in") == "all-reduce":
        ms -= rank.get("waiting_ms") or 0.0  # DDP's all-reduce is waited for inside backward
    return ms


def straggler(ranks: list[dict[str, Any]], timed_phase: str) -> dict[str, Any] | None:
    """``{"rank", "excess_ms", "phase", "own_ms", "others_own_ms", "others_wait_ms", "waits_in"}`` or None when the
    ranks agree (or there is one, or a figure is missing)."""
    own = {r["rank"]: own_ms(r, timed_phase) for r in ranks}
    if len(ranks) < 2 or any(v is None for v in own.values()):
        return None
    slow = max(own, key=lambda k: own[k])
    others = [r for r in ranks if r["rank"] != slow]
    reference = statistics.median(own[r["rank"]] for r in others)
    excess = own[slow] - reference
    if excess <= max(NOISE_MS, NOISE_FRACTION * reference):
        return None
    slow_rank = next(r for r in ranks if r["rank"] == slow)
    phase, phase_excess = timed_phase, None
    for p in PHASES_BY_TIMED.get(timed_phase, (timed_phase,)):
        mine, theirs = _phase_ms(slow_rank, p), [_phase_ms(r, p) for r in others]
        if mine is None or any(t is None for t in theirs):
            continue
        e = mine - statistics.median(theirs)
        if phase_excess is None or e > phase_excess:
            phase, phase_excess = p, e
    waits = [r.get("waiting_ms") for r in others]
    return {
        "rank": slow,
        "excess_ms": excess,
        "phase": phase,
        "phase_excess_ms": phase_excess,
        "own_ms": own[slow],
        "others_own_ms": reference,
        "others_wait_ms": statistics.median(waits) if waits and all(w is not None for w in waits) else None,
        "waits_in": others[0].get("waits_in"),
    }


def straggler_sentence(s: dict[str, Any] | None, stage_has_collectives: bool = True) -> str | None:
    """"rank 1 is the straggler: +21 ms per step in forward; the other ranks wait ~21 ms in the all-reduce"."""
    if not s:
        return None
    head = f"rank {s['rank']} is the straggler: {excess_phrase(s)}"
    tail = others_wait_clause(s) or (
        "the other ranks wait for it when the stage ends (no collective inside a step)" if not stage_has_collectives
        else "the other ranks' wait was not measured here (on a GPU: the diagnosis's communication time)")
    return f"{head}; {tail}"


def global_rate(ranks: list[dict[str, Any]], timed_phase: str) -> tuple[float | None, dict[str, Any]]:
    """(the job's tokens per second over its slowest rank, how it was made)."""
    tokens = [r.get("tokens") for r in ranks]
    steps = [_median(r, timed_phase) for r in ranks]
    if not ranks or any(not t for t in tokens) or any(not s for s in steps):
        return None, {"basis": "unknown: a rank has no tokens or no median step"}
    slowest = max(range(len(ranks)), key=lambda i: steps[i])
    rate = sum(tokens) / (steps[slowest] / 1000.0)
    return rate, {"basis": "every rank's tokens per step over the slowest rank's median step",
                  "job_tokens_per_step": sum(tokens), "slowest_rank": ranks[slowest]["rank"],
                  "slowest_step_ms": steps[slowest],
                  "sum_of_rank_rates": sum(t / (s / 1000.0) for t, s in zip(tokens, steps))}


def waits_from_traces(result: dict[str, Any], diagnosis: dict[str, Any] | None, timed_phase: str) -> None:
    """On a GPU the host cannot time the all-reduce (NCCL's future completes when it is queued): each rank's wait is
    then its own trace's communication kernel time per profiled step (an NCCL kernel spins until its peers arrive),
    and the straggler is judged again with it. Nothing changes where the waits were measured on the host."""
    rows = {r["rank"]: r for r in (diagnosis or {}).get("ranks") or []}
    ranks = result.get("ranks") or []
    if not rows or not ranks or any(r.get("waiting_ms") is not None for r in ranks):
        return
    if any(rows.get(r["rank"], {}).get("communication_ms_per_step") is None for r in ranks):
        return
    for r in ranks:
        r["waiting_ms"] = rows[r["rank"]]["communication_ms_per_step"]
        r["waits_in"] = "all-reduce" if timed_phase == "step" else "collectives"
        r["waiting_source"] = "communication kernels of the rank's own profiled steps"
    result["straggler"] = straggler(ranks, timed_phase)
    if result["straggler"] and isinstance(diagnosis.get("verdict"), list):
        from gpt2_lightning.analysis.verdict import Evidence
        from gpt2_lightning.analysis.verdict import straggler as straggler_rule

        finding = straggler_rule(Evidence(analysis={}, straggler=result["straggler"]))
        diagnosis["verdict"] = [finding.sentence, *diagnosis["verdict"]][:3]  # it sets every rank's pace: first
