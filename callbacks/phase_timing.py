"""PhaseTimingCallback: where each millisecond of a Lightning run goes, for any LightningModule.

A training step is an **optimizer step**. Its timeline, at Lightning's hooks and the optimizer's own step hook::

    previous step end ─ data ─ on_train_batch_start ─ forward ─ on_before_backward ─ backward ─ on_after_backward ─
    on_before_optimizer_step ─ optimizer ─ optimizer step post-hook ─ on_train_batch_end

With gradient accumulation the k micro-batches of one optimizer step are one record: their ``data``, ``forward`` and
``backward`` are summed, ``optimizer`` appears once, tokens count every micro-batch from its own shape, and warm-up is
counted in optimizer steps. Under manual optimisation the ``optimizer`` phase is each ``optimizer.step()`` itself
(several optimizers add up) and the rest of ``training_step`` is ``forward``.

Work that is not a step is kept apart: a checkpoint save (ModelCheckpoint runs after every other callback, so a
companion callback appended behind it marks where the save ends) and validation inside ``fit`` are ``checkpoint`` and
``validation`` windows, never part of the next step's ``data``. ``fit_summary()`` sets fit's wall time against them.

Marks are device events (``callbacks.timing``): finished steps are resolved at each batch end by a non-blocking
query, and the host waits for the device only when a stage ends. On CUDA each mark also keeps the host clock, so every
phase has a host time beside its device time, and each step notes whether the GPU had already run out of queued work
when it started (``caught_up``). Each phase is a ``torch.profiler.record_function`` range while a profiler runs, and
an NVTX range with ``nvtx=True`` (for ``nsys``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from .init_timing import InitTimer
from .outside_steps import AfterOtherCallbacks, OutsideSteps
from .phase_ranges import PhaseRanges
from .phase_summary import INFERENCE_PHASES, INIT_PHASES, TRAIN_PHASES, WINDOW_PHASES, PhaseSummaries  # noqa: F401
from .step_records import (
    METRIC_PREFIX,
    OPENS_AUTOMATIC,
    OPENS_MANUAL,
    BatchCount,
    PendingStep,
    StepRecord,
    WindowRecord,
    count_batch,
    logged_per_step,
    optimizer_step_index,
    resolve,
)
from .timing import DeviceTimer, Mark

_INFERENCE_OPENS: dict[str, str | None] = {"batch_start": "forward"}


class PhaseTimingCallback(PhaseSummaries, Callback):
    """Times init, data, forward, backward, optimizer, whole steps, checkpoints and validation.

    Args:
        warmup_steps: steps (optimizer steps in training, batches otherwise) at the start of each stage that are timed
            but never counted (caches, autotuning, compilation).
        counted_steps: steps counted after warm-up; later steps are recorded as ``extra`` and never counted (they
            serve energy windows or a profiled diagnosis). None counts every step.
        warmup_inits: Trainer runs whose init is not counted; set it when one callback times several Trainers and the
            first includes one-off device start-up.
        resolve_every: finished steps to collect before resolving and logging them (never waits for the device).
        log_every_step: write each counted step's times to the Trainer's loggers (``time/<phase>_ms``).
        nvtx: also push an NVTX range per phase, for ``nsys profile`` (CUDA only).
    """

    def __init__(self, warmup_steps: int = 2, counted_steps: int | None = None, warmup_inits: int = 0,
                 resolve_every: int = 1, log_every_step: bool = True, nvtx: bool = False) -> None:
        if warmup_steps < 0 or warmup_inits < 0 or resolve_every < 1 or (counted_steps is not None and counted_steps < 0):
            raise ValueError("warmup_steps, counted_steps and warmup_inits must be >= 0 and resolve_every >= 1")
        self.warmup_steps, self.counted_steps, self.warmup_inits = warmup_steps, counted_steps, warmup_inits
        self.resolve_every, self.log_every_step = resolve_every, log_every_step
        self.records: list[StepRecord] = []
        self.windows: list[WindowRecord] = []
        self.init_records: list[dict[str, float]] = []  # every init timed, warm-up included, in order
        self.fit_wall_ms: float | None = None
        self.rank_summaries: dict[str, list[dict[str, Any]]] = {}  # stage -> every rank's summary (multi-process)
        self.count_batch: Callable[[Any], BatchCount] = count_batch  # samples and tokens of a batch (ThroughputCallback)
        self._ranges = PhaseRanges(nvtx)
        self._listeners: list[Callable[[L.Trainer, list[StepRecord]], None]] = []
        self._timer: DeviceTimer | None = None
        self._pending: list[PendingStep] = []
        self._outside = OutsideSteps()
        self._current: PendingStep | None = None
        self._batches: dict[str, int] = {}
        self._init = InitTimer()
        self._companion: AfterOtherCallbacks | None = None
        self._hooks: list[Any] = []
        self._reset_fit_state()

    def _reset_fit_state(self) -> None:
        self._data_start: Mark | None = None
        self._data_start_host: float | None = None  # the host clock at that same point (CUDA only)
        self._tool_waits_at_step_start = DeviceTimer.tool_waits
        self._last_end: Mark | None = None  # the end of the last closed train step
        self._batch_end: Mark | None = None  # our mark at the end of the latest train batch
        self._outside.reset()
        self._fit_marks: list[Mark] = []
        self._base_step = 0
        self._last_step = -1
        self._train_steps = 0
        self._manual = False

    # ------------------------------------------------------------------ public
    def add_listener(self, fn: Callable[[L.Trainer, list[StepRecord]], None]) -> None:
        """Call ``fn(trainer, records)`` with each batch of newly resolved step records."""
        self._listeners.append(fn)

    # ------------------------------------------------------------------ init
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._timer = DeviceTimer(trainer.strategy.root_device)
        self._ranges.enable_nvtx = self._ranges.enable_nvtx and self._timer.uses_cuda
        self._batches = {}
        self._reset_fit_state()
        self._init.start(self._timer, pl_module)
        if stage == "fit":
            # behind every callback, ModelCheckpoint included (Lightning moves checkpoint callbacks last at init)
            self._companion = AfterOtherCallbacks(self)
            trainer.callbacks.append(self._companion)

    def _close_init_record(self) -> None:
        record = self._init.close()
        if record is not None:
            self.init_records.append(record)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._ranges.close()
        self._flush(trainer)
        self._remove_optimizer_hooks()
        if self._companion is not None and self._companion in trainer.callbacks:
            trainer.callbacks.remove(self._companion)
        self._companion = None
        self._init.unwrap(pl_module)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_init_record()

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_init_record()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_init_record()

    # ------------------------------------------------------------------ training steps
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_marks = [self._timer.mark()]
        self._manual = not pl_module.automatic_optimization
        self._base_step = optimizer_step_index(trainer, self._manual)
        self._train_steps = 0
        for optimizer in trainer.optimizers:
            self._hooks.append(optimizer.register_step_post_hook(lambda *_: self._mark("optimizer_end")))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set_data_start(self._timer.mark())

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._current is None:
            index = self._train_steps
            self._current = self._pending_step("train", self._base_step + index, index,
                                               OPENS_MANUAL if self._manual else OPENS_AUTOMATIC)
            self._current.global_step_at_start = trainer.global_step
            self._current.caught_up = self._caught_up()
        if self._data_start is not None:
            # the device mark and the host time of the same point: the previous batch's end (or a window's)
            self._current.marks.append(("data_start", self._data_start, self._data_start_host))
        self._current.counts.append(self.count_batch(batch))
        self._mark("batch_start")

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        self._mark("backward_start")

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._mark("backward_end")

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        self._mark("optimizer_start")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        cur = self._current
        if cur is None:
            return
        stepped = (trainer.global_step != cur.global_step_at_start or not trainer.optimizers
                   or any(label == "optimizer_start" for label, _, _ in cur.marks))
        if stepped:
            end = self._end()
            self._last_end, self._last_step = end, cur.step
            self._train_steps += 1
        else:  # a micro-batch of an optimizer step still accumulating
            end = self._close_with("micro_end")
        self._batch_end = end
        self._set_data_start(end, cur.marks[-1][2])
        self._flush(trainer, wait=False)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self._timer is not None:
            self._outside.save_started(self._timer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._remove_optimizer_hooks()

    # called by the companion, after every other callback's hook
    def _after_train_batch_end(self, trainer: L.Trainer) -> None:
        end = self._outside.after_batch_end(self._timer, self._batch_end, self._last_step)
        if end is not None:
            self._set_data_start(end)

    def _after_validation_end(self, trainer: L.Trainer) -> None:
        end = self._outside.after_validation_end(self._timer, self._last_step)
        if end is not None:
            self._set_data_start(end)  # validation inside an epoch is not the next batch's data time

    def _after_train_epoch_end(self, trainer: L.Trainer) -> None:
        self._outside.after_epoch_end(self._timer, self._last_step)

    def _after_train_end(self, trainer: L.Trainer) -> None:
        self._after_train_epoch_end(trainer)
        self._fit_marks.append(self._timer.mark())
        self._flush(trainer)
        self._gather_ranks(trainer, "train")

    # ------------------------------------------------------------------ inference batches
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._close_init_record()
        if trainer.state.fn == "fit":
            self._outside.validation_started(self._timer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer, wait=trainer.state.fn != "fit")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._begin_inference("validate", batch)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._end()

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._begin_inference("test", batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._end()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._begin_inference("predict", batch)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._end()
        self._flush(trainer, wait=False)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)
        self._gather_ranks(trainer, "predict")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # keep what was measured before the failure; a broken device may refuse, and then there is nothing to keep
        self._current = None
        self._ranges.close()
        self._remove_optimizer_hooks()
        try:
            self._flush(trainer)
        except Exception:
            self._pending.clear()
            self._outside.pending.clear()

    # ------------------------------------------------------------------ internals
    def _pending_step(self, stage: str, step: int, index: int, opens: dict[str, str | None]) -> PendingStep:
        warmup = index < self.warmup_steps
        extra = self.counted_steps is not None and index >= self.warmup_steps + self.counted_steps
        return PendingStep(stage=stage, step=step, index=index, warmup=warmup, extra=extra, opens=opens)

    def _begin_inference(self, stage: str, batch: Any) -> None:
        index = self._batches.get(stage, 0)
        self._batches[stage] = index + 1
        self._current = self._pending_step(stage, index, index, _INFERENCE_OPENS)
        self._current.counts.append(self.count_batch(batch))
        self._mark("batch_start")
        self._current.naive_start = self._timer.host_now()

    def _host(self) -> float | None:
        return self._timer.host_now() if self._timer.uses_cuda else None

    def _set_data_start(self, mark: Mark, host: float | None = None) -> None:
        """Where the next batch's ``data`` begins, on both clocks (host: now, unless the mark's own time is given)."""
        self._data_start, self._data_start_host = mark, self._host() if host is None else host

    def _caught_up(self) -> bool | None:
        """Had the device finished the previous step when this one began (a query, never a wait)? None when unknown:
        not CUDA, no previous step right before, or the tool itself waited for the device (or held the host up)
        since the previous step began: then the device was drained by the tool, not by a slow host."""
        waits, self._tool_waits_at_step_start = self._tool_waits_at_step_start, DeviceTimer.tool_waits
        if not self._timer.uses_cuda or self._last_end is None or self._data_start is not self._last_end:
            return None
        if DeviceTimer.tool_waits != waits:
            return None
        return self._timer.done(self._last_end)

    def _mark(self, label: str) -> None:
        cur = self._current
        if cur is not None:
            self._ranges.switch(cur.opens.get(label))
            cur.marks.append((label, self._timer.mark(), self._host()))

    def _close_with(self, label: str) -> Mark:
        """Close the open phase range and set the mark that ends the current batch (or micro-batch)."""
        self._ranges.close()
        end = self._timer.mark()
        self._current.marks.append((label, end, self._host()))
        return end

    def _end(self) -> Mark | None:
        cur = self._current
        if cur is None:
            return None
        if cur.naive_start is not None:
            cur.naive_ms = (self._timer.host_now() - cur.naive_start) * 1000.0
        end = self._close_with("batch_end")
        self._pending.append(cur)
        self._current = None
        return end

    def _remove_optimizer_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def _gather_ranks(self, trainer: L.Trainer, stage: str) -> None:
        """Every rank's summary, on every rank, once the stage has ended (one collective; never inside a step)."""
        if trainer.world_size <= 1 or not torch.distributed.is_available() or not torch.distributed.is_initialized():
            return
        mine = {"rank": trainer.global_rank, "phases": self.summary(stage),
                "batch_shape": next((r.batch_shape for r in self.records if r.stage == stage), None),
                "tokens": next((r.tokens for r in self.counted(stage)), None)}
        gathered: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, mine)
        self.rank_summaries[stage] = sorted(gathered, key=lambda g: g["rank"])

    def _flush(self, trainer: L.Trainer, wait: bool = True) -> None:
        """Resolve pending marks into records, log the counted ones and tell the listeners.

        ``wait=False``: only what the device has finished, and steps only ``resolve_every`` at a time (never waits).
        """
        if self._timer is None:
            return
        fit_marks = self._fit_marks if wait and len(self._fit_marks) == 2 else None
        new, new_windows, fit_ms = resolve(self._timer, self._pending, self._outside.pending, fit_marks, wait,
                                           self.resolve_every)
        if fit_ms is not None:
            self.fit_wall_ms, self._fit_marks = fit_ms, []
        self.records.extend(new)
        self.windows.extend(new_windows)
        if self.log_every_step:
            self._log(trainer, new, new_windows)
        if new:
            for fn in self._listeners:
                fn(trainer, new)

    @staticmethod
    def _log(trainer: L.Trainer, records: list[StepRecord], windows: list[WindowRecord]) -> None:
        for r in records:
            if not logged_per_step(r, trainer):
                continue
            prefix = METRIC_PREFIX.get(r.stage, "")
            metrics = {f"time/{prefix}{phase}_ms": ms for phase, ms in r.phases.items()}
            if r.naive_ms is not None:
                metrics[f"time/{prefix}naive_forward_ms"] = r.naive_ms
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=r.step)
        for w in windows:
            for logger in trainer.loggers:
                # at the optimizer steps done when it ran, as val/loss (a validation after 20 steps: x = 20)
                logger.log_metrics({f"time/{w.kind}_ms": w.ms}, step=w.step + 1)
