"""Which profiled step, and which part of an optimizer step, a trace's host events belong to.

Shared by the trace analysis (busy time, categories) and the module breakdown: the profiled steps (``ProfilerStep#N``
ranges, with Lightning's shifted first range left out of CPU traces), finding the step of a time, and where an
optimizer's update starts inside ``optimizer.step(closure)``. Plain Python, no torch.
"""

from __future__ import annotations

import bisect
from typing import Any

from gpt2_lightning.analysis.trace_events import LIGHTNING_RANGE, MODULE_RANGE, OP, OPTIMIZER_RANGE, RANGE, Collected

BACKWARD_OP = "autograd::engine::evaluate_function"  # backward work, even when run inside optimizer.step(closure)
CLOSURE_RANGES = ("phase/forward", "phase/backward")  # PhaseTimingCallback's ranges of the closure's parts


def profiled_steps(c: Collected) -> tuple[list[tuple[int, float, float]], str]:
    """The profiled steps as (number, start, end), sorted, and where they came from.

    Lightning's PyTorchProfiler steps the profiler when ``training_step`` ends, so each of its ``ProfilerStep#N``
    ranges holds the backward and optimizer of one step and the forward of the next: the first recorded range holds
    the last warm-up step's backward and optimizer. On a CPU that host work is far slower than a counted step's (in a
    gpt2 run 27.5 s against 3.1 s), so a CPU trace leaves that range out when others remain; each of the rest holds
    exactly one forward, backward and optimizer of counted steps. A GPU trace keeps it: its kernels are those of any
    step (H100 fixture: 26.053 ms busy per step with it, 26.028 without), and other tools (HolisticTraceAnalysis)
    count every ProfilerStep."""
    if c.host_steps:
        steps = sorted((n, s, e) for n, (s, e) in c.host_steps.items())
        if c.lightning_training_steps and len(steps) > 1 and not c.g_start:
            return steps[1:], ("host ProfilerStep ranges (Lightning's: training_step end to training_step end; the "
                               "first, which holds a warm-up step's backward and optimizer, left out)")
        return steps, "host ProfilerStep ranges"
    numbers = sorted({n for _, n in c.gpu_steps})
    if numbers:
        spans = {n: [v for (_, m), v in c.gpu_steps.items() if m == n] for n in numbers}
        return [(n, min(s for s, _ in spans[n]), max(e for _, e in spans[n])) for n in numbers], "GPU step annotations"
    return [(0, float("-inf"), float("inf"))], "whole trace (no ProfilerStep ranges)"


def locate(starts: list[float], ranges: list[tuple[Any, float, float]], t: float) -> int:
    j = bisect.bisect_right(starts, t) - 1
    return j if j >= 0 and t <= ranges[j][2] else -1


def closure_part(name: str, kind: int) -> bool:
    """An event of the closure that ``optimizer.step(closure)`` runs before its update: a backward operator, a module's
    forward range, or the range of a forward or backward (Lightning's hook ranges, this tool's phase ranges)."""
    if kind == OP:
        return name.startswith(BACKWARD_OP)
    if kind == MODULE_RANGE:
        return True
    return kind == RANGE and (name in CLOSURE_RANGES or (name.startswith(LIGHTNING_RANGE)
                                                          and name.endswith(("training_step", "backward"))))


def update_starts(c: Collected) -> dict[tuple[Any, int], float]:
    """For each optimizer range ((pid, tid) of its thread, its index there), when its update starts: after the
    closure's forward and backward that ran inside its span, on any thread of the process (on a GPU, autograd runs
    the backward on a thread of its own). A range cut off by the trace's end in the middle of the closure (Lightning
    stops recording when a ``training_step`` ends) then holds no update at all; a range with no closure (a plain
    ``optimizer.step()``) is update from its start."""
    names = list(c.names)
    parts: dict[Any, list[tuple[float, float]]] = {}
    ranges: list[tuple[Any, int, float, float]] = []
    for key, (start_a, end_a, name_a, kind_a, _) in c.cpu.items():
        for i, kind in enumerate(kind_a):
            if kind == OPTIMIZER_RANGE:
                ranges.append((key, i, start_a[i], end_a[i]))
            elif closure_part(names[name_a[i]], kind):
                parts.setdefault(key[0], []).append((start_a[i], end_a[i]))
    for spans in parts.values():
        spans.sort()
    out: dict[tuple[Any, int], float] = {}
    for key, i, start, end in ranges:
        spans = parts.get(key[0], [])
        j = bisect.bisect_left(spans, (start, float("-inf")))
        last = start
        while j < len(spans) and spans[j][0] < end:
            last = max(last, min(spans[j][1], end))
            j += 1
        out[(key, i)] = last
    return out

