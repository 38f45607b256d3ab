"""Tokens/s, achieved TFLOP/s, MFU and peak memory, from the step times PhaseTimingCallback resolves.

``Throughput`` is a plain accumulator with no Trainer in it; ``ThroughputCallback`` is the thin Lightning side that
feeds it. Rates come from the timing callback's durations, never from a clock of their own: one timer, one truth.
Tokens come from each step's own batches (every micro-batch of an optimizer step, a short last batch as it is), never
from a shape assumed fixed.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from callbacks.devices import mfu_pct, peak_lookup
from callbacks.phase_timing import PhaseTimingCallback, StepRecord
from callbacks.step_records import METRIC_PREFIX, batch_tokens, logged_per_step
from callbacks.timing import percentile

GIB = 1024**3


class Throughput:
    """Accumulates (step time, tokens, FLOPs) per step; the rates reported are the median step's.

    Each step's own rate is its tokens (FLOPs) over its own elapsed time; the summary is the median of those rates,
    which for steps of one shape is tokens over the median step time.

    Args:
        peak_tflops: the device's dense peak at the precision in use; None leaves MFU null.
    """

    def __init__(self, peak_tflops: float | None = None) -> None:
        self.peak_tflops = peak_tflops
        self.step_ms: list[float] = []
        self.tokens: list[int] = []
        self.flops: list[float | None] = []

    def update(self, step_ms: float, tokens: int, flops: float | None = None) -> dict[str, float | None]:
        """Add one step; return that step's own rates."""
        self.step_ms.append(step_ms)
        self.tokens.append(tokens)
        self.flops.append(flops)
        return self._rates(step_ms, tokens, flops)

    def compute(self) -> dict[str, float | None]:
        """THR over the counted steps: the median of each step's rates; all None before any step."""
        if not self.step_ms:
            return {"tokens_per_sec": None, "tflops": None, "mfu_pct": None}
        rates = [self._rates(ms, tok, fl) for ms, tok, fl in zip(self.step_ms, self.tokens, self.flops)]

        def median(key: str) -> float | None:
            values = [r[key] for r in rates]
            return None if any(v is None for v in values) else percentile(sorted(values), 50)

        tflops = median("tflops")
        return {"tokens_per_sec": median("tokens_per_sec"), "tflops": tflops, "mfu_pct": mfu_pct(tflops, self.peak_tflops)}

    def _rates(self, step_ms: float, tokens: float, flops: float | None) -> dict[str, float | None]:
        seconds = step_ms / 1000.0  # the elapsed time of one step, computed once
        tflops = flops / seconds / 1e12 if flops is not None and seconds > 0 else None
        return {
            "tokens_per_sec": tokens / seconds if seconds > 0 else None,
            "tflops": tflops,
            "mfu_pct": mfu_pct(tflops, self.peak_tflops),
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
    """Logs ``throughput/tokens_per_sec``, ``throughput/tflops``, ``throughput/mfu_pct`` and ``memory/*`` per step.

    Works with any LightningModule: tokens are read off each batch's first tensor, (B, T). FLOPs come from the
    module's ``flops_per_batch(batch_size, seq_len, training)`` method if it has one (TFLOP/s and MFU are null
    otherwise). MFU uses ``peak_tflops``: "auto" looks the device and precision up in ``callbacks.devices``; an
    unknown device (any CPU, laptop part or MIG slice included) gives null with the reason, never a guess.
    """

    def __init__(self, timing: PhaseTimingCallback | None = None, peak_tflops: float | str | None = "auto",
                 precision: str | None = None) -> None:
        self.timing = timing
        self.peak_tflops_setting = peak_tflops
        self.precision = precision  # overrides the Trainer's precision for the peak lookup (e.g. "fp8", "tf32")
        self.peak_tflops: float | None = None
        self.peak_note: str | None = None  # why the peak (and so MFU) is unknown
        self.device_name: str | None = None
        self.throughput: dict[str, Throughput] = {}
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
        if self.peak_tflops is None:
            out["mfu_note"] = self.peak_note
        return out

    def memory_summary(self) -> dict[str, float]:
        """MEM now: the peak since this stage's setup (CUDA) or the process's peak (CPU)."""
        return peak_memory(self._device)

    def _on_records(self, trainer: L.Trainer, records: list[StepRecord]) -> None:
        module: Any = trainer.lightning_module
        flops_fn = getattr(module, "flops_per_batch", None)
        memory = peak_memory(self._device)  # host-side allocator statistics: no device synchronisation
        for r in records:
            timed = r.phases.get("step" if r.stage == "train" else "forward")
            if not r.counted or not r.tokens or timed is None:
                continue
            flops = None
            if callable(flops_fn):
                shapes = [batch_tokens(s) for s in r.micro_batches]
                flops = sum(flops_fn(b, t, training=r.stage == "train") for b, t in filter(None, shapes))
            acc = self.throughput.setdefault(r.stage, Throughput(self.peak_tflops))
            rates = acc.update(timed, r.tokens, flops)
            if not logged_per_step(r, trainer):
                continue
            prefix = METRIC_PREFIX.get(r.stage, "")
            metrics = {f"throughput/{prefix}{k}": v for k, v in rates.items() if v is not None}
            metrics.update({f"memory/{k}": v for k, v in memory.items()})
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=r.step)
