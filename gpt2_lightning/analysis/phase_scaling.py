"""A CPU breakdown in the un-profiled step's time: shares from the profiled steps, times from the counted ones.

On a CPU the profiler slows the host itself (a GPT-2 small step: 8.33 s profiled against 1.63 s without), and not
evenly: it pays a cost per recorded operator, so AdamW's one-operation-per-parameter loop slows far more than the large
matmuls of forward and backward, and time that is not operator work (Python between operators, a sleep, a wait) hardly
slows at all. So the breakdown's rows (``modules`` of a CPU trace analysis, host time of the profiled steps) are
brought phase by phase to the counted, un-profiled medians of the same run:

- forward (every part's forward time) and backward (backward and recompute time; the blocks and the backward of
  forward work that ran before the trace with them): each cell is split into its time inside operators
  (``profiled_op_ms``, from the trace) and the rest. The rest is kept as measured; the operator time of every cell is
  scaled by one factor per phase, f = (un-profiled median - the phase's time outside operators) / (the phase's
  operator time), so the phase's cells add up to its median (``scaled.method[phase]`` = ``"operators"``). When the
  median is no longer than the time outside operators (f <= 0: that time was slowed too, or the run was noisy) or the
  rows carry no operator time, the phase falls back to one factor for all its time, median over profiled
  (``"phase"``, with ``scaled.phases[phase].why``);
- the optimizer row to ``phases.optimizer`` (``"phase"``: it is one row);
- ``outside any module`` to what is left of the step: ``phases.step`` less forward, backward and optimizer (the data
  phase, Lightning's hooks, zero_grad), so the rows add up to ``phases.step``, the step the report quotes.
  Medians do not add up: when forward, backward and optimizer's medians together exceed the step's, they are
  brought down to it and nothing is left outside: the phases' time outside operators is kept whole
  (``scaled.fitted_kept_ms``) and the rest of the three shrunk by one factor (``scaled.fitted``); all of it alike only
  when that kept time alone exceeds the step.
  In inference the quoted figure is the forward pass (``phases.forward``): the parts add up to it.
- ``waiting for collectives`` (several processes: a model thread blocked in a collective outside any module) is a
  wait, which the profiler does not slow: kept as measured, and taken from what is left outside.

Every row and block keeps its profiled time (``profiled_ms``). The operator categories and top operators (operator
self time, which the phases do not split) are scaled by one factor for the step, found the same way: the step's time
outside operators kept, f = (un-profiled step - that time) / the step's operator time (``scaled.method``
``"operators"``; ``"step"``, the un-profiled step over the profiled one, when that is not positive); their shares stay
those of the profiled steps. Plain Python, no torch.
"""

from __future__ import annotations

import copy
from typing import Any

from gpt2_lightning.analysis.module_parts import NON_MODEL_ROWS, OPTIMIZER_ROW, OUTSIDE_ROW, WAITING_ROW, rank_layers

SCALED_NOTE = "shares from the profiled steps, times scaled to the un-profiled phases"
PHASES = ("forward", "backward", "optimizer")
# the cells of the model's rows that each phase holds: a recompute (activation checkpointing) runs in backward
PHASE_COLUMNS = {"forward": ("forward_ms",), "backward": ("backward_ms", "recompute_ms")}


def _median(phases: dict[str, Any], name: str) -> float | None:
    value = (phases.get(name) or {}).get("median_ms")
    return value if value is not None and value > 0 else None


def _factor(target: float | None, measured: float) -> float | None:
    return None if target is None or measured <= 0 else target / measured


def _plan(rows: list[dict[str, Any]], phase: str, target: float | None) -> dict[str, Any]:
    """How one phase's cells go from the profiled steps' time to the un-profiled phase's (``target``)."""
    columns = PHASE_COLUMNS[phase]
    profiled = sum(r.get(c) or 0.0 for r in rows for c in columns)
    known = all(r.get("profiled_op_ms") for r in rows)  # CPU traces: the part of each cell inside operators
    ops = sum(r["profiled_op_ms"].get(c) or 0.0 for r in rows for c in columns) if known else None
    plan: dict[str, Any] = {"profiled_ms": profiled, "operator_ms": ops,
                            "other_ms": None if ops is None else max(0.0, profiled - ops), "target_ms": target}
    if target is None or profiled <= 0:
        return plan | {"method": None, "factor": None}
    if ops is not None and ops > 0 and target > plan["other_ms"]:
        return plan | {"method": "operators", "factor": (target - plan["other_ms"]) / ops}
    why = ("the breakdown has no operator time" if ops is None else "the phase holds no operator time" if ops <= 0
           else f"the un-profiled phase ({target:.3f} ms) is no longer than the profiled time outside operators "
                f"({plan['other_ms']:.3f} ms)")
    return plan | {"method": "phase", "factor": target / profiled, "why": why}


def _scale_cell(r: dict[str, Any], column: str, plan: dict[str, Any]) -> None:
    value = r.get(column)
    if value is None:
        return
    if plan["method"] == "operators":
        op = min(value, (r.get("profiled_op_ms") or {}).get(column) or 0.0)
        r[column] = value - op + plan["factor"] * op  # time outside operators as measured, operators scaled
    else:
        r[column] = value * (plan["factor"] or 0.0)


def _scale_row(r: dict[str, Any], plans: dict[str, dict[str, Any]]) -> None:
    for phase, columns in PHASE_COLUMNS.items():
        for column in columns:
            if phase in plans:
                _scale_cell(r, column, plans[phase])
            elif r.get(column) is not None:
                r[column] = 0.0
    r["total_ms"] = sum(r.get(c) or 0.0 for c in ("forward_ms", "backward_ms", "recompute_ms"))


def _fit(model_rows: list[dict[str, Any]], targets: dict[str, float | None], measured: dict[str, float],
         step: float, inside: float) -> tuple[dict[str, float | None], float, float | None]:
    """(targets, factor, time kept) so that the phases' targets add up to no more than the step.

    Medians of phases need not add up to the median step (on a busy machine they come from different steps). When
    they exceed it, the phases' time outside operators (a sleep, a wait, Python: what the profiled steps measured
    as it is) is kept whole and only the rest is shrunk, by one factor for every phase; when even that time exceeds
    the step, every phase is shrunk alike. ``kept``: the time kept whole (None when nothing needed fitting)."""
    if inside <= step or inside <= 0:
        return targets, 1.0, None
    kept = {p: min(_plan(model_rows, p, t)["other_ms"] or 0.0, t) if p in PHASE_COLUMNS and t is not None
            and measured[p] > 0 else 0.0 for p, t in targets.items()}
    room = sum((t or 0.0) - kept[p] for p, t in targets.items() if measured[p] > 0)
    if step > sum(kept.values()) and room > 0:
        g = (step - sum(kept.values())) / room
        return {p: None if t is None else kept[p] + (t - kept[p]) * g for p, t in targets.items()}, g, \
            sum(kept.values())
    g = step / inside
    return {p: None if t is None else t * g for p, t in targets.items()}, g, 0.0


def scale_modules(modules: dict[str, Any], phases: dict[str, Any], training: bool) -> dict[str, Any]:
    """A copy of the ``modules`` block in un-profiled time (see the module's docstring); the block unchanged when
    it has no rows or the run has no un-profiled median of a phase that has rows."""
    if "parts" not in modules:
        return modules
    step = _median(phases, "step" if training else "forward")
    targets = {p: _median(phases, p) for p in (PHASES if training else ("forward",))}
    model_rows = [r for r in modules["parts"] if r["part"] not in NON_MODEL_ROWS]
    # a model thread blocked in a collective (several processes): a wait, which the profiler does not slow
    waiting = sum(r["total_ms"] for r in modules["parts"] if r["part"] == WAITING_ROW)
    measured = {p: sum(r.get(c) or 0.0 for r in model_rows for c in PHASE_COLUMNS[p]) for p in PHASE_COLUMNS}
    measured["optimizer"] = sum(r["total_ms"] for r in modules["parts"] if r["part"] == OPTIMIZER_ROW)
    if step is None or any(targets[p] is None for p in targets if measured[p] > 0):
        return modules
    inside = sum(targets[p] or 0.0 for p in targets if measured[p] > 0)
    # the phases fit in what the wait leaves of the step (the wait is kept as measured)
    targets, fitted, kept = _fit(model_rows, targets, measured, max(0.0, step - waiting), inside)
    plans = {p: _plan(model_rows, p, targets[p]) for p in PHASE_COLUMNS if p in targets and measured[p] > 0}
    out = copy.deepcopy(modules)
    for r in out["parts"]:
        r["profiled_ms"] = r["total_ms"]
        if r["part"] == OPTIMIZER_ROW:
            r["total_ms"] = (targets.get("optimizer") or 0.0) if measured["optimizer"] > 0 else 0.0
        elif r["part"] == OUTSIDE_ROW:
            r["total_ms"] = max(0.0, step - waiting - sum(targets[p] or 0.0 for p in targets if measured[p] > 0))
            if training and _median(phases, "data") is not None:
                r["data_ms"] = _median(phases, "data")
        elif r["part"] == WAITING_ROW:
            pass  # a wait: kept as measured
        else:
            _scale_row(r, plans)
    for b in out.get("blocks") or []:
        b["profiled_ms"] = b["total_ms"]
        _scale_row(b, plans)
    if out.get("blocks"):  # each layer's excess, and which stand out, in the times shown
        out["outlier_blocks"] = rank_layers(out["blocks"])
    if out.get("backward_without_forward_ms") and "backward" in plans:  # backward operators' time
        out["backward_without_forward_ms"] *= plans["backward"]["factor"] or 0.0
    # the model's parts ranked again by their time in the un-profiled step (the optimizer and outside rows stay last)
    out["parts"].sort(key=lambda r: (r["part"] in NON_MODEL_ROWS, -r["total_ms"]
                                     if r["part"] not in NON_MODEL_ROWS else 0.0))
    total = sum(r["total_ms"] for r in out["parts"])
    for r in out["parts"]:
        r["pct"] = 100.0 * r["total_ms"] / total if total else 0.0
    factors = {p: plans[p]["factor"] if p in plans else _factor(targets[p], measured[p]) for p in targets}
    methods = {p: plans[p]["method"] if p in plans else "phase" for p in targets if measured[p] > 0}
    out.update(profiled_ms_per_step=modules["total_ms_per_step"], total_ms_per_step=total,
               basis=f"host time of the un-profiled step ({SCALED_NOTE})",
               scaled={"note": SCALED_NOTE, "method": methods, "factors": factors, "fitted": fitted,
                       "fitted_kept_ms": kept,
                       "phases": plans, "phases_ms": {p: targets[p] for p in targets} | {"step": step}})
    return out


def _operator_factor(modules: dict[str, Any]) -> float | None:
    """How the scaled module rows scaled their operator time, as one factor: each phase's operator time times its
    factor, over their operator time. None when the rows carry no operator time."""
    plans = ((modules.get("scaled") or {}).get("phases") or {}).values()
    if not plans or any(p.get("operator_ms") is None or p.get("factor") is None for p in plans):
        return None
    den = sum(p["operator_ms"] for p in plans)
    return sum(p["operator_ms"] * p["factor"] for p in plans) / den if den > 0 else None


def scale_cpu_analysis(analysis: dict[str, Any], phases: dict[str, Any] | None, training: bool) -> dict[str, Any]:
    """A CPU trace analysis in the un-profiled step's time: the module rows phase by phase (``scale_modules``); the
    categories and top operators (operator self time) by the step's operator factor, (the un-profiled step - the
    profiled step's time outside operators) / its operator time, as the rows' operators are scaled
    (``scaled.method`` = ``"operators"``) — in inference the factor the forward's rows scaled their operators by
    (``_operator_factor``) — or, without the split or when that is not positive, by the un-profiled step over the
    profiled one (``"step"``). Unchanged without the phases, or for a GPU trace (kernel time is not
    slowed by the profiler)."""
    if analysis.get("kind") == "gpu" or not phases:
        return analysis
    step = _median(phases, "step" if training else "forward")
    profiled = analysis.get("profiled_step_ms")
    out = dict(analysis)
    modules = analysis.get("modules") or {}
    if modules:
        out["modules"] = scale_modules(modules, phases, training)
    factor, method = _factor(step, profiled or 0.0), "step"
    ops, total = modules.get("profiled_op_ms_per_step"), modules.get("total_ms_per_step")
    rows_factor = None if training else _operator_factor(out.get("modules") or {})
    if rows_factor is not None:
        # inference: a profiled predict step holds more than the forward pass the median times (the loop, hooks,
        # the batch), so the step's time outside operators says nothing of the forward's: the operators are scaled
        # as the forward's rows scaled theirs, and the two views agree
        factor, method = rows_factor, "operators"
    elif step is not None and ops and total and step > total - ops:  # the model threads' time outside operators kept
        factor, method = (step - (total - ops)) / ops, "operators"
    if factor is None:
        return out
    out["categories"] = {k: dict(v, ms_per_step=v["ms_per_step"] * factor) for k, v in analysis["categories"].items()}
    out["top_ops"] = [dict(r, ms_per_step=r["ms_per_step"] * factor) for r in analysis.get("top_ops") or []]
    out["cpu_self_ms_per_step"] = analysis.get("cpu_self_ms_per_step", 0.0) * factor
    out["scaled"] = {"note": SCALED_NOTE, "step_ms": step, "profiled_step_ms": profiled, "factor": factor,
                     "method": method}
    return out
