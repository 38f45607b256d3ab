"""PhaseTimingCallback: where each millisecond of a Lightning run goes, for any LightningModule.

A training step is split at Lightning's own hooks (automatic optimisation):

    on_train_batch_end (previous) ─ data ─ on_train_batch_start ─ forward ─ on_before_backward ─ backward ─
    on_after_backward ─ (closure returns) ─ on_before_optimizer_step ─ optimizer ─ on_train_batch_end

``forward`` is ``training_step`` (and ``zero_grad``); ``optimizer`` is the update itself with gradient clipping, not
Lightning's ``optimizer_step`` (which wraps the closure that runs forward and backward); ``data`` is waiting for the
batch and moving it to the device; ``step`` is the whole iteration, previous batch end to this batch end, so
``data + forward + backward + optimizer`` falls short of it only by Lightning's own bookkeeping.
Inference batches (predict / validate / test) are timed as ``forward``, with the naive host-clock figure beside it.
``init`` runs from the Trainer's ``setup`` hook to the start of the stage (``on_fit_start``, ``on_predict_start``, ...),
with ``init_model`` (``configure_model``) and ``init_optimizer`` (``configure_optimizers``) inside it.

Marks are device events (see ``callbacks.timing``). At each batch end, the steps the GPU has already finished are
resolved and logged (a non-blocking query); the host waits for the device only once, when a stage ends. So timing
never holds the host back while steps run, and the logging work is spread thinly over the steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from callbacks.timing import DeviceTimer, Mark, summarize

TRAIN_PHASES = ("data", "forward", "backward", "optimizer", "step")
INFERENCE_PHASES = ("forward",)
INIT_PHASES = ("init", "init_model", "init_optimizer")
# which phase a mark opens; the phase runs until the next mark of the same batch
_OPENS = {"batch_start": "forward", "backward_start": "backward", "backward_end": None, "optimizer_start": "optimizer"}


@dataclass
class StepRecord:
    """One timed batch, resolved to milliseconds."""

    stage: str  # "train", "validate", "test" or "predict"
    step: int  # index of the batch within this stage of this run, warm-up included
    warmup: bool
    phases: dict[str, float]
    batch_shape: tuple[int, ...] | None = None  # shape of the batch's first tensor, e.g. (B, T)
    naive_ms: float | None = None  # host clock around the batch, not waiting for the device (inference only)


@dataclass
class _Pending:
    stage: str
    step: int
    warmup: bool
    batch_shape: tuple[int, ...] | None
    data_start: Mark | None
    marks: list[tuple[str, Mark]] = field(default_factory=list)
    naive_start: float | None = None
    naive_ms: float | None = None


def _first_tensor_shape(batch: Any) -> tuple[int, ...] | None:
    if isinstance(batch, torch.Tensor):
        return tuple(batch.shape)
    if isinstance(batch, (list, tuple)):
        items = batch
    elif isinstance(batch, dict):
        items = batch.values()
    else:
        return None
    for item in items:
        shape = _first_tensor_shape(item)
        if shape is not None:
            return shape
    return None


class PhaseTimingCallback(Callback):
    """Times init, data, forward, backward, optimizer and whole steps; logs ``time/<phase>_ms`` per step.

    Args:
        warmup_steps: batches at the start of each stage that are timed but never counted (caches, autotuning,
            compilation).
        warmup_inits: Trainer runs whose init is not counted; set it when one callback times several Trainers and the
            first includes one-off device start-up.
        resolve_every: finished steps to collect before resolving and logging them (never waits for the device).
        log_every_step: write each counted step's times to the Trainer's loggers.
    """

    def __init__(
        self, warmup_steps: int = 2, warmup_inits: int = 0, resolve_every: int = 1, log_every_step: bool = True
    ) -> None:
        if warmup_steps < 0 or warmup_inits < 0 or resolve_every < 1:
            raise ValueError("warmup_steps and warmup_inits must be >= 0 and resolve_every >= 1")
        self.warmup_steps = warmup_steps
        self.warmup_inits = warmup_inits
        self.resolve_every = resolve_every
        self.log_every_step = log_every_step
        self.records: list[StepRecord] = []
        self.init_records: list[dict[str, float]] = []  # every init timed, warm-up included, in order
        self.rank_summaries: dict[str, list[dict[str, Any]]] = {}  # stage -> every rank's summary (multi-process)
        self._listeners: list[Callable[[L.Trainer, list[StepRecord]], None]] = []
        self._timer: DeviceTimer | None = None
        self._pending: list[_Pending] = []
        self._current: _Pending | None = None
        self._data_start: Mark | None = None
        self._batches: dict[str, int] = {}
        self._init_marks: dict[str, Mark] = {}
        self._init_open = False

    # ------------------------------------------------------------------ public
    def add_listener(self, fn: Callable[[L.Trainer, list[StepRecord]], None]) -> None:
        """Call ``fn(trainer, records)`` with each batch of newly resolved step records."""
        self._listeners.append(fn)

    def summary(self, stage: str = "train") -> dict[str, dict[str, float | int]]:
        """``{phase: STATS}`` for a stage ("train", "predict", "validate", "test" or "init"), warm-up excluded."""
        if stage == "init":
            counted = self.init_records[self.warmup_inits :]
            return {p: summarize(r[p] for r in counted if p in r) for p in INIT_PHASES}
        phases = TRAIN_PHASES if stage == "train" else INFERENCE_PHASES
        counted = [r for r in self.records if r.stage == stage and not r.warmup]
        return {p: summarize(r.phases[p] for r in counted if p in r.phases) for p in phases}

    def naive_summary(self, stage: str = "predict") -> dict[str, float | int]:
        """STATS of what an unsynchronised host timer read for the same inference batches."""
        return summarize(r.naive_ms for r in self.records if r.stage == stage and not r.warmup and r.naive_ms is not None)

    def warmup_records(self, stage: str = "train") -> list[StepRecord]:
        return [r for r in self.records if r.stage == stage and r.warmup]

    # ------------------------------------------------------------------ init
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._timer = DeviceTimer(trainer.strategy.root_device)
        self._batches = {}
        self._data_start = None
        self._init_marks = {"init_start": self._timer.mark()}
        self._init_open = True
        for hook, phase in (("configure_model", "init_model"), ("configure_optimizers", "init_optimizer")):
            self._wrap(pl_module, hook, phase)

    def _wrap(self, pl_module: L.LightningModule, hook: str, phase: str) -> None:
        original = getattr(pl_module, hook)

        @functools.wraps(original)  # keeps Lightning's is_overridden() answer unchanged
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._init_marks[f"{phase}_start"] = self._timer.mark()
            try:
                return original(*args, **kwargs)
            finally:
                self._init_marks[f"{phase}_end"] = self._timer.mark()

        setattr(pl_module, hook, timed)

    def _close_init(self, trainer: L.Trainer) -> None:
        if not self._init_open:
            return
        self._init_open = False
        m = self._init_marks
        m["init_end"] = self._timer.mark()
        names = [p for p in INIT_PHASES if f"{p}_start" in m and f"{p}_end" in m]
        values = self._timer.resolve((m[f"{p}_start"], m[f"{p}_end"]) for p in names)
        self.init_records.append(dict(zip(names, values)))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._flush(trainer)
        for hook in ("configure_model", "configure_optimizers"):
            pl_module.__dict__.pop(hook, None)  # back to the class's own method

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_init(trainer)

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_init(trainer)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_init(trainer)

    # ------------------------------------------------------------------ training steps
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._data_start = self._timer.mark()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._begin("train", batch, data_start=self._data_start)

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        self._mark("backward_start")

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._mark("backward_end")

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        self._mark("optimizer_start")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        end = self._end()
        self._data_start = end  # the next batch's wait starts now
        self._flush(trainer, wait=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)
        self._gather_ranks(trainer, "train")

    # ------------------------------------------------------------------ inference batches
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._close_init(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)
        self._data_start = self._timer.mark()  # validation inside an epoch is not the next batch's data time

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._begin("validate", batch, naive=True)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._end()

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._begin("test", batch, naive=True)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._end()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._begin("predict", batch, naive=True)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._end()
        self._flush(trainer, wait=False)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)
        self._gather_ranks(trainer, "predict")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # keep what was measured before the failure; a broken device may refuse, and then there is nothing to keep
        self._current = None
        try:
            self._flush(trainer)
        except Exception:
            self._pending.clear()

    # ------------------------------------------------------------------ internals
    def _gather_ranks(self, trainer: L.Trainer, stage: str) -> None:
        """Every rank's summary, on every rank, once the stage has ended (one collective; never inside a step)."""
        if trainer.world_size <= 1 or not torch.distributed.is_available() or not torch.distributed.is_initialized():
            return
        mine = {"rank": trainer.global_rank, "phases": self.summary(stage),
                "batch_shape": next((r.batch_shape for r in self.records if r.stage == stage), None)}
        gathered: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, mine)
        self.rank_summaries[stage] = sorted(gathered, key=lambda g: g["rank"])

    def _begin(self, stage: str, batch: Any, data_start: Mark | None = None, naive: bool = False) -> None:
        step = self._batches.get(stage, 0)
        self._batches[stage] = step + 1
        self._current = _Pending(
            stage=stage, step=step, warmup=step < self.warmup_steps, batch_shape=_first_tensor_shape(batch),
            data_start=data_start,
        )
        self._current.marks.append(("batch_start", self._timer.mark()))
        if naive:
            self._current.naive_start = self._timer.host_now()

    def _mark(self, label: str) -> None:
        if self._current is not None:
            self._current.marks.append((label, self._timer.mark()))

    def _end(self) -> Mark | None:
        cur = self._current
        if cur is None:
            return None
        if cur.naive_start is not None:
            cur.naive_ms = (self._timer.host_now() - cur.naive_start) * 1000.0
        end = self._timer.mark()
        cur.marks.append(("batch_end", end))
        self._pending.append(cur)
        self._current = None
        return end

    def _flush(self, trainer: L.Trainer, wait: bool = True) -> None:
        """Resolve pending marks into StepRecords, log the counted ones and tell the listeners.

        ``wait=False``: only steps the device has finished (their last mark is done), at least ``resolve_every``
        of them; the device works in order, so those are a prefix of the pending steps.
        """
        if not wait:
            ready = 0
            while ready < len(self._pending) and self._timer.done(self._pending[ready].marks[-1][1]):
                ready += 1
            if ready < self.resolve_every:
                return
            pending, self._pending = self._pending[:ready], self._pending[ready:]
        else:
            pending, self._pending = self._pending, []
        if not pending:
            return
        # every interval of every pending step, resolved in one go (one device wait at most)
        intervals: list[tuple[int, str, Mark, Mark]] = []
        for i, p in enumerate(pending):
            for (label, start), (_, end) in zip(p.marks, p.marks[1:]):
                phase = _OPENS.get(label)
                if phase is not None:
                    intervals.append((i, phase, start, end))
            batch_start, batch_end = p.marks[0][1], p.marks[-1][1]
            if p.stage == "train":
                if p.data_start is not None:
                    intervals.append((i, "data", p.data_start, batch_start))
                intervals.append((i, "step", p.data_start if p.data_start is not None else batch_start, batch_end))
        values = self._timer.resolve(((s, e) for _, _, s, e in intervals), wait=wait)
        phases: list[dict[str, float]] = [{} for _ in pending]
        for (i, phase, _, _), ms in zip(intervals, values):
            phases[i][phase] = phases[i].get(phase, 0.0) + ms
        new = [
            StepRecord(p.stage, p.step, p.warmup, ph, p.batch_shape, p.naive_ms) for p, ph in zip(pending, phases)
        ]
        self.records.extend(new)
        if self.log_every_step:
            self._log(trainer, new)
        for fn in self._listeners:
            fn(trainer, new)

    @staticmethod
    def _log(trainer: L.Trainer, records: list[StepRecord]) -> None:
        for r in records:
            if r.warmup:
                continue
            prefix = {"validate": "val_", "test": "test_"}.get(r.stage, "")
            metrics = {f"time/{prefix}{phase}_ms": ms for phase, ms in r.phases.items()}
            if r.naive_ms is not None:
                metrics[f"time/{prefix}naive_forward_ms"] = r.naive_ms
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=r.step)
