"""The one device-aware timer of the project (the statistics every timing is reported with: ``callbacks.stats``).

On CUDA a point in time is a ``torch.cuda.Event`` recorded on the current stream: recording costs microseconds and
never blocks the host, and the elapsed time between two events is what the GPU really spent, however far the host
has run ahead. Events are resolved only when a measurement window ends (``DeviceTimer.resolve``), which is the single
place in the project that synchronises. On the CPU every op is synchronous and ``time.perf_counter`` is exact.

A host clock read around GPU work without synchronising measures only how long the launches took: that is the
"naive" figure, kept beside the real one to show the trap (``DeviceTimer.host_now``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Union

import torch

from .stats import STATS_KEYS, percentile, summarize  # noqa: F401 - where they were first

Mark = Union[float, "torch.cuda.Event"]


class DeviceTimer:
    """Marks points in time on a device's own clock and turns pairs of marks into milliseconds."""

    # how often this process's measuring tools made the host wait for a device, or stopped the host for work of their
    # own (an energy window's ends, a memory snapshot's dump): a device that has caught up after one of these was
    # drained by the tool, not by a slow host (PhaseTimingCallback then leaves that step's caught-up flag unknown)
    tool_waits = 0

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.uses_cuda = self.device.type == "cuda"

    def mark(self) -> Mark:
        """Now, on the device's clock. Never blocks."""
        if self.uses_cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()  # on the current stream, behind the work already queued there
            return event
        return time.perf_counter()

    @staticmethod
    def host_now() -> float:
        """The host's clock, without waiting for the device: what a naive timer reads."""
        return time.perf_counter()

    def done(self, mark: Mark) -> bool:
        """Has the device reached this mark? Never blocks (a CPU mark is always done)."""
        return not self.uses_cuda or mark.query()

    def wait(self) -> None:
        """Block until the device has finished all queued work: the one synchronisation of the project.

        Callers use it only where a measurement window ends (a stage's end, an energy window's ends), never per step.
        """
        if self.uses_cuda:
            DeviceTimer.note_tool_wait()
            torch.cuda.synchronize(self.device)

    @staticmethod
    def note_tool_wait() -> None:
        """Say that the tool held the host up for its own work (``tool_waits``): the device may catch up meanwhile."""
        DeviceTimer.tool_waits += 1

    def resolve(self, intervals: Iterable[tuple[Mark, Mark]], wait: bool = True) -> list[float]:
        """Milliseconds between each (start, end) pair.

        On CUDA, ``wait=True`` waits for the device once, for all of them; ``wait=False`` is for marks already
        ``done()`` and never blocks.
        """
        intervals = list(intervals)
        if not self.uses_cuda:
            return [(end - start) * 1000.0 for start, end in intervals]
        if intervals and wait:
            # elapsed_time needs both events completed. This runs when a stage ends, never per step; while steps
            # run, only marks the GPU has already passed are resolved.
            self.wait()
        return [start.elapsed_time(end) for start, end in intervals]

    def startup_ms(self) -> float:
        """Wall time to bring the device up in this process (CUDA context, allocator, first kernel); 0 on the CPU.

        Only meaningful as the first CUDA call of the process: later calls measure an already warm device.
        """
        if not self.uses_cuda:
            return 0.0
        start = time.perf_counter()
        torch.cuda.init()
        x = torch.ones(1, device=self.device)
        (x + x).sum()
        torch.cuda.synchronize(self.device)  # start-up is host-side work; wait for it to really finish
        return (time.perf_counter() - start) * 1000.0
