"""Named ranges for the phases of a step, so that profilers show them: ``torch.profiler`` and, optionally, NVTX.

Phases follow one another (they never nest), so one range is open at a time: each mark closes it and opens the next.
A ``record_function`` range is opened only while a torch.profiler is recording (outside one it would cost a
dispatcher call per phase for nothing); NVTX ranges are near free without ``nsys`` but are still opt-in.
"""

from __future__ import annotations

from typing import Any

import torch

RANGE_PREFIX = "phase/"  # e.g. "phase/forward" in a trace


class PhaseRanges:
    def __init__(self, nvtx: bool = False) -> None:
        self.enable_nvtx = nvtx
        self._record: Any = None
        self._nvtx_open = False

    def switch(self, phase: str | None) -> None:
        """Close the open range (if any) and open one for ``phase`` (None: leave none open)."""
        self.close()
        if phase is None:
            return
        name = RANGE_PREFIX + phase
        if torch.autograd._profiler_enabled():
            self._record = torch.profiler.record_function(name)
            self._record.__enter__()
        if self.enable_nvtx:
            torch.cuda.nvtx.range_push(name)
            self._nvtx_open = True

    def close(self) -> None:
        if self._record is not None:
            record, self._record = self._record, None
            record.__exit__(None, None, None)
        if self._nvtx_open:
            torch.cuda.nvtx.range_pop()
            self._nvtx_open = False
