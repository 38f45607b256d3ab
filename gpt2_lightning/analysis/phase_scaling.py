"""A CPU breakdown in the un-profiled step's time: shares from the profiled steps, times from the counted ones.

On a CPU the profiler slows the host itself (a GPT-2 small step: 8.33 s profiled against 1.63 s without), and not
evenly: the optimizer's one-operation-per-parameter loop pays the profiler's cost per operator far more often than
the large matmuls of forward and backward. So the breakdown's rows (``modules`` of a CPU trace analysis, host time
of the profiled steps) are scaled phase by phase to the counted, un-profiled medians of the same run:

- every part's forward time by ``phases.forward`` over the parts' summed forward time, and likewise backward; the
  blocks and the backward of forward work that ran before the trace with them;
- the optimizer row to ``phases.optimizer``;
- ``outside any module`` to what is left of the step: ``phases.step`` less forward, backward and optimizer (the data
  phase, Lightning's hooks, zero_grad), so the rows add up to ``phases.step``, the step the report quotes.
  Medians do not add up: when forward, backward and optimizer's medians together exceed the step's, all three are
  shrunk by one factor to fit it (``scaled.fitted``) and nothing is left outside.
  In inference the quoted figure is the forward pass (``phases.forward``): the parts add up to it.

The operator categories and top operators (self time, which the phases do not split) are scaled by one factor, the
un-profiled step over the profiled one; their shares stay those of the profiled steps. Plain Python, no torch.
"""

from __future__ import annotations

import copy
from typing import Any

from gpt2_lightning.analysis.module_parts import OPTIMIZER_ROW, OUTSIDE_ROW

SCALED_NOTE = "shares from the profiled steps, times scaled to the un-profiled phases"
PHASES = ("forward", "backward", "optimizer")


def _median(phases: dict[str, Any], name: str) -> float | None:
    value = (phases.get(name) or {}).get("median_ms")
    return value if value is not None and value > 0 else None


def _factor(target: float | None, measured: float) -> float | None:
    return None if target is None or measured <= 0 else target / measured


def scale_modules(modules: dict[str, Any], phases: dict[str, Any], training: bool) -> dict[str, Any]:
    """A copy of the ``modules`` block in un-profiled time (see the module's docstring); the block unchanged when
    it has no rows or the run has no un-profiled median of a phase that has rows."""
    if "parts" not in modules:
        return modules
    step = _median(phases, "step" if training else "forward")
    targets = {p: _median(phases, p) for p in (PHASES if training else ("forward",))}
    model_rows = [r for r in modules["parts"] if r["part"] not in (OPTIMIZER_ROW, OUTSIDE_ROW)]
    measured = {"forward": sum(r["forward_ms"] or 0.0 for r in model_rows),
                "backward": sum(r["backward_ms"] or 0.0 for r in model_rows),
                "optimizer": sum(r["total_ms"] for r in modules["parts"] if r["part"] == OPTIMIZER_ROW)}
    if step is None or any(targets[p] is None for p in targets if measured[p] > 0):
        return modules
    inside = sum(targets[p] or 0.0 for p in targets if measured[p] > 0)
    fitted = min(1.0, step / inside) if inside > 0 else 1.0  # medians do not add up: never more than the step
    targets = {p: None if t is None else t * fitted for p, t in targets.items()}
    factors = {p: _factor(targets[p], measured[p]) for p in targets}
    fwd, bwd = factors.get("forward") or 0.0, factors.get("backward") or 0.0
    out = copy.deepcopy(modules)
    for r in out["parts"]:
        r["profiled_ms"] = r["total_ms"]
        if r["part"] == OPTIMIZER_ROW:
            r["total_ms"] = (targets.get("optimizer") or 0.0) if measured["optimizer"] > 0 else 0.0
        elif r["part"] == OUTSIDE_ROW:
            r["total_ms"] = max(0.0, step - inside * fitted)
            if training and _median(phases, "data") is not None:
                r["data_ms"] = _median(phases, "data")
        else:
            _scale_row(r, fwd, bwd)
    for b in out.get("blocks") or []:
        _scale_row(b, fwd, bwd)
    if out.get("backward_without_forward_ms"):
        out["backward_without_forward_ms"] *= bwd
    # the model's parts ranked again by their time in the un-profiled step (the optimizer and outside rows stay last)
    out["parts"].sort(key=lambda r: (r["part"] in (OPTIMIZER_ROW, OUTSIDE_ROW), -r["total_ms"]
                                     if r["part"] not in (OPTIMIZER_ROW, OUTSIDE_ROW) else 0.0))
    total = sum(r["total_ms"] for r in out["parts"])
    for r in out["parts"]:
        r["pct"] = 100.0 * r["total_ms"] / total if total else 0.0
    out.update(profiled_ms_per_step=modules["total_ms_per_step"], total_ms_per_step=total,
               basis=f"host time of the un-profiled step ({SCALED_NOTE})",
               scaled={"note": SCALED_NOTE, "factors": factors, "fitted": fitted,
                       "phases_ms": {p: targets[p] for p in targets} | {"step": step}})
    return out


def _scale_row(r: dict[str, Any], fwd: float, bwd: float) -> None:
    if r.get("forward_ms") is not None:
        r["forward_ms"] *= fwd
    if r.get("backward_ms") is not None:
        r["backward_ms"] *= bwd
    r["total_ms"] = (r.get("forward_ms") or 0.0) + (r.get("backward_ms") or 0.0)


def scale_cpu_analysis(analysis: dict[str, Any], phases: dict[str, Any] | None, training: bool) -> dict[str, Any]:
    """A CPU trace analysis in the un-profiled step's time: the module rows phase by phase (``scale_modules``), the
    categories and top operators by the un-profiled step over the profiled one. Unchanged without the phases, or
    for a GPU trace (kernel time is not slowed by the profiler)."""
    if analysis.get("kind") == "gpu" or not phases:
        return analysis
    step = _median(phases, "step" if training else "forward")
    profiled = analysis.get("profiled_step_ms")
    out = dict(analysis)
    if analysis.get("modules"):
        out["modules"] = scale_modules(analysis["modules"], phases, training)
    factor = _factor(step, profiled or 0.0)
    if factor is None:
        return out
    out["categories"] = {k: dict(v, ms_per_step=v["ms_per_step"] * factor) for k, v in analysis["categories"].items()}
    out["top_ops"] = [dict(r, ms_per_step=r["ms_per_step"] * factor) for r in analysis.get("top_ops") or []]
    out["cpu_self_ms_per_step"] = analysis.get("cpu_self_ms_per_step", 0.0) * factor
    out["scaled"] = {"note": SCALED_NOTE, "step_ms": step, "profiled_step_ms": profiled, "factor": factor}
    return out
