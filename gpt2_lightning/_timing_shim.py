"""TEMPORARY SHIM: delete this file (and its import in experiments.py) once main's PhaseTimingCallback takes
``counted_steps``.

The timing callback is being rewritten on main: records beyond ``warmup_steps + counted_steps`` become
``StepRecord.extra`` and stay out of summaries, logs and rates. The energy window runs such extra steps, so until
that lands this subclass gives the same outcome with the current callback: a step past the counted ones is treated
like a warm-up step (timed, never counted). It retires itself: with the new callback it is the callback.
"""

from __future__ import annotations

import inspect
from typing import Any

from callbacks.phase_timing import PhaseTimingCallback as _Current

if "counted_steps" in inspect.signature(_Current.__init__).parameters:
    PhaseTimingCallback = _Current
else:

    class PhaseTimingCallback(_Current):  # type: ignore[no-redef]
        def __init__(self, *args: Any, counted_steps: int | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.counted_steps = counted_steps

        def _begin(self, stage: str, batch: Any, data_start: Any = None, naive: bool = False) -> None:
            super()._begin(stage, batch, data_start=data_start, naive=naive)
            if self.counted_steps is not None and self._current.step >= self.warmup_steps + self.counted_steps:
                self._current.warmup = True  # an extra step: never counted
