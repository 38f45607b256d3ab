"""What the trace analysis keeps of a trace's events: a few numbers per event, in compact arrays.

Every event of a trace passes through ``Collected.add`` once (``trace_reader`` streams them) and is dropped after it,
so memory grows with the number of GPU events and CPU operators kept (a few dozen bytes each), not with the file.
Times are kept relative to the first timestamp seen: absolute Kineto timestamps (~5e12 us) in a double resolve only
to about 1 ns, and sums of thousands of them would drift.
"""

from __future__ import annotations

import os
import re
from array import array
from typing import Any

from gpt2_lightning.analysis.categories import OPTIMIZER_RANGES
from gpt2_lightning.analysis.trace_reader import iter_events

GPU_KINDS = {"kernel": "kernel", "gpu_memcpy": "memcpy", "gpu_memset": "memset", "memcpy": "memcpy",
             "memset": "memset"}  # lower-cased "cat" of GPU activity (older Kineto: Kernel, Memcpy, Memset)
LAUNCH_CATS = {"cuda_runtime", "cuda_driver", "runtime", "driver"}
STEP_NAME = re.compile(r"ProfilerStep#(\d+)$")
LIGHTNING_RANGE = "[pl][profile]"  # Lightning's profiler names its hook ranges so
MODULE_PREFIX = "[pl][module]"  # a module's forward: "[pl][module]<module>.<Class>: <qualified name>"
# a CPU operator; a host range (record_function); an optimizer's range; a module's forward range
OP, RANGE, OPTIMIZER_RANGE, MODULE_RANGE = 1, 0, 2, 3


class Collected:
    """What the analysis needs from the events, kept as numbers in arrays (an event dict is dropped once read)."""

    def __init__(self) -> None:
        self.base: float | None = None  # first timestamp seen; times are kept relative to it (float precision)
        self.names: dict[str, int] = {}
        self.events = 0
        # GPU activity, one entry per kernel / memcpy / memset
        self.g_start, self.g_end = array("d"), array("d")
        self.g_dev, self.g_name, self.g_corr = array("i"), array("i"), array("q")
        self.g_kind: list[str] = []  # interned strings: "kernel", "memcpy", "memset"
        self.launch_ts: dict[int, float] = {}  # correlation id -> host time of its launch
        self.launch_thread: dict[int, Any] = {}  # correlation id -> (pid, tid) of the host thread that launched it
        self.host_steps: dict[int, tuple[float, float]] = {}  # step number -> (start, end)
        self.gpu_steps: dict[tuple[int, int], tuple[float, float]] = {}  # (device, step number) -> (start, end)
        # CPU operators and host ranges per (pid, tid): (start, end, name, kind, autograd sequence number or -1)
        self.cpu: dict[Any, tuple[array, array, array, array, array]] = {}
        self.step_thread: Any = None  # (pid, tid) of the host thread that ran the ProfilerStep ranges
        self.lightning_training_steps = False  # Lightning's PyTorchProfiler stepped the trace at training_step's end

    def name_id(self, name: str) -> int:
        i = self.names.get(name)
        if i is None:
            i = self.names[name] = len(self.names)
        return i

    def add(self, e: dict[str, Any]) -> None:
        """Keep what the analysis needs of one event. Called for every event of the trace: kept lean."""
        self.events += 1
        if e.get("ph") != "X":
            return  # flows, counters, metadata, instants
        try:
            ts, dur = float(e["ts"]), float(e["dur"])
        except (KeyError, TypeError, ValueError):
            return
        if self.base is None:
            self.base = ts
        start = ts - self.base
        end = start + max(dur, 0.0)
        cat = str(e.get("cat", "")).lower()
        name = e.get("name", "")
        name = name if isinstance(name, str) else str(name)
        kind = GPU_KINDS.get(cat)
        if kind is not None:
            args = e.get("args")
            args = args if isinstance(args, dict) else {}
            device, corr = args.get("device", e.get("pid")), args.get("correlation")
            self.g_start.append(start)
            self.g_end.append(end)
            self.g_dev.append(device if isinstance(device, int) else 0)
            self.g_name.append(self.name_id(name))
            self.g_corr.append(corr if isinstance(corr, int) else -1)
            self.g_kind.append(kind)
        elif cat in LAUNCH_CATS:
            args = e.get("args")
            corr = args.get("correlation") if isinstance(args, dict) else None
            if isinstance(corr, int):
                self.launch_ts[corr] = start
                self.launch_thread[corr] = (e.get("pid"), e.get("tid"))
        elif name.startswith("ProfilerStep#"):
            step = STEP_NAME.match(name)
            if step is None:
                return
            if cat == "gpu_user_annotation":
                pid = e.get("pid")
                self._widest(self.gpu_steps, (pid if isinstance(pid, int) else 0, int(step.group(1))), start, end)
            else:
                self._widest(self.host_steps, int(step.group(1)), start, end)
                self.step_thread = (e.get("pid"), e.get("tid"))
        elif cat == "cpu_op" or cat == "user_annotation":
            key = (e.get("pid"), e.get("tid"))
            arrays = self.cpu.get(key)
            if arrays is None:
                arrays = self.cpu[key] = (array("d"), array("d"), array("i"), array("b"), array("q"))
            arrays[0].append(start)
            arrays[1].append(end)
            arrays[2].append(self.name_id(name))
            arrays[3].append(OP if cat == "cpu_op" else OPTIMIZER_RANGE if name.startswith(OPTIMIZER_RANGES)
                             else MODULE_RANGE if name.startswith(MODULE_PREFIX) else RANGE)
            args = e.get("args")
            seq = args.get("Sequence number") if cat == "cpu_op" and isinstance(args, dict) else None
            arrays[4].append(seq if isinstance(seq, int) else -1)
            if cat == "user_annotation" and name.startswith(LIGHTNING_RANGE) and name.endswith("training_step"):
                self.lightning_training_steps = True

    @staticmethod
    def _widest(table: dict, key: Any, start: float, end: float) -> None:
        old = table.get(key)
        if old is None or end - start > old[1] - old[0]:
            table[key] = (start, end)


def collect(path: str | os.PathLike) -> Collected:
    """Read the whole trace once, keeping what the analysis needs."""
    c = Collected()
    for event in iter_events(path):
        c.add(event)
    return c
