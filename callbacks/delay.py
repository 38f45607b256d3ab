"""A delay of known length planted in a model's forward pass: a slowdown of known size, to check that a comparison or
a regression gate tells it apart from noise (the profiler's ``--add-delay-ms``, ``scripts/noise_check.py``).

The delay is a forward pre-hook on the model: it sleeps at the start of every forward call, so it lands inside
whatever times the forward pass and the step, as a slower layer would, and no timing code knows about it. It is a
host-side sleep: on a CPU every forward pass takes that much longer; on a GPU the device waits for it only when no
queued work hides it. The sleep's own length is measured (a loaded machine oversleeps), so a check can say what was
really added.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from lightning.pytorch.callbacks import Callback


class PlantedDelay(Callback):
    """Sleeps ``delay_ms`` at the start of every forward call of ``pl_module.<attribute>`` (the whole LightningModule
    when it has no such attribute) during fit and predict; with ``rank`` set, in that process only (a straggler of
    known size among several processes)."""

    def __init__(self, delay_ms: float, attribute: str = "model", rank: int | None = None) -> None:
        if delay_ms <= 0:
            raise ValueError(f"delay_ms must be positive, got {delay_ms}")
        self.delay_s, self.attribute, self.rank = delay_ms / 1000, attribute, rank
        self.slept_ms: list[float] = []
        self._handle: Any = None

    def _sleep(self, module: Any, args: Any) -> None:
        start = time.perf_counter()
        time.sleep(self.delay_s)
        self.slept_ms.append((time.perf_counter() - start) * 1000)

    def _attach(self, trainer: Any, pl_module: Any) -> None:
        if self.rank is not None and trainer.global_rank != self.rank:
            return
        if self._handle is None:
            target = getattr(pl_module, self.attribute, None) or pl_module
            self._handle = target.register_forward_pre_hook(self._sleep)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._attach(trainer, pl_module)

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self._attach(trainer, pl_module)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def summary(self) -> dict[str, Any]:
        """What was asked and what the sleeps really took (median over every forward call)."""
        return {"asked_ms": self.delay_s * 1000, "rank": self.rank, "calls": len(self.slept_ms),
                "median_slept_ms": statistics.median(self.slept_ms) if self.slept_ms else None}
