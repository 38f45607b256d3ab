"""Which module of the model took the time, in forward and in backward, from a trace's module ranges.

A trace made with module ranges (``callbacks.module_ranges``, or Lightning's ``record_module_names``) holds a host
range ``[pl][module]<module>.<Class>: <qualified name>`` around every submodule's forward. Each host thread's timeline
is walked once with a stack of its open events; at any moment the stack says who owns the thread:

- inside a module range inside a backward operator: that module's **recompute** (activation checkpointing reruns a
  module's forward in backward; the range is the module's own, not that of the caller of ``checkpoint()``);
- inside a backward operator (``autograd::engine::evaluate_function: XBackward0``, the innermost one: reentrant
  checkpointing runs a backward inside a backward): the module whose forward (or recompute) created that autograd
  node. The link is autograd's **sequence number**: the forward operator that made the node and the backward
  operator that runs it carry the same one (per process);
- else inside an optimizer's update (``Optimizer.step#...`` after the closure, ``trace_steps``): the optimizer;
- else inside a module range: that module (the innermost one) in forward, with the outermost operator under it
  (which tells a model's loss from the rest of its own code);
- else: outside any module (data, Lightning's hooks, zero_grad, autograd's own bookkeeping).

**Time** is what the device spent: on a GPU trace each kernel's, memcpy's and memset's duration goes to the owner
of the host thread that launched it, at the moment of the launch; on a CPU trace (no GPU events) the wall time of
each thread that runs the model goes to its owner, moment by moment. Either way every microsecond of the profiled
steps lands in exactly one row (a module's forward, backward or recompute, the optimizer, or outside any module), so
the rows add up to the kernel time (GPU) or to the profiled steps' host time (CPU).

The threads that run the model are the steps' own thread and any thread with module ranges or backward operators
(autograd's device threads). Other threads work beside the step, not inside it: with several processes, the
collectives' threads (gloo's ``gloo:all_reduce`` ranges run for as long as a rank waits for the others). Their time is
reported beside the rows (``beside``: collectives' threads, other threads), never added to the step a second time.
A model thread's time outside any module while a collective is in flight in its process (a gloo range on another
thread, a c10d operator on its own) is **waiting for collectives**: with several processes, a rank blocked until the
others arrive. Plain Python, no torch.
"""

from __future__ import annotations

import bisect
from array import array
from typing import Any

from gpt2_lightning.analysis.trace_events import MODULE_PREFIX, MODULE_RANGE, OP, OPTIMIZER_RANGE, Collected
from gpt2_lightning.analysis.module_threads import (
    busy_in_steps,
    collective_ids,
    collective_spans,
    collective_thread,
    runs_the_model,
    split_in_flight,
    steps_clip,
)
from gpt2_lightning.analysis.trace_steps import BACKWARD_OP, locate, update_starts

OUTSIDE, FORWARD, BACKWARD, OPTIMIZER, RECOMPUTE, WAITING = 0, 1, 2, 3, 4, 5
UNAVAILABLE = ("the trace holds no module ranges ([pl][module]...): profile with this tool's module ranges "
               "(callbacks.module_ranges.ModuleRangesCallback, on by default for --profiler pytorch and the GPU "
               "diagnosis, off with --compile) or Lightning's PyTorchProfiler(record_module_names=True)")


def parse_module_range(name: str) -> tuple[str, str]:
    """``[pl][module]torch.nn.modules.linear.Linear: model.lm_head`` -> (``Linear``, ``model.lm_head``)."""
    qualified_cls, _, path = name[len(MODULE_PREFIX):].partition(": ")
    return qualified_cls.rsplit(".", 1)[-1], path


class _Owners:
    """Owner ids: (kind, module range name id or -1, operator name id or -1, autograd sequence number or -1, process
    index or -1); sequence numbers count per process."""

    def __init__(self) -> None:
        self.ids: dict[tuple[int, ...], int] = {}
        self.keys: list[tuple[int, ...]] = []

    def id(self, key: tuple[int, ...]) -> int:
        i = self.ids.get(key)
        if i is None:
            i = self.ids[key] = len(self.keys)
            self.keys.append(key)
        return i


def _thread_segments(arrays: tuple, names: list[str], owners: _Owners, pid: int,
                     seq_owner: dict[tuple[int, int], tuple[int, int]],
                     update_from: dict[int, float]) -> tuple[array, array, array, array]:
    """The thread's timeline as consecutive segments (start, end, owner id, 1 when inside an operator), and, into
    ``seq_owner``, the module and operator of every forward operator that carries an autograd sequence number."""
    start_a, end_a, name_a, kind_a, seq_a = arrays
    order = sorted(range(len(start_a)), key=lambda i: (start_a[i], -end_a[i], -kind_a[i]))
    seg_start, seg_end, seg_owner, seg_op = array("d"), array("d"), array("i"), array("b")
    # stack entries: (end, kind, module, op, seq, update start, operators open); context is inherited from below
    stack: list[tuple[float, int, int, int, int, float | None, int]] = []
    outside = owners.id((OUTSIDE, -1, -1, -1, -1))

    def owner_at(t: float) -> int:
        if not stack:
            return outside
        _, kind, module, op, seq, update, _ = stack[-1]
        if kind == BACKWARD:
            return owners.id((BACKWARD, -1, -1, seq, pid))
        if kind == RECOMPUTE:
            return owners.id((RECOMPUTE, module, op, -1, -1))
        if module >= 0:  # a module's forward, also inside optimizer.step(closure)
            return owners.id((FORWARD, module, op, -1, -1))
        return owners.id((OPTIMIZER, -1, -1, -1, -1)) if update is not None and t >= update else outside

    def emit(a: float, b: float) -> None:  # [a, b) belongs to the owner of the stack as it is now
        while a < b:
            update = stack[-1][5] if stack else None
            cut = update if update is not None and a < update < b else b  # the update starts inside [a, b)
            in_op = 1 if stack and stack[-1][6] else 0
            if seg_owner and seg_end[-1] == a and seg_owner[-1] == owner_at(a) and seg_op[-1] == in_op:
                seg_end[-1] = cut
            else:
                seg_start.append(a), seg_end.append(cut), seg_owner.append(owner_at(a)), seg_op.append(in_op)
            a = cut

    t = start_a[order[0]] if order else 0.0
    for i in order:
        s, e = start_a[i], end_a[i]
        while stack and stack[-1][0] <= s:  # close what ended before this event starts
            emit(t, stack[-1][0])
            t = max(t, stack[-1][0])
            stack.pop()
        emit(t, s)
        t = max(t, s)
        kind, module, op, seq, update, open_ops = (stack[-1][1:] if stack else (OUTSIDE, -1, -1, -1, None, 0))
        k, name = kind_a[i], names[name_a[i]]
        if kind in (BACKWARD, RECOMPUTE):
            if k == OP and name.startswith(BACKWARD_OP):  # a backward inside a backward (reentrant checkpointing)
                kind, module, op, seq = BACKWARD, -1, -1, seq_a[i]
            elif k == MODULE_RANGE:  # a forward rerun in backward: activation checkpointing's recompute
                kind, module, op = RECOMPUTE, name_a[i], -1
            elif k == OP and kind == RECOMPUTE and op < 0:
                op = name_a[i]
        else:
            if k == OP and name.startswith(BACKWARD_OP):
                kind, seq = BACKWARD, seq_a[i]
            elif k == MODULE_RANGE:
                kind, module, op = FORWARD, name_a[i], -1
            elif k == OPTIMIZER_RANGE:
                update = update_from.get(i, s)
            elif k == OP and op < 0 and module >= 0:
                op = name_a[i]  # the outermost operator under the innermost module
        if k == OP and kind != BACKWARD and seq_a[i] >= 0:  # outside any module too: its backward is outside
            if kind == RECOMPUTE:  # the recompute's own nodes (reentrant: their backward runs next)
                seq_owner.setdefault((pid, seq_a[i]), (module, op))
            else:
                seq_owner[(pid, seq_a[i])] = (module, op)
        stack.append((e, kind, module, op, seq, update, open_ops + (k == OP)))
    while stack:
        emit(t, stack[-1][0])
        t = max(t, stack[-1][0])
        stack.pop()
    return seg_start, seg_end, seg_owner, seg_op


def attribute(c: Collected, steps: list[tuple[int, float, float]]) -> dict[str, Any] | None:
    """Time per owner over the profiled steps, in us: {"rows": {(kind, module path, class, op): us}, "steps",
    "basis", "total_us", "unlinked_backward_us", "beside"}; None when the trace has no module ranges. ``beside``: on a
    CPU trace, the time of threads that do not run the model (collectives' threads, others), in us over all steps.
    ``kind`` is one of OUTSIDE, FORWARD, BACKWARD, RECOMPUTE, OPTIMIZER, WAITING (for collectives); a backward whose
    forward is not in the trace counts as OUTSIDE. On a CPU trace also ``op_us``: per row, the part of its time inside
    operators (the rest is Python between them, a sleep, a wait), what the profiler slows (``phase_scaling``); None
    on a GPU."""
    if not any(MODULE_RANGE in arrays[3] for arrays in c.cpu.values()):
        return None
    names = list(c.names)
    owners = _Owners()
    seq_owner: dict[tuple[int, int], tuple[int, int]] = {}
    pids = {pid: i for i, pid in enumerate(dict.fromkeys(key[0] for key in c.cpu))}
    updates = update_starts(c)
    model = {key for key, arrays in c.cpu.items() if runs_the_model(key, arrays, names, c.step_thread)}
    segments = {key: _thread_segments(arrays, names, owners, pids[key[0]], seq_owner,
                                      {i: t for (thread, i), t in updates.items() if thread == key})
                for key, arrays in c.cpu.items() if key in model}
    beside = {"collective_threads_us": 0.0, "other_threads_us": 0.0, "threads": 0}
    collective = collective_ids(names)
    if not c.g_start:  # CPU: the other threads' time, beside the step (a GPU trace counts kernels, whoever waits)
        for key, arrays in c.cpu.items():
            if key not in model:
                us = busy_in_steps(arrays, steps)
                if us > 0:
                    kind = "collective_threads_us" if collective_thread(arrays, collective) else "other_threads_us"
                    beside[kind] += us
                    beside["threads"] += 1
    n_steps = len(steps)
    per_owner: dict[int, list[float]] = {}
    op_us: dict[int, float] = {}  # CPU: the part of an owner's time inside operators

    def add(owner: int, step: int, us: float) -> None:
        per_owner.setdefault(owner, [0.0] * n_steps)[step] += us

    if c.g_start:  # GPU: each device event's duration, to the owner of the thread that launched it
        starts = [s for _, s, _ in steps]
        seg_starts = {key: list(seg[0]) for key, seg in segments.items()}
        basis = "kernel time (each kernel to the module whose host code launched it)"
        for i in range(len(c.g_start)):
            corr = c.g_corr[i]
            t, thread = c.launch_ts.get(corr), c.launch_thread.get(corr)
            step = locate(starts, steps, t) if t is not None else -1
            if step < 0:
                continue
            seg = segments.get(thread)
            j = bisect.bisect_right(seg_starts[thread], t) - 1 if seg else -1
            owner = seg[2][j] if j >= 0 and t < seg[1][j] else owners.id((OUTSIDE, -1, -1, -1, -1))
            add(owner, step, c.g_end[i] - c.g_start[i])
    else:  # CPU: each thread's wall time, to whoever owned it at that moment
        basis = "host time (each moment of the profiled steps to the module the thread was running)"
        outside = owners.id((OUTSIDE, -1, -1, -1, -1))
        waiting = owners.id((WAITING, -1, -1, -1, -1))
        collectives = collective_spans(c, collective, model)
        for thread, (seg_start, seg_end, seg_owner, seg_op) in segments.items():
            timeline = list(zip(seg_start, seg_end, seg_owner, seg_op))
            if thread == c.step_thread and steps:  # the steps' thread before its first event and after its last one
                first = timeline[0][0] if timeline else steps[-1][2]
                last = timeline[-1][1] if timeline else steps[-1][2]
                timeline = [(steps[0][1], first, outside, 0)] + timeline + [(last, steps[-1][2], outside, 0)]
            spans = collectives.get(thread[0], [])
            for a, b, owner, in_op in timeline:
                pieces = split_in_flight(a, b, spans) if owner == outside and spans else [(a, b, False)]
                for x, y, in_flight in pieces:
                    for step, us in steps_clip(steps, x, y):
                        add(waiting if in_flight else owner, step, us)
                        if in_op:
                            key = waiting if in_flight else owner
                            op_us[key] = op_us.get(key, 0.0) + us
    rows: dict[tuple[int, str, str, str], float] = {}
    rows_op: dict[tuple[int, str, str, str], float] = {}
    unlinked = 0.0
    for owner, per_step in per_owner.items():
        kind, module, op, seq, pid = owners.keys[owner]
        if kind == BACKWARD:
            linked = seq_owner.get((pid, seq))
            if linked is None and seq >= 0:  # its forward ran before the trace began
                unlinked += sum(per_step)
            module, op = linked or (-1, -1)  # no sequence number: AccumulateGrad, gradients into .grad
            if module < 0:
                kind = OUTSIDE
        cls, path = parse_module_range(names[module]) if module >= 0 else ("", "")
        key = (kind, path, cls, names[op] if op >= 0 else "")
        rows[key] = rows.get(key, 0.0) + sum(per_step)
        rows_op[key] = rows_op.get(key, 0.0) + op_us.get(owner, 0.0)
    return {"rows": rows, "steps": n_steps, "basis": basis,
            "total_us": sum(rows.values()), "unlinked_backward_us": unlinked, "beside": beside,
            "op_us": rows_op if not c.g_start else None}

