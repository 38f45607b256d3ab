"""Tokens/s, achieved TFLOP/s, MFU and peak memory, from the step times PhaseTimingCallback resolves.

``Throughput`` is a plain accumulator with no Trainer in it; ``ThroughputCallback`` is the thin Lightning side that
feeds it. Rates come from the timing callback's durations, never from a clock of their own: one timer, one truth.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from callbacks.phase_timing import PhaseTimingCallback, StepRecord
from callbacks.timing import percentile
from gpt2_lightning.flops import mfu_pct, peak_tflops

GIB = 1024**3


class Throughput:
    """Accumulates (step time, tokens, FLOPs) per step; rates use the median step.

    Args:
        peak_tflops: the device's dense peak at the precision in use; None leaves MFU null.
    """

    def __init__(self, peak_tflops: float | None = None) -> None:
        self.peak_tflops = peak_tflops
        self.step_ms: list[float] = []
        self.tokens: list[int] = []
        self.flops: list[float] = []

    def update(self, step_ms: float, tokens: int, flops: float | None = None) -> dict[str, float | None]:
        """Add one step; return that step's own rates."""
        self.step_ms.append(step_ms)
        self.tokens.append(tokens)
        if flops is not None:
            self.flops.append(flops)
        return self._rates(step_ms, tokens, flops)

    def compute(self) -> dict[str, float | None]:
        """THR: tokens per batch over the median step time (and FLOPs likewise); all None before any step."""
        if not self.step_ms:
            return {"tokens_per_sec": None, "tflops": None, "mfu_pct": None}
        median = lambda xs: percentile(sorted(xs), 50)  # noqa: E731
        flops = median(self.flops) if len(self.flops) == len(self.step_ms) else None
        return self._rates(median(self.step_ms), median(self.tokens), flops)

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


def batch_tokens(shape: tuple[int, ...] | None) -> tuple[int, int] | None:
    """(batch size, sequence length) of a batch shape; a 1-D batch counts one token per sample."""
    if not shape:
        return None
    return (shape[0], shape[1]) if len(shape) >= 2 else (shape[0], 1)


class ThroughputCallback(Callback):
    """Logs ``throughput/tokens_per_sec``, ``throughput/tflops``, ``throughput/mfu_pct`` and ``memory/*`` per step.

    Works with any LightningModule: tokens are read off the batch's first tensor, (B, T). FLOPs come from the
    module's ``flops_per_batch(batch_size, seq_len, training)`` method if it has one (TFLOP/s and MFU are null
    otherwise). MFU uses ``peak_tflops``: "auto" looks the device and precision up in ``gpt2_lightning.flops``;
    an unknown device (any CPU included) gives null, never a guess.
    """

    def __init__(self, timing: PhaseTimingCallback | None = None, peak_tflops: float | str | None = "auto") -> None:
        self.timing = timing
        self.peak_tflops_setting = peak_tflops
        self.peak_tflops: float | None = None
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
            tf32 = torch.get_float32_matmul_precision() != "highest"
            self.peak_tflops = peak_tflops(self.device_name or "", str(trainer.precision), tf32)
        else:
            self.peak_tflops = self.peak_tflops_setting

    def summary(self, stage: str = "train") -> dict[str, float | None]:
        acc = self.throughput.get(stage)
        return acc.compute() if acc is not None else Throughput(self.peak_tflops).compute()

    def memory_summary(self) -> dict[str, float]:
        """MEM now: the peak since this stage's setup (CUDA) or the process's peak (CPU)."""
        return peak_memory(self._device)

    def _on_records(self, trainer: L.Trainer, records: list[StepRecord]) -> None:
        module: Any = trainer.lightning_module
        flops_fn = getattr(module, "flops_per_batch", None)
        memory = peak_memory(self._device)  # host-side allocator statistics: no device synchronisation
        for r in records:
            shape = batch_tokens(r.batch_shape)
            timed = r.phases.get("step" if r.stage == "train" else "forward")
            if r.warmup or shape is None or timed is None:
                continue
            batch, seq = shape
            flops = flops_fn(batch, seq, training=r.stage == "train") if callable(flops_fn) else None
            acc = self.throughput.setdefault(r.stage, Throughput(self.peak_tflops))
            rates = acc.update(timed, batch * seq, flops)
            prefix = {"validate": "val_", "test": "test_"}.get(r.stage, "")
            metrics = {f"throughput/{prefix}{k}": v for k, v in rates.items() if v is not None}
            metrics.update({f"memory/{k}": v for k, v in memory.items()})
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=r.step)
