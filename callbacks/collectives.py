"""What each process of a multi-process run measures about itself: the time it spends blocked in the gradient
all-reduce, and the torch threads really set inside it.

``CollectiveWaits`` wraps DDP's own all-reduce in a communication hook (``DistributedDataParallel.register_comm_hook``,
the same averaging as DDP's default) that notes, on the host clock, when each gradient bucket's all-reduce was
launched and when it completed. A rank's wait in one optimizer step is from the moment its *last* bucket was ready
(its own backward is then done) to the moment every bucket's all-reduce had completed: the time it sat blocked, waiting
for the slowest rank to send its gradients (plus the transfer itself). A straggler's wait is near zero: the others
are already waiting for it. This is the wall time of the blocking collective on a CPU (gloo). On a GPU (NCCL) the
future completes when the collective is *queued*, not run, so the host clock says nothing there: the wait is None and
the trace's communication kernels say how long they ran (``gpt2_lightning.analysis``).

``TorchThreads`` (``--threads``): Lightning's launcher sets torch's threads to CPUs / processes when
``OMP_NUM_THREADS`` is unset, after anything the caller set; a callback's ``setup`` runs after it, so the number asked
for holds in every rank, and ``torch_threads`` is read back inside the process.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from .failures import one_line


class TorchThreads(Callback):
    """Sets torch's intra-op threads when the Trainer sets up, in every process: after Lightning's launcher."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        torch.set_num_threads(self.threads)


class CollectiveWaits(Callback):
    """Per optimizer step, the time this rank was blocked in DDP's gradient all-reduce (CPU), and its torch threads
    as really set (read inside the process when the stage ends).

    Args:
        warmup_steps: optimizer steps at the start of fit never counted (as PhaseTimingCallback's).
        counted_steps: optimizer steps counted after warm-up (None: all).
    """

    def __init__(self, warmup_steps: int = 0, counted_steps: int | None = None, timing: Any = None) -> None:
        self.warmup_steps, self.counted_steps = warmup_steps, counted_steps
        self.timing = timing  # a PhaseTimingCallback: each counted step less its own wait (``own_ms``)
        self.step_waits_ms: list[float] = []  # every optimizer step's wait, warm-up included, in order
        self.unavailable: str | None = None  # why no wait was measured (no DDP, a hook already set, a GPU)
        self.rank_figures: dict[str, list[dict[str, Any]]] = {}  # stage -> every rank's figures, in rank order
        self._events: list[tuple[float, float]] = []  # (ready, completed) of this step's buckets, host seconds
        self._lock = threading.Lock()  # the completion callback runs on the collective's own thread

    # ------------------------------------------------------------------ the all-reduce hook
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model = trainer.strategy.model
        if not isinstance(model, torch.nn.parallel.DistributedDataParallel):
            self.unavailable = "no DistributedDataParallel model (one process, or a strategy that shards)"
            return
        if trainer.strategy.root_device.type != "cpu":
            self.unavailable = "on a GPU the all-reduce's host future completes when it is queued: see the trace"
            return
        def hook(state, bucket):  # noqa: ANN001, ANN202 - DDP refuses annotations other than its own types
            return self._hook(state, bucket)

        try:
            model.register_comm_hook(None, hook)
        except (RuntimeError, ValueError) as e:  # a hook of the user's is already registered: theirs stays
            self.unavailable = f"DDP comm hook not registered ({one_line(e)})"

    def _hook(self, process_group: Any, bucket: Any) -> Any:
        import torch.distributed as dist

        ready = time.perf_counter()
        group = process_group if process_group is not None else dist.group.WORLD
        tensor = bucket.buffer()
        tensor.div_(group.size())  # DDP's default: the mean of every rank's gradients

        def done(fut: Any) -> Any:
            with self._lock:
                self._events.append((ready, time.perf_counter()))
            return fut.value()[0]

        return dist.all_reduce(tensor, group=group, async_op=True).get_future().then(done)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        with self._lock:
            events, self._events = self._events, []
        if events:  # DDP waited for every bucket before backward returned: the step's all-reduces are done
            self.step_waits_ms.append((max(e for _, e in events) - max(r for r, _ in events)) * 1000.0)
        elif self.unavailable is None and isinstance(trainer.strategy.model, torch.nn.parallel.DistributedDataParallel):
            self.step_waits_ms.append(0.0)  # an accumulation step without a sync cannot reach here; no bucket: no wait

    def counted_waits(self) -> list[float]:
        end = None if self.counted_steps is None else self.warmup_steps + self.counted_steps
        return self.step_waits_ms[self.warmup_steps:end]

    def waiting_ms(self, stage: str) -> float | None:
        """Median wait per counted step; None where nothing was measured (inference has no collective per step)."""
        waits = self.counted_waits() if stage == "train" else []
        return statistics.median(waits) if waits else None

    # ------------------------------------------------------------------ every rank's figures
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._gather(trainer, "train")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._gather(trainer, "predict")

    def own_ms(self, stage: str) -> float | None:
        """Median over counted steps of (step - that step's wait): the rank's own work per step. Step by step, since
        the ranks' steps end together (after the all-reduce) while a median of steps and one of waits, taken apart,
        can come from different steps on a busy machine."""
        if stage != "train" or self.timing is None:
            return None
        steps = [r.phases.get("step") for r in self.timing.counted("train")]
        waits = self.counted_waits()
        if not steps or len(steps) != len(waits) or any(s is None for s in steps):
            return None
        return statistics.median(s - w for s, w in zip(steps, waits))

    def mine(self, trainer: L.Trainer, stage: str) -> dict[str, Any]:
        return {"rank": trainer.global_rank, "torch_threads": torch.get_num_threads(),
                "waiting_ms": self.waiting_ms(stage), "own_ms": self.own_ms(stage),
                "waits_in": "all-reduce" if stage == "train" and self.unavailable is None else None,
                "wait_unavailable": self.unavailable if stage == "train" else None}

    def _gather(self, trainer: L.Trainer, stage: str) -> None:
        """Every rank's figures on every rank, once the stage has ended (one collective, never inside a step)."""
        mine = self.mine(trainer, stage)
        dist = torch.distributed
        if trainer.world_size <= 1 or not dist.is_available() or not dist.is_initialized():
            self.rank_figures[stage] = [mine]
            return
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, mine)
        self.rank_figures[stage] = sorted(gathered, key=lambda g: g["rank"])
