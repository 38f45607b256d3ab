"""Small LightningModules and data whose every phase takes a known time, on a scripted or a real clock."""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, Dataset


class RecordingLogger(Logger):
    """Keeps every log_metrics call: (step, metrics)."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[int, dict]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.logged.append((step, dict(metrics)))


class ScriptedClock:
    """Stands in for time.perf_counter: time moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, ms: float) -> None:
        self.t += ms / 1000.0


class WallMeter:
    """An energy counter drawing a steady ``watts`` on the real clock, in the units of ``source``'s counter (RAPL:
    microjoules, NVML: millijoules): energy measured end to end on a machine without counters."""

    devices = 1

    def __init__(self, watts: float, source: str = "rapl") -> None:
        self.watts, self.source = watts, source
        self.per_joule = 1e6 if source == "rapl" else 1e3

    def read(self):
        return (round(time.perf_counter() * self.watts * self.per_joule),)

    def joules(self, start, end):
        return (end[0] - start[0]) / self.per_joule


def sleep_ms(ms: float) -> None:
    time.sleep(ms / 1000.0)


class CostlyDataset(Dataset):
    def __init__(self, spend, data_ms: float, length: int = 64) -> None:
        self.spend, self.data_ms, self.length = spend, data_ms, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        self.spend(self.data_ms)
        return torch.ones(2, 4, dtype=torch.long), torch.zeros(2, 4)  # (B=2, T=4) token ids


class CostlyOptimizer(torch.optim.SGD):
    def __init__(self, params, spend, cost_ms) -> None:
        super().__init__(params, lr=0.01)
        self.spend, self.cost_ms = spend, cost_ms

    def step(self, closure=None):
        loss = closure() if closure is not None else None  # forward + backward, then on_before_optimizer_step
        self.spend(self.cost_ms())
        super().step()
        return loss


class CostlyModule(L.LightningModule):
    """Forward, backward and optimizer each spend a known time; warm-up steps spend `warmup_ms` on each instead."""

    def __init__(self, spend, forward_ms=10.0, backward_ms=20.0, optimizer_ms=5.0, warmup_steps=2, warmup_ms=100.0,
                 build_ms=0.0, optimizer_build_ms=0.0) -> None:
        super().__init__()
        self.spend = spend
        self.costs = dict(forward=forward_ms, backward=backward_ms, optimizer=optimizer_ms)
        self.warmup_steps, self.warmup_ms = warmup_steps, warmup_ms
        self.build_ms, self.optimizer_build_ms = build_ms, optimizer_build_ms
        self.layer = torch.nn.Linear(4, 4)
        self.batches = 0

    def _cost(self, phase: str) -> float:
        return self.warmup_ms if self.batches < self.warmup_steps else self.costs[phase]

    def configure_model(self) -> None:
        self.spend(self.build_ms)

    def training_step(self, batch, batch_idx):
        self.spend(self._cost("forward"))
        x, _ = batch
        return self.layer(x.float()).pow(2).mean()

    def backward(self, loss, *args, **kwargs):
        super().backward(loss, *args, **kwargs)
        self.spend(self._cost("backward"))

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.batches += 1

    def predict_step(self, batch, batch_idx):
        self.spend(self.costs["forward"])
        return None

    def configure_optimizers(self):
        self.spend(self.optimizer_build_ms)
        return CostlyOptimizer(self.parameters(), self.spend, lambda: self._cost("optimizer"))


def loader(spend, data_ms: float, length: int = 64) -> DataLoader:
    return DataLoader(CostlyDataset(spend, data_ms, length), batch_size=None)


def trainer(callbacks, **kw) -> L.Trainer:
    args = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    args.update(kw)
    return L.Trainer(callbacks=callbacks, **args)
