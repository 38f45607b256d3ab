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

import functools
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from callbacks.phase_ranges import PhaseRanges
from callbacks.step_records import (
    OPENS_AUTOMATIC,
    OPENS_MANUAL,
    PendingStep,
    StepRecord,
    WindowRecord,
    first_tensor_shape,
)
from callbacks.timing import DeviceTimer, Mark, summarize

TRAIN_PHASES = ("data", "forward", "backward", "optimizer", "step")
WINDOW_PHASES = ("checkpoint", "validation")
INFERENCE_PHASES = ("forward",)
INIT_PHASES = ("init", "init_model", "init_optimizer")
_INFERENCE_OPENS: dict[str, str | None] = {"batch_start": "forward"}


class PhaseTimingCallback(Callback):
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
        self._ranges = PhaseRanges(nvtx)
        self._listeners: list[Callable[[L.Trainer, list[StepRecord]], None]] = []
        self._timer: DeviceTimer | None = None
        self._pending: list[PendingStep] = []
        self._pending_windows: list[tuple[str, int, Mark, Mark]] = []
        self._current: PendingStep | None = None
        self._batches: dict[str, int] = {}
        self._init_marks: dict[str, Mark] = {}
        self._init_open = False
        self._companion: _AfterOtherCallbacks | None = None
        self._hooks: list[Any] = []
        self._reset_fit_state()

    def _reset_fit_state(self) -> None:
        self._data_start: Mark | None = None
        self._last_end: Mark | None = None  # the end of the last closed train step
        self._batch_end: Mark | None = None  # our mark at the end of the latest train batch
        self._save_mark: Mark | None = None  # a checkpoint save began here and no window has claimed it yet
        self._validation_start: Mark | None = None
        self._fit_marks: list[Mark] = []
        self._base_step = 0
        self._last_step = -1
        self._train_steps = 0
        self._manual = False

    # ------------------------------------------------------------------ public
    def add_listener(self, fn: Callable[[L.Trainer, list[StepRecord]], None]) -> None:
        """Call ``fn(trainer, records)`` with each batch of newly resolved step records."""
        self._listeners.append(fn)

    def counted(self, stage: str = "train") -> list[StepRecord]:
        return [r for r in self.records if r.stage == stage and r.counted]

    def summary(self, stage: str = "train") -> dict[str, dict[str, float | int]]:
        """``{phase: STATS}`` for a stage ("train", "predict", "validate", "test" or "init"), warm-up excluded.

        For "train", ``checkpoint`` and ``validation`` STATS (with ``total_ms``) are added when they ran inside fit.
        """
        if stage == "init":
            counted = self.init_records[self.warmup_inits :]
            return {p: summarize(r[p] for r in counted if p in r) for p in INIT_PHASES}
        phases = TRAIN_PHASES if stage == "train" else INFERENCE_PHASES
        counted = self.counted(stage)
        out = {p: summarize(r.phases[p] for r in counted if p in r.phases) for p in phases}
        if stage == "train":
            for kind in WINDOW_PHASES:
                values = [w.ms for w in self.windows if w.kind == kind]
                if values:
                    out[kind] = summarize(values) | {"total_ms": sum(values)}
        return out

    def host_summary(self, stage: str = "train") -> dict[str, Any]:
        """Host-clock STATS of each phase beside the device's, and in how many counted steps the GPU had caught up
        with the host (it had finished the previous step before this one began: it waited for the host). CUDA only:
        ``{}`` on the CPU, where the host clock is the device clock."""
        counted = [r for r in self.counted(stage) if r.host]
        if not counted:
            return {}
        phases = {p: summarize(r.host[p] for r in counted if p in r.host) for p in counted[0].host}
        seen = [r.caught_up for r in counted if r.caught_up is not None]
        return {"phases": phases, "gpu_caught_up_steps": sum(seen), "counted_steps": len(seen)}

    def fit_summary(self) -> dict[str, float] | None:
        """fit's wall time against the sum of its steps, its validation and its checkpoints (warm-up included)."""
        if not self.fit_wall_ms:
            return None
        parts = {"steps_ms": sum(r.phases.get("step", 0.0) for r in self.records if r.stage == "train")}
        for kind in WINDOW_PHASES:
            parts[f"{kind}_ms"] = sum(w.ms for w in self.windows if w.kind == kind)
        parts["other_ms"] = max(0.0, self.fit_wall_ms - sum(parts.values()))
        shares = {k.replace("_ms", "_pct"): 100.0 * v / self.fit_wall_ms for k, v in parts.items()}
        return {"wall_ms": self.fit_wall_ms, **parts, **shares}

    def naive_summary(self, stage: str = "predict") -> dict[str, float | int]:
        """STATS of what an unsynchronised host timer read for the same inference batches."""
        return summarize(r.naive_ms for r in self.counted(stage) if r.naive_ms is not None)

    def warmup_records(self, stage: str = "train") -> list[StepRecord]:
        return [r for r in self.records if r.stage == stage and r.warmup]

    # ------------------------------------------------------------------ init
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._timer = DeviceTimer(trainer.strategy.root_device)
        self._ranges.enable_nvtx = self._ranges.enable_nvtx and self._timer.uses_cuda
        self._batches = {}
        self._reset_fit_state()
        self._init_marks = {"init_start": self._timer.mark()}
        self._init_open = True
        for hook, phase in (("configure_model", "init_model"), ("configure_optimizers", "init_optimizer")):
            self._wrap(pl_module, hook, phase)
        if stage == "fit":
            # behind every callback, ModelCheckpoint included (Lightning moves checkpoint callbacks last at init)
            self._companion = _AfterOtherCallbacks(self)
            trainer.callbacks.append(self._companion)

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

    def _close_init(self) -> None:
        if not self._init_open:
            return
        self._init_open = False
        m = self._init_marks
        m["init_end"] = self._timer.mark()
        names = [p for p in INIT_PHASES if f"{p}_start" in m and f"{p}_end" in m]
        values = self._timer.resolve((m[f"{p}_start"], m[f"{p}_end"]) for p in names)
        self.init_records.append(dict(zip(names, values)))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._ranges.close()
        self._flush(trainer)
        self._remove_optimizer_hooks()
        if self._companion is not None and self._companion in trainer.callbacks:
            trainer.callbacks.remove(self._companion)
        self._companion = None
        for hook in ("configure_model", "configure_optimizers"):
            pl_module.__dict__.pop(hook, None)  # back to the class's own method

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_init()

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_init()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_init()

    # ------------------------------------------------------------------ training steps
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_marks = [self._timer.mark()]
        self._manual = not pl_module.automatic_optimization
        # the logging axis continues across a resume; manual optimisation counts one step per optimizer per batch
        per_batch = max(1, len(trainer.optimizers)) if self._manual else 1
        self._base_step = trainer.global_step // per_batch
        self._train_steps = 0
        for optimizer in trainer.optimizers:
            self._hooks.append(optimizer.register_step_post_hook(lambda *_: self._mark("optimizer_end")))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._data_start = self._timer.mark()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._current is None:
            index = self._train_steps
            self._current = self._pending_step("train", self._base_step + index, index,
                                               OPENS_MANUAL if self._manual else OPENS_AUTOMATIC)
            self._current.global_step_at_start = trainer.global_step
            if self._timer.uses_cuda and self._last_end is not None and self._data_start is self._last_end:
                self._current.caught_up = self._timer.done(self._last_end)  # a query, never a wait
        if self._data_start is not None:
            self._current.marks.append(("data_start", self._data_start, self._host()))
        self._current.shapes.append(first_tensor_shape(batch))
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
            self._ranges.close()
            end = self._timer.mark()
            cur.marks.append(("micro_end", end, self._host()))
        self._data_start = self._batch_end = end
        self._flush(trainer, wait=False)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self._save_mark is None and self._timer is not None:
            self._save_mark = self._timer.mark()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._remove_optimizer_hooks()

    # called by the companion, after every other callback's hook
    def _after_train_batch_end(self, trainer: L.Trainer) -> None:
        if self._save_mark is not None and self._batch_end is not None:
            end = self._timer.mark()  # the save (and everything after our hook) is the checkpoint's, not data's
            self._pending_windows.append(("checkpoint", self._last_step, self._batch_end, end))
            self._save_mark, self._data_start = None, end

    def _after_validation_end(self, trainer: L.Trainer) -> None:
        start = self._validation_start
        if start is None:
            return
        end = self._timer.mark()
        if self._save_mark is not None:
            self._pending_windows.append(("validation", self._last_step, start, self._save_mark))
            self._pending_windows.append(("checkpoint", self._last_step, self._save_mark, end))
        else:
            self._pending_windows.append(("validation", self._last_step, start, end))
        self._validation_start = self._save_mark = None
        self._data_start = end  # validation inside an epoch is not the next batch's data time

    def _after_train_epoch_end(self, trainer: L.Trainer) -> None:
        if self._save_mark is not None:
            self._pending_windows.append(("checkpoint", self._last_step, self._save_mark, self._timer.mark()))
            self._save_mark = None

    def _after_train_end(self, trainer: L.Trainer) -> None:
        self._after_train_epoch_end(trainer)
        self._fit_marks.append(self._timer.mark())
        self._flush(trainer)
        self._gather_ranks(trainer, "train")

    # ------------------------------------------------------------------ inference batches
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._close_init()
        if trainer.state.fn == "fit":
            self._validation_start = self._timer.mark()
            self._save_mark = None

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
            self._pending_windows.clear()

    # ------------------------------------------------------------------ internals
    def _pending_step(self, stage: str, step: int, index: int, opens: dict[str, str | None]) -> PendingStep:
        warmup = index < self.warmup_steps
        extra = self.counted_steps is not None and index >= self.warmup_steps + self.counted_steps
        return PendingStep(stage=stage, step=step, index=index, warmup=warmup, extra=extra, opens=opens)

    def _begin_inference(self, stage: str, batch: Any) -> None:
        index = self._batches.get(stage, 0)
        self._batches[stage] = index + 1
        self._current = self._pending_step(stage, index, index, _INFERENCE_OPENS)
        self._current.shapes.append(first_tensor_shape(batch))
        self._mark("batch_start")
        self._current.naive_start = self._timer.host_now()

    def _host(self) -> float | None:
        return self._timer.host_now() if self._timer.uses_cuda else None

    def _mark(self, label: str) -> None:
        cur = self._current
        if cur is not None:
            self._ranges.switch(cur.opens.get(label))
            cur.marks.append((label, self._timer.mark(), self._host()))

    def _end(self) -> Mark | None:
        cur = self._current
        if cur is None:
            return None
        self._ranges.close()
        if cur.naive_start is not None:
            cur.naive_ms = (self._timer.host_now() - cur.naive_start) * 1000.0
        end = self._timer.mark()
        cur.marks.append(("batch_end", end, self._host()))
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

        ``wait=False``: only steps the device has finished (their last mark is done), at least ``resolve_every``
        of them; the device works in order, so those are a prefix of the pending steps.
        """
        if self._timer is None:
            return
        if wait:
            pending, self._pending = self._pending, []
            windows, self._pending_windows = self._pending_windows, []
        else:
            ready = 0
            while ready < len(self._pending) and self._timer.done(self._pending[ready].marks[-1][1]):
                ready += 1
            pending = self._pending[:ready] if ready >= self.resolve_every else []
            self._pending = self._pending[len(pending):]
            done = [self._timer.done(w[3]) for w in self._pending_windows]
            windows = [w for w, d in zip(self._pending_windows, done) if d]
            self._pending_windows = [w for w, d in zip(self._pending_windows, done) if not d]
        fit_done = wait and len(self._fit_marks) == 2
        if not pending and not windows and not fit_done:
            return
        # every interval of every pending step, resolved in one go (one device wait at most)
        per_step = [p.intervals() for p in pending]
        pairs = [(s, e) for ivs in per_step for _, s, e, _ in ivs] + [(s, e) for _, _, s, e in windows]
        if fit_done:
            pairs.append((self._fit_marks[0], self._fit_marks[1]))
        values = self._timer.resolve(pairs, wait=wait)
        if fit_done:
            self.fit_wall_ms, self._fit_marks = values.pop(), []
        new, at = [], 0
        for p, ivs in zip(pending, per_step):
            new.append(p.record(values[at:at + len(ivs)], ivs))
            at += len(ivs)
        new_windows = [WindowRecord(kind, step, ms) for (kind, step, _, _), ms in zip(windows, values[at:])]
        self.records.extend(new)
        self.windows.extend(new_windows)
        if self.log_every_step:
            self._log(trainer, new, new_windows)
        if new:
            for fn in self._listeners:
                fn(trainer, new)

    @staticmethod
    def _log(trainer: L.Trainer, records: list[StepRecord], windows: list[WindowRecord]) -> None:
        fitting = trainer.state.fn == "fit"
        for r in records:
            if not r.counted or (r.stage == "validate" and fitting):  # inside fit, validation is one window
                continue
            prefix = {"validate": "val_", "test": "test_"}.get(r.stage, "")
            metrics = {f"time/{prefix}{phase}_ms": ms for phase, ms in r.phases.items()}
            if r.naive_ms is not None:
                metrics[f"time/{prefix}naive_forward_ms"] = r.naive_ms
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=r.step)
        for w in windows:
            for logger in trainer.loggers:
                logger.log_metrics({f"time/{w.kind}_ms": w.ms}, step=max(0, w.step))


class _AfterOtherCallbacks(Callback):
    """Appended behind every other callback (ModelCheckpoint included) so that the timing knows where their work
    ends: a checkpoint save is then a window of its own instead of the start of the next step's ``data``."""

    def __init__(self, timing: PhaseTimingCallback) -> None:
        self.timing = timing

    @property
    def state_key(self) -> str:
        return f"{type(self).__qualname__}[{id(self.timing)}]"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.timing._after_train_batch_end(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.timing._after_validation_end(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.timing._after_train_epoch_end(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.timing._after_train_end(trainer)
