"""Several processes: every rank diagnoses its own trace; rank 0 keeps each rank's headline figures beside its own.

One collective, after the experiment and its diagnosis have run on every rank (each rank reaches it whatever its
diagnosis gave, a failure included, so no rank waits for one that will never come).
"""

from __future__ import annotations

from typing import Any


def rank_row(rank: int, diagnosis: dict[str, Any] | None) -> dict[str, Any]:
    """What the report shows of one rank's diagnosis: its trace, profiled step, communication and first sentence."""
    d = diagnosis or {}
    comm = d.get("communication") or {}
    return {"rank": rank, "trace": d.get("trace_file") or d.get("trace"), "error": d.get("error"),
            "profiled_step_ms": d.get("profiled_step_ms"),
            "communication_ms_per_step": comm.get("ms_per_step"),
            "overlapped_pct": comm.get("overlapped_pct"),
            "verdict": (d.get("verdict") or [None])[0]}


def with_rank_diagnoses(diagnosis: dict[str, Any] | None, world_size: int, expected: bool) -> dict[str, Any] | None:
    """``diagnosis`` with ``ranks`` (every rank's row, in rank order) when several processes ran it. ``expected``
    (the same on every rank: from the settings, never from this rank's own outcome) decides whether to gather, so a
    rank whose trace went missing still joins the collective, with a row that says so."""
    import torch.distributed as dist

    if world_size <= 1 or not expected or not dist.is_available() or not dist.is_initialized():
        return diagnosis
    mine = rank_row(dist.get_rank(), diagnosis if diagnosis is not None else {"error": "no diagnosis on this rank"})
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return None if diagnosis is None else {**diagnosis, "ranks": sorted(gathered, key=lambda r: r["rank"])}
