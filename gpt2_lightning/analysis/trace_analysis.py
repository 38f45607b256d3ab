"""Where a device's time goes inside the profiled steps of a torch.profiler (Kineto) Chrome trace.

Plain Python over the trace's events (``trace_reader`` streams them, ``trace_events`` keeps a few numbers of each in
compact arrays), so a trace of hundreds of megabytes is read in bounded memory. For each profiled step:

- **GPU busy time**: the union of kernel, memcpy and memset intervals on each device; kernels of overlapping streams
  count once, gaps not at all. Per device, then averaged over the devices that ran anything.
- **Kernel time by category** (``trace_categories``): the plain sum of durations, so streams that overlap make it
  exceed the busy time; a category's ``pct`` is its share of that sum.
- **Top kernels** by summed time, each with its category.
- **Communication** (NCCL) time and how much of it ran while a compute kernel ran on the same device.

A GPU event belongs to the step whose host code launched it: its launch (``cuda_runtime``/``cuda_driver`` event with the
same ``correlation``) falls inside a ``ProfilerStep#N`` range on the host. Without a launch, the GPU-side
``ProfilerStep#N`` annotation that contains it decides; without host ranges, the GPU-side ones do; a trace with no
steps at all is one step. Traces without GPU events (CPU runs) are analysed by CPU operators' self time instead.
"""

from __future__ import annotations

import os
import statistics
from array import array
from typing import Any

from gpt2_lightning.analysis.module_parts import summarize as module_summary
from gpt2_lightning.analysis.categories import CATEGORIES, GPU_EVENT_CATEGORY, cpu_op_category, kernel_category
from gpt2_lightning.analysis.trace_events import OP, OPTIMIZER_RANGE, Collected, collect
from gpt2_lightning.analysis.trace_reader import TraceError
from gpt2_lightning.analysis.trace_steps import BACKWARD_OP, locate, profiled_steps, update_starts

TOP_N = 10  # kernels (or CPU operators) listed by time

__all__ = ["TraceError", "analyze_trace", "TOP_N"]


# ------------------------------------------------------------------------------------------------ intervals
def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by the intervals, overlaps counted once."""
    merged = _merge(intervals)
    return sum(e - s for s, e in merged)


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _intersection_length(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Length covered by both of two merged (sorted, disjoint) interval lists."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


# ------------------------------------------------------------------------------------------------ steps
def _assign_gpu(c: Collected, steps: list[tuple[int, float, float]], source: str) -> array:
    """The step index of every GPU event (-1: outside the profiled steps)."""
    n = len(c.g_start)
    if source.startswith("whole"):
        return array("i", [0]) * n
    index = {num: i for i, (num, _, _) in enumerate(steps)}
    starts = [s for _, s, _ in steps]
    gpu_ranges: dict[int, list[tuple[int, float, float]]] = {}
    for (dev, num), (s, e) in c.gpu_steps.items():
        if num in index:
            gpu_ranges.setdefault(dev, []).append((index[num], s, e))
    gpu_starts = {dev: [s for _, s, _ in sorted(r, key=lambda x: x[1])] for dev, r in gpu_ranges.items()}
    gpu_ranges = {dev: sorted(r, key=lambda x: x[1]) for dev, r in gpu_ranges.items()}
    by_launch = source.startswith("host")
    out = array("i", [-1]) * n
    for i in range(n):
        launched = c.launch_ts.get(c.g_corr[i]) if by_launch else None
        if launched is not None:
            out[i] = locate(starts, steps, launched)
        elif c.g_dev[i] in gpu_ranges:
            j = locate(gpu_starts[c.g_dev[i]], gpu_ranges[c.g_dev[i]], c.g_start[i])
            out[i] = gpu_ranges[c.g_dev[i]][j][0] if j >= 0 else -1
    return out


# ------------------------------------------------------------------------------------------------ analyses
def _shares(totals: dict[str, float], steps: int) -> dict[str, dict[str, float]]:
    summed = sum(totals.values())
    return {cat: {"ms_per_step": totals.get(cat, 0.0) / 1000.0 / steps,
                  "pct": 100.0 * totals.get(cat, 0.0) / summed if summed else 0.0} for cat in CATEGORIES}


def _top(totals: dict[tuple[int, str], list[float]], names: list[str], steps: int, summed: float) -> list[dict]:
    """The TOP_N entries of {(name, category): [time, count]} by time."""
    ranked = sorted(totals.items(), key=lambda kv: kv[1][0], reverse=True)[:TOP_N]
    return [{"name": names[i], "category": cat, "ms_per_step": t / 1000.0 / steps, "calls_per_step": count / steps,
             "pct": 100.0 * t / summed if summed else 0.0} for (i, cat), (t, count) in ranked]


def _analyze_gpu(c: Collected, steps: list[tuple[int, float, float]], source: str) -> dict[str, Any]:
    names = list(c.names)
    category_of = {}
    for i in set(c.g_name):
        category_of[i] = kernel_category(names[i])
    step_of = _assign_gpu(c, steps, source)
    n_steps = len(steps)
    groups: dict[tuple[int, int], list[int]] = {}
    cat_totals: dict[str, float] = {}
    kernel_totals: dict[tuple[int, str], list[float]] = {}
    for i in range(len(c.g_start)):
        if step_of[i] < 0:
            continue
        groups.setdefault((step_of[i], c.g_dev[i]), []).append(i)
        dur = c.g_end[i] - c.g_start[i]
        cat = GPU_EVENT_CATEGORY.get(c.g_kind[i]) or category_of[c.g_name[i]]
        cat_totals[cat] = cat_totals.get(cat, 0.0) + dur
        entry = kernel_totals.setdefault((c.g_name[i], cat), [0.0, 0])
        entry[0] += dur
        entry[1] += 1
    devices = sorted({dev for _, dev in groups})
    busy = {dev: [0.0] * n_steps for dev in devices}
    comm_ms = overlap_ms = 0.0
    for (step, dev), idx in groups.items():
        busy[dev][step] = union_length([(c.g_start[i], c.g_end[i]) for i in idx]) / 1000.0
        comm = [(c.g_start[i], c.g_end[i]) for i in idx if category_of[c.g_name[i]] == "communication"]
        if comm:
            rest = [(c.g_start[i], c.g_end[i]) for i in idx if category_of[c.g_name[i]] != "communication"]
            comm_merged = _merge(comm)
            comm_ms += sum(e - s for s, e in comm_merged) / 1000.0
            overlap_ms += _intersection_length(comm_merged, _merge(rest)) / 1000.0
    by_step = [statistics.fmean(busy[d][s] for d in devices) if devices else 0.0 for s in range(n_steps)]
    summed = sum(cat_totals.values())
    return {
        "kind": "gpu",
        "gpu_busy_ms_per_step": statistics.fmean(by_step),
        "busy_ms_by_step": by_step,
        "kernel_ms_per_step": summed / 1000.0 / n_steps,
        "devices": {str(d): {"busy_ms_per_step": statistics.fmean(busy[d])} for d in devices},
        "categories": _shares(cat_totals, n_steps),
        "top_kernels": _top(kernel_totals, names, n_steps, summed),
        "communication": {"ms_per_step": comm_ms / n_steps, "overlapped_ms_per_step": overlap_ms / n_steps,
                          "overlapped_pct": 100.0 * overlap_ms / comm_ms if comm_ms else None},
        "gpu_events": len(c.g_start),
        "gpu_events_outside_steps": sum(1 for s in step_of if s < 0),
    }


def _analyze_cpu(c: Collected, steps: list[tuple[int, float, float]], source: str) -> dict[str, Any]:
    """CPU operators' self time (own duration less that of the operators they called), by category and step.

    Optimizer work is what runs inside an optimizer's range (``Optimizer.step#AdamW.step``), at any depth of host
    ranges under it (this tool's ``phase/optimizer``, Lightning's ``[pl][profile]`` ranges), outside backward and after
    the last backward operator in that range: a for-loop AdamW runs plain ``aten::mul_``, and Lightning runs forward
    and backward *inside* ``optimizer.step(closure)``, before the update."""
    names = list(c.names)
    starts = [s for _, s, _ in steps]
    whole = source.startswith("whole")
    cat_totals: dict[str, float] = {}
    op_totals: dict[tuple[int, str], list[float]] = {}

    def finish(entry: list) -> None:  # [end, name, child_time, step, in_optimizer, start, in_backward]
        end, name, children, step, in_opt, start, _ = entry
        if step < 0:
            return
        self_time = max(0.0, end - start - children)
        cat = "optimizer" if in_opt else cpu_op_category(names[name])
        cat_totals[cat] = cat_totals.get(cat, 0.0) + self_time
        total = op_totals.setdefault((name, cat), [0.0, 0])
        total[0] += self_time
        total[1] += 1

    updates = update_starts(c)
    for thread, (start_a, end_a, name_a, kind_a, _) in c.cpu.items():
        order = sorted(range(len(start_a)), key=lambda i: (start_a[i], -end_a[i], -kind_a[i]))
        update_from = {i: t for (key, i), t in updates.items() if key == thread}
        ops: list[list] = []
        ranges: list[tuple[float, float | None]] = []  # (end, where its update starts or None) of enclosing ranges
        for i in order:
            t = start_a[i]
            while ops and ops[-1][0] <= t:
                finish(ops.pop())
            while ranges and ranges[-1][0] <= t:
                ranges.pop()
            if kind_a[i] != OP:  # a range inherits the update start of an optimizer range around it, at any depth
                inherited = ranges[-1][1] if ranges else None
                ranges.append((end_a[i], update_from.get(i, start_a[i]) if kind_a[i] == OPTIMIZER_RANGE
                               else inherited))
                continue
            in_backward = bool(ops and ops[-1][6]) or names[name_a[i]].startswith(BACKWARD_OP)
            if ops:
                ops[-1][2] += end_a[i] - t
            step = 0 if whole else locate(starts, steps, t)
            in_opt = bool(ranges) and ranges[-1][1] is not None and t >= ranges[-1][1] and not in_backward
            ops.append([end_a[i], name_a[i], 0.0, step, in_opt, t, in_backward])
        while ops:
            finish(ops.pop())
    summed = sum(cat_totals.values())
    return {
        "kind": "cpu",
        "gpu_busy_ms_per_step": None,
        "cpu_self_ms_per_step": summed / 1000.0 / len(steps),
        "categories": _shares(cat_totals, len(steps)),
        "top_ops": _top(op_totals, names, len(steps), summed),
        "communication": _host_collectives(c, steps, source),
    }


COLLECTIVE_RANGES = ("gloo:", "nccl:", "mpi:", "ucc:")  # a backend's range around one collective, on its own thread


def _host_collectives(c: Collected, steps: list[tuple[int, float, float]], source: str) -> dict[str, Any] | None:
    """How long this process was blocked in collectives per step, on a CPU: the wall time of the backend's ranges
    (``gloo:all_reduce``, ...), which run from the collective's start until every rank has sent its part, so they hold
    the wait for the slowest rank. Overlapping ranges count once; a range belongs to the step it starts in. Their
    operators' self time (the ``communication`` category) is only the host's own work, a fraction of a millisecond.
    None when the trace has no collective (one process)."""
    names = list(c.names)
    starts = [s for _, s, _ in steps]
    whole = source.startswith("whole")
    spans: dict[int, list[tuple[float, float]]] = {}
    count = 0
    for start_a, end_a, name_a, kind_a, _ in c.cpu.values():
        for i in range(len(start_a)):
            if kind_a[i] == OP or not names[name_a[i]].startswith(COLLECTIVE_RANGES):
                continue
            step = 0 if whole else locate(starts, steps, start_a[i])
            if step >= 0:
                spans.setdefault(step, []).append((start_a[i], end_a[i]))
                count += 1
    if not count:
        return None
    per_step = [union_length(spans.get(k, [])) / 1000.0 for k in range(len(steps))]
    return {"ms_per_step": statistics.fmean(per_step), "blocked_ms_by_step": per_step,
            "median_blocked_ms": statistics.median(per_step), "collectives_per_step": count / len(steps),
            "source": "wall time of the collective backend's ranges (gloo:*): blocked, waiting for the other ranks"}


def analyze_trace(path: str | os.PathLike) -> dict[str, Any]:
    """The analysis of one trace (see the module's docstring); ``TraceError`` if it is not a torch.profiler trace."""
    c = collect(path)
    if not c.g_start and not c.cpu:
        raise TraceError(f"{path}: no kernels and no CPU operators in it: not a torch.profiler trace")
    steps, source = profiled_steps(c)
    result = {
        "trace": os.fspath(path),
        "steps": len(steps),
        "step_source": source,
        "profiled_step_ms": (statistics.median((e - s) / 1000.0 for _, s, e in steps)
                             if not source.startswith("whole") else None),
    }
    result.update(_analyze_gpu(c, steps, source) if c.g_start else _analyze_cpu(c, steps, source))
    result["modules"] = module_summary(c, steps)
    return result
