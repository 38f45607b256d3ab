"""Planted cases on a real GPU (skipped without one): the diagnosis must see a spinning GPU as busy and a sleeping host
as launch-bound. The un-profiled step comes from PhaseTimingCallback, the kernels from the same profiled extra steps a
profile run makes (kernel_profiler + ProfilerStepCallback)."""

import time

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from callbacks import PhaseTimingCallback
from gpt2_lightning.analysis.verdict import diagnose
from gpt2_lightning.profile.profilers import ProfilerStepCallback, kernel_profiler
from gpt2_lightning.analysis.trace_analysis import analyze_trace
from tests.conftest import requires_cuda

pytestmark = [requires_cuda, pytest.mark.gpu]


def _cycles_per_ms() -> float:
    """torch.cuda._sleep spins for a number of clock cycles: how many make a millisecond on this GPU."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(1_000_000)  # warm-up
    start.record()
    torch.cuda._sleep(10_000_000)
    end.record()
    end.synchronize()
    return 10_000_000 / start.elapsed_time(end)


class Planted(L.LightningModule):
    """Each phase (forward, backward, optimizer) spends gpu_ms spinning on the GPU and host_ms sleeping on the host."""

    def __init__(self, gpu_ms: float, host_ms: float) -> None:
        super().__init__()
        self.gpu_ms, self.host_ms = gpu_ms, host_ms
        self.cycles = _cycles_per_ms() if gpu_ms else 0.0
        self.layer = torch.nn.Linear(4, 4)

    def _spend(self) -> None:
        if self.gpu_ms:
            torch.cuda._sleep(int(self.gpu_ms * self.cycles))
        if self.host_ms:
            time.sleep(self.host_ms / 1000.0)

    def training_step(self, batch, batch_idx):
        self._spend()
        return self.layer(batch[0].float()).pow(2).mean()

    def backward(self, loss, *args, **kwargs):
        super().backward(loss, *args, **kwargs)
        self._spend()

    def on_before_optimizer_step(self, optimizer):
        self._spend()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _trainer(callbacks, steps):
    return L.Trainer(accelerator="gpu", devices=1, max_steps=steps, callbacks=callbacks, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


def _diagnose(module, tmp_path):
    data = DataLoader(TensorDataset(torch.ones(64, 4)), batch_size=2)
    timing = PhaseTimingCallback(warmup_steps=2)
    _trainer([timing], 7).fit(module, data)
    step_ms = timing.summary("train")["step"]["median_ms"]
    path = tmp_path / "t.pt.trace.json.gz"
    with kernel_profiler(path, 3, cuda=True) as prof:
        _trainer([ProfilerStepCallback(prof)], 4).fit(module, data)
    return diagnose(analyze_trace(path), step_ms=step_ms)


def test_spinning_gpu_with_an_idle_host_is_busy(tmp_path):
    d = _diagnose(Planted(gpu_ms=20.0, host_ms=0.0), tmp_path)
    assert d["busy_pct"] >= 95, d
    assert not any(s.startswith("The GPU is idle") for s in d["verdict"])


def test_sleeping_host_around_trivial_gpu_work_is_launch_bound(tmp_path):
    d = _diagnose(Planted(gpu_ms=0.0, host_ms=10.0), tmp_path)
    assert d["busy_pct"] <= 20, d
    assert d["verdict"][0].startswith("The GPU is idle")
