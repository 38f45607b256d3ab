"""Where an experiment's peak memory goes: a split by tensor sizes, and CUDA allocation-history snapshots.

The split needs no recording: parameters, gradients and optimizer state are tensors whose sizes are known after the
run; whatever else the allocator's peak held (activations kept for backward, matmul workspaces, fragmentation) is
"other". ``--memory-snapshot`` additionally records every CUDA allocation with its stack
(``torch.cuda.memory._record_memory_history``) from the start of the experiment (so an out-of-memory in a warm-up
step is caught too) through its warm-up steps, and writes ``memory-<experiment>.pickle`` for pytorch.org/memory_viz.
Recording slows the host (a stack per allocation) and the dump takes seconds: both stay inside the warm-up steps,
which are never counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from callbacks.failures import one_line
from callbacks.timing import DeviceTimer

GIB = 1024**3
MAX_ENTRIES = 200_000  # allocation events kept (a gpt2 train step makes a few thousand)


def _bytes(tensors: Any) -> int:
    seen: set[int] = set()
    total = 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:  # tied weights (wte = lm_head) count once
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def optimizer_state_tensors(optimizers: Any) -> list[torch.Tensor]:
    return [v for opt in optimizers or [] for state in opt.state.values() for v in state.values()
            if isinstance(v, torch.Tensor)]


def memory_breakdown(module: torch.nn.Module, optimizers: Any, memory: dict[str, Any]) -> dict[str, float | None]:
    """GiB held by parameters, gradients and optimizer state, and the rest of the allocator's peak (``other_gib``,
    None without one: on a CPU the process's RSS also holds the libraries, so no honest rest can be given)."""
    params = list(module.parameters())
    split = {
        "parameters_gib": _bytes(params) / GIB,
        "gradients_gib": _bytes(p.grad for p in params if p.grad is not None) / GIB,
        "optimizer_state_gib": _bytes(optimizer_state_tensors(optimizers)) / GIB,
    }
    peak = memory.get("max_allocated_gib")
    tensors = sum(split.values())
    return split | {"other_gib": None if peak is None else max(0.0, peak - tensors), "peak_gib": peak}


class MemorySnapshotCallback(Callback):
    """Records CUDA allocation history from ``setup`` (before the model is built) through the warm-up steps, then
    writes the snapshot at the end of the last warm-up step (with no warm-up step, when the stage starts: the build
    alone). Put it *before* the timing callback: the dump then falls inside that warm-up step, so neither the
    recording nor the dump is inside a counted step. On an out-of-memory error it writes what was recorded.

    A failure of its own (recording refused, a dump that cannot be written) is kept in ``error`` and never stops the
    run; ``written`` is the snapshot's path once written."""

    def __init__(self, path: Path, warmup_steps: int) -> None:
        self.path, self.last_batch = Path(path), warmup_steps
        self.recording = False
        self.written: Path | None = None
        self.error: str | None = None

    @staticmethod
    def records(trainer: Any) -> bool:
        """Only a CUDA device has an allocation history, and one process records it."""
        return trainer.strategy.root_device.type == "cuda" and trainer.global_rank == 0

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.records(trainer):
            self._guarded(self._start)

    def _start(self) -> None:
        torch.cuda.memory._record_memory_history(max_entries=MAX_ENTRIES)
        self.recording = True

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._batch_end(-1)

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self._batch_end(-1)

    def _batch_end(self, batch_idx: int) -> None:
        if self.recording and batch_idx + 1 >= self.last_batch:
            self._guarded(self._write)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._batch_end(batch_idx)

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                             dataloader_idx: int = 0) -> None:
        self._batch_end(batch_idx)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.recording:  # fewer batches than asked for: what was recorded
            self._guarded(self._write)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.recording:
            self._guarded(self._write if isinstance(exception, torch.cuda.OutOfMemoryError) else self._stop)

    def _write(self) -> None:
        DeviceTimer.note_tool_wait()  # the host is held up while the GPU drains: not the GPU catching up by itself
        try:
            torch.cuda.memory._dump_snapshot(str(self.path))
        finally:
            self._stop()
        self.written = self.path

    def _stop(self) -> None:
        self.recording = False
        torch.cuda.memory._record_memory_history(enabled=None)

    def _guarded(self, fn: Any) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - an add-on: its failure is reported, the measured figures stand
            self.error = one_line(e)
            if self.recording:
                self.recording = False
                try:
                    torch.cuda.memory._record_memory_history(enabled=None)
                except Exception:  # noqa: BLE001 - already failing; the first error is the one to report
                    pass
