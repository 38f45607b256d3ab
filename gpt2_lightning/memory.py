"""Where an experiment's peak memory goes: a split by tensor sizes, and CUDA allocation-history snapshots.

The split needs no recording: parameters, gradients and optimizer state are tensors whose sizes are known after the
run; whatever else the allocator's peak held (activations kept for backward, matmul workspaces, fragmentation) is
"other". ``--memory-snapshot`` additionally records every CUDA allocation with its stack
(``torch.cuda.memory._record_memory_history``) from the start of the experiment (so an out-of-memory in a warm-up
step is caught too) through its first MEMORY_SNAPSHOT_STEPS counted steps, and writes ``memory-<experiment>.pickle``
for pytorch.org/memory_viz. Recording slows the host (a stack per allocation): those steps' times include it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

GIB = 1024**3
MEMORY_SNAPSHOT_STEPS = 2  # counted steps recorded after the warm-up ones: a steady step's allocations, twice
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
    """Records CUDA allocation history from ``setup`` (before the model is built) to the end of the first
    ``steps`` counted batches, then writes the snapshot; on an out-of-memory error it writes what was recorded."""

    def __init__(self, path: Path, warmup_steps: int, steps: int = MEMORY_SNAPSHOT_STEPS) -> None:
        self.path, self.last_batch = Path(path), warmup_steps + steps
        self.recording = False
        self.written: Path | None = None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if trainer.strategy.root_device.type == "cuda" and trainer.global_rank == 0:
            torch.cuda.memory._record_memory_history(max_entries=MAX_ENTRIES)
            self.recording = True

    def _batch_end(self, batch_idx: int) -> None:
        if self.recording and batch_idx + 1 >= self.last_batch:
            self._write()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._batch_end(batch_idx)

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                             dataloader_idx: int = 0) -> None:
        self._batch_end(batch_idx)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.recording:  # fewer batches than asked for: what was recorded
            self._write()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.recording:
            if isinstance(exception, torch.cuda.OutOfMemoryError):
                self._write()
            else:
                self._stop()

    def _write(self) -> None:
        torch.cuda.memory._dump_snapshot(str(self.path))
        self.written = self.path
        self._stop()

    def _stop(self) -> None:
        torch.cuda.memory._record_memory_history(enabled=None)
        self.recording = False
