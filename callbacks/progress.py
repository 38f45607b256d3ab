"""Progress for runs long enough to wait on, for any LightningModule: steps done, time per step, and an ETA.

``ProgressCallback`` says nothing for short runs. Once an experiment has been running for ``min_seconds``, or
once a steady (post-warm-up) step has been timed and the steps left would take it past ``min_seconds``, it shows
``[train] step 4/25 · 2.21 s/step · ETA 46 s``: one live line on a terminal, plain lines at most every
``log_every_s`` in a log file or pipe. It reads the host clock between batch ends and nothing else: it never waits
for the device, so it cannot slow a step. On a GPU the host runs at most a few steps ahead of the device, so the ETA
is approximate there; the timed figures come from PhaseTimingCallback, not from here.

``StepProgressBar`` is Lightning's TQDM bar counted in optimizer steps, for step-based training (``max_steps``
with an endless data stream), where the stock bar reads ``Epoch 0/-2`` and shows the logger's version as ``v_num``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar


def fmt_seconds(seconds: float) -> str:
    """0.42 s, 12 s, 3 min 05 s, 1 h 02 min."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressCallback(Callback):
    """Shows progress with an ETA once a run turns out to be long.

    Args:
        total: units expected in all (warm-up included): batches, or Trainer runs with ``per="fit"``.
        warmup: leading units that are not steady (compilation, caches): the ETA ignores their time.
        label: printed first, e.g. the experiment's name.
        unit: what one unit is called ("step", "pass", "build").
        per: "batch" counts train and predict batch ends; "fit" counts Trainer runs (one per ``on_fit_start``), for
            work that builds a new Trainer per unit, such as timing model builds.
        min_seconds: runs expected to finish sooner show nothing.
        stream: where to write (default: sys.stderr at the time of writing).
        clock: seconds, monotonic; tests pass a scripted one.
        log_every_s: at most one plain line this often when the stream is not a terminal.
    """

    def __init__(self, total: int, warmup: int = 0, label: str = "", unit: str = "step", per: str = "batch",
                 min_seconds: float = 10.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, log_every_s: float = 10.0) -> None:
        if per not in ("batch", "fit"):
            raise ValueError("per must be 'batch' or 'fit'")
        self.total, self.warmup, self.label, self.unit, self.per = total, warmup, label, unit, per
        self.min_seconds, self.log_every_s = min_seconds, log_every_s
        self._stream, self._clock = stream, clock
        self.done = 0
        self.steady_s: list[float] = []  # host seconds of each unit after warm-up
        self.visible = False
        self._start: float | None = None
        self._last: float | None = None
        self._shown_at: float | None = None
        self._live = False  # a terminal line is open (no newline yet)
        self._silent = False

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._silent = not getattr(trainer, "is_global_zero", True)  # one console line, not one per process
        if self._start is None:
            self._start = self._last = self._clock()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.per == "batch":
            self._last = self._clock()  # the first step starts here, not at the model build

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.per == "batch":
            self._last = self._clock()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.per == "batch":
            self.tick()

    def on_predict_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                             batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.per == "batch":
            self.tick()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.per == "fit":
            self.tick()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._end_line()

    # ------------------------------------------------------------------ counting
    def tick(self) -> None:
        """One unit finished now."""
        now = self._clock()
        if self._start is None:
            self._start = self._last = now
        if self.done >= self.warmup:
            self.steady_s.append(now - self._last)
        self._last = now
        self.done += 1
        self._update(now)

    def eta_s(self) -> float | None:
        """Seconds left at the median steady unit; None before one has been timed."""
        if not self.steady_s:
            return None
        ordered = sorted(self.steady_s)
        mid = len(ordered) // 2
        per = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return max(0, self.total - self.done) * per

    def line(self, now: float) -> str:
        elapsed = now - (self._start or now)
        head = f"[{self.label}] " if self.label else ""
        if self.done >= self.total:
            plural = self.unit + ("es" if self.unit.endswith("s") else "s")
            return f"{head}{self.total}/{self.total} {plural} done in {fmt_seconds(elapsed)}"
        text = f"{head}{self.unit} {self.done}/{self.total}"
        if self.done < self.warmup or not self.steady_s:
            return f"{text} (warm-up, not timed) · {fmt_seconds(elapsed)} so far · ETA after the first timed {self.unit}"
        median = self.eta_s() / max(1, self.total - self.done)
        return f"{text} · {fmt_seconds(median)}/{self.unit} · ETA {fmt_seconds(self.eta_s())}"

    # ------------------------------------------------------------------ output
    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def _is_terminal(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def _update(self, now: float) -> None:
        if self._silent:
            return
        elapsed = now - (self._start or now)
        if not self.visible:
            eta = self.eta_s()
            long_run = elapsed > self.min_seconds or (eta is not None and elapsed + eta > self.min_seconds)
            if not long_run or self.done >= self.total and elapsed <= self.min_seconds:
                return
            self.visible = True
        finished = self.done >= self.total
        if self._is_terminal():
            self.stream.write("\r" + self.line(now) + "\x1b[K" + ("\n" if finished else ""))
            self._live = not finished
        elif finished or self._shown_at is None or now - self._shown_at >= self.log_every_s:
            self.stream.write(self.line(now) + "\n")
            self._shown_at = now
        self.stream.flush()

    def _end_line(self) -> None:
        if self._live:
            self.stream.write("\n")
            self.stream.flush()
            self._live = False


class StepProgressBar(TQDMProgressBar):
    """Lightning's progress bar counted in optimizer steps up to ``max_steps``, without ``v_num``.

    With ``max_steps`` and an endless data stream, the stock bar shows ``Epoch 0/-2`` (max_epochs is -1) and the
    logger's version (here an experiment name, cut to ``rain``); this one shows ``train 120/2000`` and the metrics.
    """

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        super().on_train_epoch_start(trainer)
        if trainer.max_steps and trainer.max_steps > 0:
            self.train_progress_bar.reset(total=trainer.max_steps)
            self._show(trainer.global_step)  # a resumed run starts where it left off
        self.train_progress_bar.set_description("train")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not (trainer.max_steps and trainer.max_steps > 0):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        if self._should_update(trainer.global_step, self.train_progress_bar.total):
            self._show(trainer.global_step)
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def _show(self, n: int) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.n = n
            self.train_progress_bar.refresh()
