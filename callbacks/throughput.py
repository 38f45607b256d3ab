"""Tokens/s (or samples/s), achieved TFLOP/s, MFU and peak memory, from the step times PhaseTimingCallback resolves.

``Throughput`` is a plain accumulator with no Trainer in it; ``ThroughputCallback`` is the thin Lightning side that
feeds it. Rates come from the timing callback's durations, never from a clock of their own: one timer, one truth.
Tokens and samples come from each step's own batches (every micro-batch of an optimizer step, a short last batch as
it is), never from a shape assumed fixed. Tokens are real tokens (``callbacks.tokens``): a dict batch's
``attention_mask`` sum, so padding never counts; B x T only for token ids with no mask. A batch of features is counted
in samples, unless the user's ``batch_size_fn`` / ``length_fn`` say what it holds. ``callbacks.tokens_in_batch(batch)``
and ``callbacks.token_source(batch)`` (``callbacks.tokens``) give the same rule to code outside the callbacks.
"""

from __future__ import annotations

import resource
import sys
from typing import Any, Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from .devices import mfu_pct, peak_lookup
from .phase_timing import PhaseTimingCallback, StepRecord
from .step_records import METRIC_PREFIX, BatchCount, batch_tokens, count_batch, logged_per_step
from .stats import percentile
from .tokens import SOURCES as TOKEN_SOURCES

__all__ = ["GIB", "Throughput", "ThroughputCallback", "peak_memory"]

GIB = 1024**3


class Throughput:
    """Accumulates (step time, tokens, samples, FLOPs) per step; the rates reported are the median step's.

    Each step's own rate is its tokens (samples, FLOPs) over its own elapsed time; the summary is the median of those
    rates, which for steps of one shape is tokens over the median step time. A rate whose count is unknown for any
    step (tokens of a batch of features) is None.

    Args:
        peak_tflops: the device's dense peak at the precision in use; None leaves MFU null.
    """

    KEYS = ("tokens_per_sec", "samples_per_sec", "tflops", "mfu_pct")

    def __init__(self, peak_tflops: float | None = None) -> None:
        self.peak_tflops = peak_tflops
        self.step_ms: list[float] = []
        self.tokens: list[int | None] = []
        self.samples: list[int | None] = []
        self.flops: list[float | None] = []

    def update(self, step_ms: float, tokens: int | None, flops: float | None = None,
               samples: int | None = None) -> dict[str, float | None]:
        """Add one step; return that step's own rates."""
        self.step_ms.append(step_ms)
        self.tokens.append(tokens)
        self.samples.append(samples)
        self.flops.append(flops)
        return self._rates(step_ms, tokens, samples, flops)

    def compute(self) -> dict[str, float | None]:
        """THR over the counted steps: the median of each step's rates; all None before any step."""
        if not self.step_ms:
            return dict.fromkeys(self.KEYS)
        rates = [self._rates(*step) for step in zip(self.step_ms, self.tokens, self.samples, self.flops)]

        def median(key: str) -> float | None:
            values = [r[key] for r in rates]
            return None if any(v is None for v in values) else percentile(sorted(values), 50)

        tflops = median("tflops")
        return {"tokens_per_sec": median("tokens_per_sec"), "samples_per_sec": median("samples_per_sec"),
                "tflops": tflops, "mfu_pct": mfu_pct(tflops, self.peak_tflops)}

    def _rates(self, step_ms: float, tokens: int | None, samples: int | None,
               flops: float | None) -> dict[str, float | None]:
        seconds = step_ms / 1000.0  # the elapsed time of one step, computed once

        def rate(count: float | None) -> float | None:
            return count / seconds if count is not None and seconds > 0 else None

        tflops = rate(flops)
        return {
            "tokens_per_sec": rate(tokens),
            "samples_per_sec": rate(samples),
            "tflops": None if tflops is None else tflops / 1e12,
            "mfu_pct": mfu_pct(None if tflops is None else tflops / 1e12, self.peak_tflops),
        }


def peak_memory(device: torch.device) -> dict[str, float]:
    """MEM: peak allocated and reserved GiB since the last reset on CUDA; the process's peak RSS on the CPU."""
    if device.type == "cuda":
        return {
            "max_allocated_gib": torch.cuda.max_memory_allocated(device) / GIB,
            "max_reserved_gib": torch.cuda.max_memory_reserved(device) / GIB,
        }
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return {"max_rss_gib": rss * (1 if sys.platform == "darwin" else 1024) / GIB}


class ThroughputCallback(Callback):
    """Logs ``throughput/tokens_per_sec`` (or ``throughput/samples_per_sec``), ``throughput/tflops`` and
    ``throughput/mfu_pct`` per step, and with ``log_memory=True`` ``memory/*`` too.

    Works with any LightningModule. What a batch holds is read off its first tensor: a 2-D integer tensor is token
    ids, (B, T), and gives tokens/s (a dict batch with an ``attention_mask``: the mask's sum, padding left out; the
    summary's ``tokens_from`` and ``tokens_note`` say which); anything else (features, images) gives samples/s (its first dimension), and
    tokens/s is null. ``batch_size_fn(batch)`` and ``length_fn(batch)`` say it instead, like Lightning's
    ThroughputMonitor: the samples, and the tokens (items) of the whole batch, e.g. ``lambda b: int(b["mask"].sum())``
    for padded sequences. They run on the host at each batch's start: read sizes, not device values (a ``.sum()`` on
    a CUDA tensor waits for the GPU). FLOPs come from the module's ``flops_per_batch(batch_size, seq_len, training)``
    method if it has one, given the first tensor's first two dimensions (TFLOP/s and MFU are null otherwise). MFU
    uses ``peak_tflops``: "auto" looks the device and precision up in ``callbacks.devices``; an unknown device (any
    CPU, laptop part or MIG slice included) gives null with the reason, never a guess. Peak memory is a high-water
    mark, flat after the first steps: ``memory_summary()`` gives it once; per step only with ``log_memory`` (off by
    default: as a chart group, ``memory/`` would sort before ``throughput/`` and ``time/`` in TensorBoard).
    """

    def __init__(self, timing: PhaseTimingCallback | None = None, peak_tflops: float | str | None = "auto",
                 precision: str | None = None, batch_size_fn: Callable[[Any], int] | None = None,
                 length_fn: Callable[[Any], int] | None = None, log_memory: bool = False) -> None:
        self.timing = timing
        self.log_memory = log_memory
        self.batch_size_fn, self.length_fn = batch_size_fn, length_fn
        self.peak_tflops_setting = peak_tflops
        self.precision = precision  # overrides the Trainer's precision for the peak lookup (e.g. "fp8", "tf32")
        self.peak_tflops: float | None = None
        self.peak_note: str | None = None  # why the peak (and so MFU) is unknown
        self.device_name: str | None = None
        self.throughput: dict[str, Throughput] = {}
        self.tokens_from: dict[str, str] = {}  # stage -> "attention_mask", "shape" or "length_fn"
        self._device = torch.device("cpu")
        self._subscribed = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.timing is None:
            found = [c for c in trainer.callbacks if isinstance(c, PhaseTimingCallback)]
            if not found:
                raise RuntimeError("ThroughputCallback needs a PhaseTimingCallback in the Trainer's callbacks")
            self.timing = found[0]
        if not self._subscribed:
            self.timing.add_listener(self._on_records)
            self._subscribed = True
        if self.batch_size_fn is not None or self.length_fn is not None:
            self.timing.count_batch = self._count_batch
        self._device = trainer.strategy.root_device
        if self._device.type == "cuda":
            self.device_name = torch.cuda.get_device_name(self._device)
            torch.cuda.reset_peak_memory_stats(self._device)
        if self.peak_tflops_setting == "auto":
            precision = self.precision or str(trainer.precision)
            self.peak_tflops, self.peak_note = peak_lookup(self.device_name or "", precision,
                                                           torch.get_float32_matmul_precision())
        else:
            self.peak_tflops = self.peak_tflops_setting
            self.peak_note = None if self.peak_tflops else "no peak given"

    def summary(self, stage: str = "train") -> dict[str, float | str | None]:
        """THR, with the peak it was measured against and, when MFU is null, why."""
        acc = self.throughput.get(stage) or Throughput(self.peak_tflops)
        out: dict[str, Any] = acc.compute() | {"peak_tflops": self.peak_tflops}
        source = self.tokens_from.get(stage)
        if source is not None and out["tokens_per_sec"] is not None:
            out["tokens_from"], out["tokens_note"] = source, TOKEN_SOURCES[source]
        if self.peak_tflops is None:
            out["mfu_note"] = self.peak_note
        return out

    def memory_summary(self) -> dict[str, float]:
        """MEM now: the peak since this stage's setup (CUDA) or the process's peak (CPU)."""
        return peak_memory(self._device)

    def _count_batch(self, batch: Any) -> BatchCount:
        return count_batch(batch, self.batch_size_fn, self.length_fn)

    def _on_records(self, trainer: L.Trainer, records: list[StepRecord]) -> None:
        module: Any = trainer.lightning_module
        flops_fn = getattr(module, "flops_per_batch", None)
        memory = peak_memory(self._device) if self.log_memory else {}  # host-side allocator statistics: no sync
        for r in records:
            timed = r.phases.get("step" if r.stage == "train" else "forward")
            if not r.counted or not (r.tokens or r.samples) or timed is None:
                continue
            flops = None
            if callable(flops_fn):
                shapes = [batch_tokens(s) for s in r.micro_batches]
                flops = sum(flops_fn(b, t, training=r.stage == "train") for b, t in filter(None, shapes))
            acc = self.throughput.setdefault(r.stage, Throughput(self.peak_tflops))
            if r.tokens_from is not None:
                self.tokens_from.setdefault(r.stage, r.tokens_from)
            rates = acc.update(timed, r.tokens, flops, r.samples)
            if not logged_per_step(r, trainer):
                continue
            prefix = METRIC_PREFIX.get(r.stage, "")
            if rates["tokens_per_sec"] is not None:
                rates.pop("samples_per_sec")  # one rate per chart group: tokens/s where the batches hold tokens
            metrics = {f"throughput/{prefix}{k}": v for k, v in rates.items() if v is not None}
            if self.log_memory:
                metrics.update({f"memory/{k}": v for k, v in memory.items()})
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=r.step)
