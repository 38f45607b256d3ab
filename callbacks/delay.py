"""A delay of known length planted in a model's forward pass: a slowdown of known size, to check that a comparison or
a regression gate tells it apart from noise (the profiler's ``--add-delay-ms``, ``scripts/noise_check.py``).

The delay is a forward pre-hook on the model: it sleeps at the start of every forward call, so it lands inside
whatever times the forward pass and the step, as a slower layer would, and no timing code knows about it. It is a
host-side sleep: on a CPU every forward pass takes that much longer; on a GPU the device waits for it only when no
queued work hides it. The sleep's own length is measured (a loaded machine oversleeps), so a check can say what was
really added. With ``rank`` set among several processes, the delayed rank's sleeps are gathered onto every rank when
the stage ends (one collective, never inside a step), so rank 0's ``summary()`` reports the rank that slept.
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
        self.slept_ms: list[float] = []  # this process's sleeps
        self._handle: Any = None
        self._own_rank: int | None = None  # this process's global rank, once a stage has started
        self._reported: tuple[int, list[float]] | None = None  # (rank, its sleeps) once gathered at a stage's end

    def _sleep(self, module: Any, args: Any) -> None:
        start = time.perf_counter()
        time.sleep(self.delay_s)
        self.slept_ms.append((time.perf_counter() - start) * 1000)

    def _attach(self, trainer: Any, pl_module: Any) -> None:
        self._own_rank, self._reported = trainer.global_rank, None
        if self.rank is not None and trainer.global_rank != self.rank:
            return
        if self._handle is None:
            target = getattr(pl_module, self.attribute, None) or pl_module
            self._handle = target.register_forward_pre_hook(self._sleep)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._attach(trainer, pl_module)

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self._attach(trainer, pl_module)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._gather(trainer)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self._gather(trainer)

    def _gather(self, trainer: Any) -> None:
        """The delayed rank's sleeps, on every rank, once the stage has ended: one collective, never inside a step."""
        self._reported = (trainer.global_rank, list(self.slept_ms))
        if self.rank is None or trainer.world_size <= 1:
            return
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            return
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, (trainer.global_rank, self.slept_ms))
        self._reported = next((g for g in gathered if g[0] == self.rank), self._reported)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def summary(self) -> dict[str, Any]:
        """What was asked (``rank``: the delayed rank, None for every one) and what the sleeps really took: ``calls``
        and ``median_slept_ms`` over every forward call of ``slept_on_rank``, the delayed rank when one was named and
        the stage ended (else this process)."""
        rank, slept = self._reported if self._reported is not None else (self._own_rank, self.slept_ms)
        return {"asked_ms": self.delay_s * 1000, "rank": self.rank, "slept_on_rank": rank, "calls": len(slept),
                "median_slept_ms": statistics.median(slept) if slept else None}
