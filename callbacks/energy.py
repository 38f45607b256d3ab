"""EnergyCallback: joules per token over a window of steady steps, for any LightningModule.

The rule (the project's timing rule 6): read the energy counters (``callbacks.energy_meters``) at the two ends of a
window of steady steps, after warm-up, the device synchronised at both ends by the project's one timer
(``DeviceTimer.wait``), and never once per step. A counter moves about every 100 ms, so a window lasts at least
``MIN_WINDOW_S``: when the counted steps are shorter, extra steps run until it is long enough. How many is planned
at a few looks from the *device's* clock, never by a wait: each window step ends with a device mark, and the marks the
device has already passed (a non-blocking query) give its rate; the host may be many steps ahead of the GPU, so its
clock would plan far too many. A plan never more than doubles the window's steps before the next look, which plans
again. The window closes only once a length it is sure of (the host clock since the opening wait, or the device's time
through a step it has finished: neither reads ahead of the device) reaches the minimum, so the window that ends at the
closing wait is never too short. With several processes rank 0's plan is broadcast, so that every process stops at
the same step.

Where the waits and reads land matters to the timings beside them. Put this callback *before* the timing callback:
the window opens at the end of the last warm-up step, before the timing callback marks that step's end (so the
warm-up step, never counted, absorbs it); it closes at the first hook after the timer has marked the last window
step's end (the stage's end, or the next step's start, which then absorbs it and is never counted). Stopping: for
``fit`` it sets ``trainer.should_stop``; for ``predict``, feed the Trainer ``callback.batches(loader)``, which yields
batches until the window is done (Lightning fetches one batch ahead: that one batch runs past the window, uncounted).
With several processes the look at the window's length is a collective, so it waits for the next step's start.

``EnergyWindow`` (``callbacks.energy_window``) holds the arithmetic and no Trainer; ``EnergyCallback`` is the thin Lightning side. A failure of the
measurement itself (anything but a counter that cannot be read, which is ``unavailable``) never stops the stage: the
result is ``{"error": ...}`` and the stage runs its counted steps as without energy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from . import step_records
from .energy_meters import EnergyMeter, EnergyUnavailable, meter_for
from .energy_window import (
    MIN_WINDOW_S,
    EnergyWindow,
    energy_figures,
    unavailable,
)
from .failures import one_line
from .timing import DeviceTimer, Mark
from .tokens import count_tokens, read_count

__all__ = ["MIN_WINDOW_S", "EnergyCallback", "EnergyWindow", "energy_figures", "unavailable"]


class EnergyCallback(Callback):
    """Reads energy counters around a window of steady steps; logs ``energy/*`` and ``power/*`` when it closes.

    Args:
        warmup_steps: steps (optimizer steps in fit, batches in predict) before the window opens.
        counted_steps: steps the window holds at least (the timed ones); it runs on past them if it is too short.
        min_window_s: shortest window, in seconds.
        idle_watts: idle draw of the run's devices, measured beforehand; None leaves ``joules_above_idle`` null.
        meter: the counters to read; default NVML for a CUDA root device, RAPL for the CPU.
        stop: end the stage once the window has closed (a profile); False to measure one window inside a longer run.
        clock: the host clock (tests pass a scripted one).
        length_fn: the tokens a batch holds, when they are not a (B, T) tensor of token ids (as ThroughputCallback's);
            a model fed features has no tokens, and its per-token figures are null.
        log_figures: write ``energy/*`` and ``power/*`` to the trainer's loggers when the window closes; False
            leaves the figures in ``result`` only (the profile writes them with its other once-per-experiment
            figures, so that one-point charts do not sort before the per-step ``throughput/`` and ``time/`` groups
            in TensorBoard).

    After the stage, ``result`` is the ``energy`` record: figures, ``{"unavailable": why}``, or ``{"error": what}``
    when the measurement itself failed (the stage then ran its counted steps and stopped, as without energy).
    """

    def __init__(self, warmup_steps: int = 2, counted_steps: int = 5, min_window_s: float = MIN_WINDOW_S,
                 idle_watts: float | None = None, meter: EnergyMeter | None = None, stop: bool = True,
                 clock: Callable[[], float] = time.perf_counter,
                 length_fn: Callable[[Any], int] | None = None, log_figures: bool = True) -> None:
        if warmup_steps < 0 or counted_steps < 1 or min_window_s <= 0:
            raise ValueError("warmup_steps must be >= 0, counted_steps >= 1 and min_window_s > 0")
        self.warmup_steps, self.counted_steps, self.min_window_s = warmup_steps, counted_steps, min_window_s
        self.idle_watts, self.meter, self.stop, self.clock = idle_watts, meter, stop, clock
        self.length_fn, self.log_figures = length_fn, log_figures  # not "log": Lightning sets callback.log
        self.result: dict[str, Any] | None = None
        self._reset()

    def _reset(self) -> None:
        self.result = None
        self._window: EnergyWindow | None = None
        self._timer: DeviceTimer | None = None
        self._steps = 0  # steps finished in this stage
        self._first_global_step = self._last_global_step = 0
        self._pending_tokens: list[Any] = []  # this step's batches' counts, read once the device has passed them
        self._window_tokens: list[Any] = []  # the open window's
        self._checkpoint = self.warmup_steps + self.counted_steps
        self._evaluate_next = False  # several processes: look at the next hook, where a collective costs no timing
        self._close_next = False  # the window is long enough: close it at the next hook (after the timer's marks)
        self._stop_requested = False
        self._failed = False
        self._window_start: Mark | None = None  # a device mark right after the opening wait
        self._device_done: tuple[int, Mark] | None = None  # the latest window step the device is known to have done
        self._marks: list[tuple[int, Mark]] = []  # window steps' end marks the device had not reached when last seen

    # ------------------------------------------------------------------ public
    @property
    def done(self) -> bool:
        """Has the stage run every step this callback needs (the window closed, or no window can be measured)?"""
        return self._stop_requested

    def batches(self, loader: Iterable[Any]) -> Iterator[Any]:
        """``loader``'s batches, round and round, until the window is done: the predict data of a profile.

        Without a window to fill (energy unavailable, or failed) exactly warm-up + counted batches are yielded."""
        needed = self.warmup_steps + self.counted_steps
        yielded = 0
        while True:
            before = yielded
            for batch in loader:
                if self.done or (yielded >= needed and self._window is None and self.result is not None):
                    return
                yield batch
                yielded += 1
            if yielded == before:  # an empty loader: nothing to go round
                return

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        from .phase_timing import PhaseTimingCallback

        mine = trainer.callbacks.index(self)
        if any(isinstance(c, PhaseTimingCallback) for c in trainer.callbacks[:mine]):
            raise ValueError("EnergyCallback must come before PhaseTimingCallback in the Trainer's callbacks, so that "
                             "its device waits and counter reads fall in uncounted steps")
        self._reset()
        self._guarded(trainer, self._setup, trainer)

    def _setup(self, trainer: L.Trainer) -> None:
        self._timer = DeviceTimer(trainer.strategy.root_device)
        if self.meter is None:
            self.meter = meter_for(trainer.strategy.root_device)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a resumed fit starts past 0; under manual optimisation each optimizer steps: one step of the axis per batch
        self._first_global_step = self._last_global_step = step_records.optimizer_step_index(
            trainer, not pl_module.automatic_optimization)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.warmup_steps == 0 and self._steps == 0 and self.result is None and self._window is None:
            self._guarded(trainer, self._open, trainer)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._guarded(trainer, self._batch_start, trainer, batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = step_records.optimizer_step_index(trainer, not pl_module.automatic_optimization)
        if step != self._last_global_step:  # an optimizer step ended (not a micro-batch)
            self._last_global_step = step
            self._guarded(trainer, self._step_end, trainer, step - self._first_global_step)
            if self._failed and step - self._first_global_step >= self.warmup_steps + self.counted_steps:
                self._request_stop(trainer)  # a failed measurement: stop with the counted steps, as without energy

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._guarded(trainer, self._stage_end, trainer)

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.warmup_steps == 0 and self._steps == 0 and self.result is None and self._window is None:
            self._guarded(trainer, self._open, trainer)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._guarded(trainer, self._batch_start, trainer, batch)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._guarded(trainer, self._step_end, trainer, self._steps + 1)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._guarded(trainer, self._stage_end, trainer)

    # ------------------------------------------------------------------ the window
    def _guarded(self, trainer: L.Trainer, fn: Callable[..., None], *args: Any) -> None:
        """Run one part of the measurement; if it fails, the failure is the result and the stage goes on."""
        if self._failed:
            return
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - a measuring add-on must never cost the run its timed steps
            self._failed = True
            self._window, self._close_next, self._evaluate_next = None, False, False
            self.result = {"error": one_line(e)}

    def _batch_start(self, trainer: L.Trainer, batch: Any) -> None:
        if self._evaluate_next:
            self._evaluate(trainer)
        if self._close_next:
            self._close(trainer)
        if self._window is not None:  # only the window's batches are counted: no device work outside it
            self._pending_tokens.append(count_tokens(batch, self.length_fn)[0])  # never waits for the device

    def _step_end(self, trainer: L.Trainer, steps: int) -> None:
        self._steps = steps
        tokens, self._pending_tokens = self._pending_tokens, []
        if self._window is not None:
            self._window.add_step()  # the tokens are added up when the window closes, after the device wait
            self._window_tokens.extend(tokens)
            self._marks.append((self._window.steps, self._timer.mark()))  # an event: never blocks
            while self._marks and self._timer.done(self._marks[0][1]):  # queries, never a wait
                self._device_done = self._marks.pop(0)
        elif self.result is None and steps >= self.warmup_steps:
            self._open(trainer)
        if steps < self.warmup_steps + self.counted_steps:
            return
        if self._window is not None:
            if steps >= self._checkpoint and not self._close_next:
                if trainer.world_size == 1:
                    self._evaluate(trainer)  # queries and the host clock only: nothing delays the step being timed
                else:
                    self._evaluate_next = True  # the broadcast waits for the device: not before the timer's mark
        elif not self._stop_requested:  # no window to fill: stop with the counted steps
            self._request_stop(trainer)

    def _open(self, trainer: L.Trainer) -> None:
        self._timer.wait()  # the window starts with the device idle: nothing from warm-up inside it
        window = EnergyWindow(self.meter, self.min_window_s, self.idle_watts)
        try:
            window.open(self.clock())
            failure = None
        except EnergyUnavailable as e:
            failure = str(e)
        # every rank opens its window or none does: a rank without one would never join the collectives that plan and
        # close the others' windows, which would then meet other collectives (the run died so on gloo)
        failures = _gathered(failure)
        failed = [(rank, f) for rank, f in enumerate(failures) if f is not None]
        if failed:
            rank, reason = failed[0]
            self.result = unavailable(reason if len(failures) == 1 else f"rank {rank}: {reason}")
            return
        self._window_start = self._timer.mark()
        self._device_done, self._marks = (0, self._window_start), []
        self._window, self._window_tokens = window, []

    def _device_rate(self) -> tuple[int, float] | None:
        """(window steps the device has finished, the device seconds they took), from marks it has passed."""
        steps, mark = self._device_done or (0, None)
        if steps == 0:
            return None
        (ms,) = self._timer.resolve([(self._window_start, mark)], wait=False)
        return steps, ms / 1000.0

    def _evaluate(self, trainer: L.Trainer) -> None:
        """Decide whether the window is long enough, else plan the step of the next look; the same on every rank."""
        self._evaluate_next = False
        plan = self._window.more_steps(self.clock() - self._window.t0, self._device_rate())
        more = trainer.strategy.broadcast(plan, src=0)  # rank 0's plan, so that every rank stops at the same step
        if more:
            self._checkpoint = self._steps + more
            return
        self._close_next = True
        self._request_stop(trainer)

    def _close(self, trainer: L.Trainer) -> None:
        self._close_next = False
        window, self._window = self._window, None
        self._timer.wait()  # the window ends with every queued kernel finished: their energy is inside it
        now = self.clock()
        window.tokens = sum(read_count(t) or 0 for t in self._window_tokens)  # the device is done: counts readable
        try:
            mine: dict[str, Any] = window.close(now)
        except EnergyUnavailable as e:
            mine = unavailable(str(e))
        self.result = _across_ranks(mine)
        self._log(trainer)

    def _stage_end(self, trainer: L.Trainer) -> None:
        if self._window is not None:
            self._close(trainer)
            window_s = self.result.get("window_s")
            if window_s is not None and window_s < self.min_window_s:
                self.result = unavailable(
                    f"window too short: the stage ended after {window_s:.2f} s ({self.result['window_steps']} "
                    f"steps); energy needs >= {self.min_window_s:g} s (the counters move about every 100 ms)")
        elif self.result is None:
            self.result = unavailable("the stage ended before the warm-up steps were done")

    def _request_stop(self, trainer: L.Trainer) -> None:
        self._stop_requested = True
        if self.stop and trainer.training:
            trainer.should_stop = True  # Lightning finishes the step under way, then leaves fit

    def _log(self, trainer: L.Trainer) -> None:
        r = self.result
        if "unavailable" in r or not self.log_figures:
            return
        names = {"joules": "energy/joules", "joules_above_idle": "energy/joules_above_idle",
                 "joules_per_token": "energy/joules_per_token", "tokens_per_kwh": "energy/tokens_per_kwh",
                 "window_s": "energy/window_s", "avg_watts": "power/avg_watts", "idle_watts": "power/idle_watts"}
        metrics = {tag: float(r[key]) for key, tag in names.items() if r.get(key) is not None}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=self._steps)


def _gathered(mine: Any) -> list[Any]:
    """Every rank's ``mine``, in rank order (one collective); ``[mine]`` when this process runs alone."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [mine]
    world = torch.distributed.get_world_size()
    if world == 1:
        return [mine]
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, mine)
    return gathered


def _across_ranks(mine: dict[str, Any]) -> dict[str, Any]:
    """Every rank's window, added up (one collective, at the window's end); this rank's alone when it runs alone."""
    gathered = _gathered(mine)
    if len(gathered) == 1:
        return mine
    for rank, r in enumerate(gathered):
        if "unavailable" in r:
            return unavailable(f"rank {rank}: {r['unavailable']}")

    idle = [r["idle_watts"] for r in gathered]
    return energy_figures(
        joules=sum(r["joules"] for r in gathered), window_s=max(r["window_s"] for r in gathered),
        steps=gathered[0]["window_steps"], tokens=sum(r["window_tokens"] for r in gathered),
        idle_watts=sum(idle) if all(i is not None for i in idle) else None, source=gathered[0]["source"],
        devices=sum(r["devices"] for r in gathered),
    )
