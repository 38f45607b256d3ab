"""Which threads of a trace run the model, and when a collective is in flight: what the per-module breakdown
(``module_breakdown``) needs to build a step from the model's threads only, with several processes too.

The threads that run the model are the steps' own thread and any thread with module ranges or backward operators.
The others work beside the step: gloo runs each collective on a thread of its own, whose ``gloo:all_reduce`` range
lasts as long as the rank waits for the others. Plain Python, no torch.
"""

from __future__ import annotations

import bisect
from typing import Any

from gpt2_lightning.analysis.categories import CPU_RULES
from gpt2_lightning.analysis.trace_events import MODULE_RANGE, OP, Collected
from gpt2_lightning.analysis.trace_steps import BACKWARD_OP


COLLECTIVE_WORDS = next(words for category, words in CPU_RULES if category == "communication")


def runs_the_model(key: Any, arrays: tuple, names: list[str], step_thread: Any) -> bool:
    """The steps' thread, or a thread with a module range or a backward operator."""
    if key == step_thread:
        return True
    return any(k == MODULE_RANGE or (k == OP and names[n].startswith(BACKWARD_OP))
               for k, n in zip(arrays[3], arrays[2]))


def collective_ids(names: list[str]) -> set[int]:
    """The name ids of collectives: gloo's, NCCL's, c10d's operators and ranges."""
    return {i for i, name in enumerate(names) if any(w in name.lower() for w in COLLECTIVE_WORDS)}


def collective_thread(arrays: tuple, collective: set[int]) -> bool:
    """A thread whose events are mostly collectives (by time)."""
    start_a, end_a, name_a = arrays[0], arrays[1], arrays[2]
    total = sum(e - s for s, e in zip(start_a, end_a))
    comm = sum(e - s for s, e, n in zip(start_a, end_a, name_a) if n in collective)
    return total > 0 and comm >= 0.5 * total


def busy_in_steps(arrays: tuple, steps: list[tuple[int, float, float]]) -> float:
    """A thread's time inside its outermost events, within the profiled steps (us, all steps)."""
    spans = sorted(zip(arrays[0], arrays[1]))
    total, reach = 0.0, float("-inf")
    for s, e in spans:
        s = max(s, reach)
        if e > s:
            total += sum(us for _, us in steps_clip(steps, s, e))
            reach = e
    return total


def merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        elif e > s:
            out.append((s, e))
    return out


def collective_spans(c: Collected, collective: set[int], model: set[Any]) -> dict[Any, list[tuple[float, float]]]:
    """Per process: when a collective was in flight (merged spans): the events of its collectives' threads, and the
    collective operators of the threads that run the model."""
    spans: dict[Any, list[tuple[float, float]]] = {}
    for key, arrays in c.cpu.items():
        whole = key not in model and collective_thread(arrays, collective)
        for s, e, n in zip(arrays[0], arrays[1], arrays[2]):
            if whole or (key in model and n in collective):
                spans.setdefault(key[0], []).append((s, e))
    return {pid: merged(v) for pid, v in spans.items()}


def split_in_flight(a: float, b: float, spans: list[tuple[float, float]]) -> list[tuple[float, float, bool]]:
    """[a, b) cut into pieces (start, end, inside one of the merged ``spans``)."""
    out, t = [], a
    j = max(0, bisect.bisect_right(spans, (a, float("inf"))) - 1)
    while t < b and j < len(spans):
        s, e = spans[j]
        if e <= t:
            j += 1
            continue
        if s >= b:
            break
        if s > t:
            out.append((t, s, False))
            t = s
        end = min(e, b)
        out.append((t, end, True))
        t = end
        j += 1
    if t < b:
        out.append((t, b, False))
    return out


def steps_clip(steps: list[tuple[int, float, float]], a: float, b: float) -> list[tuple[int, float]]:
    """(step index, length) of the parts of [a, b) inside the profiled steps."""
    out = []
    for j, (_, s, e) in enumerate(steps):
        lo, hi = max(a, s), min(b, e)
        if hi > lo:
            out.append((j, hi - lo))
    return out
