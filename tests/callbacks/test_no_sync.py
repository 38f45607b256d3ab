"""On CUDA the timing callbacks never make the host wait for the GPU inside a step.

Without a GPU, the CUDA path of the timer is run with stand-in events and a counting `torch.cuda.synchronize`:
the number of synchronisations must not grow with the number of steps. The GPU test below checks the real thing.
"""

import time
from unittest import mock

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from callbacks import DeviceTimer, PhaseTimingCallback, ThroughputCallback
from tests.conftest import requires_cuda
from tests.helpers import CostlyModule, loader, sleep_ms, trainer


class FakeDevice:
    """A device that lags LAG marks behind the host, as a busy GPU does; synchronize() lets it catch up."""

    LAG = 3

    def __init__(self) -> None:
        self.recorded = 0
        self.caught_up = False

    def synchronize(self, device=None) -> None:
        self.caught_up = True


class FakeEvent:
    device: FakeDevice

    def __init__(self, enable_timing: bool = False) -> None:
        self.t = None
        self.seq = None

    def record(self, stream=None) -> None:
        self.t = time.perf_counter()
        self.device.recorded += 1
        self.device.caught_up = False
        self.seq = self.device.recorded

    def query(self) -> bool:
        return self.device.caught_up or self.seq <= self.device.recorded - FakeDevice.LAG

    def elapsed_time(self, end: "FakeEvent") -> float:
        # like CUDA, reading an event the device has not reached is an error
        assert self.query() and end.query(), "elapsed_time on an event the device has not reached"
        return (end.t - self.t) * 1000.0


class CudaPathTimer(DeviceTimer):
    def __init__(self, device) -> None:
        super().__init__(device)
        self.uses_cuda = True  # take the event path although the Trainer runs on the CPU


def _count_syncs(steps: int) -> tuple[int, PhaseTimingCallback]:
    FakeEvent.device = device = FakeDevice()
    sync = mock.Mock(side_effect=device.synchronize)
    timing = PhaseTimingCallback(warmup_steps=1)
    seen = []
    timing.add_listener(lambda trainer, records: seen.append(len(records)))
    with mock.patch("callbacks.phase_timing.DeviceTimer", CudaPathTimer), \
            mock.patch("torch.cuda.Event", FakeEvent), mock.patch("torch.cuda.synchronize", sync):
        module = CostlyModule(sleep_ms, forward_ms=0, backward_ms=0, optimizer_ms=0, warmup_steps=1, warmup_ms=0)
        trainer([timing], max_steps=steps).fit(module, loader(sleep_ms, 0))
    # while steps ran, finished steps were resolved as they completed, without waiting: many small batches
    assert len(seen) >= steps - 2 and sum(seen) == steps
    return sync.call_count, timing


def test_synchronize_count_does_not_grow_with_steps():
    few, t_few = _count_syncs(4)
    many, t_many = _count_syncs(40)
    assert t_few.summary()["step"]["n"] == 3 and t_many.summary()["step"]["n"] == 39
    assert few == many  # one at the end of init, one when training ends: none per step
    assert few <= 2


@pytest.mark.parametrize("lag, caught_up", [(0, 4), (3, 0)])
def test_host_clock_beside_device_and_caught_up_steps(lag, caught_up, monkeypatch):
    """A device that keeps up (lag 0) has finished each step before the next begins: it waited for the host in every
    counted step; one that lags three marks behind never did. Each phase also gets its host-clock time."""
    from gpt2_lightning.report.timing import host_line

    monkeypatch.setattr(FakeDevice, "LAG", lag)
    _, timing = _count_syncs(5)
    host = timing.host_summary()
    assert host["counted_steps"] == 4 and host["gpu_caught_up_steps"] == caught_up
    assert set(host["phases"]) == {"data", "forward", "backward", "optimizer", "step"}
    line = host_line("train", {"host": host, "phases": timing.summary()})
    assert line.startswith("train: host clock / GPU clock, median ms: data ")
    assert line.endswith(f"the GPU caught up with the host in {caught_up} of 4 steps")


def test_no_host_block_on_the_cpu():
    from tests.helpers import ScriptedClock

    clock = ScriptedClock()
    timing = PhaseTimingCallback(warmup_steps=1)
    with mock.patch("time.perf_counter", clock):
        module = CostlyModule(clock.advance, warmup_steps=1)
        trainer([timing], max_steps=3).fit(module, loader(clock.advance, 1))
    assert timing.host_summary() == {}


class SyncsAreErrors(Callback):
    """Turns any host-device synchronisation into an error from the first counted step's start to the last counted
    step's end (placed after the timing callbacks, so their batch-end work is inside the window)."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last, self.steps_checked = first, last, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.first:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.first <= batch_idx <= self.last:
            self.steps_checked += 1
        if batch_idx == self.last:
            torch.cuda.set_sync_debug_mode("default")


@requires_cuda
@pytest.mark.gpu
def test_gpu_counted_steps_never_synchronise(tmp_path):
    """Not only torch.cuda.synchronize: any sync (.item(), a device-to-host copy) inside the counted steps fails,
    with the timing, throughput and loss callbacks and a real TensorBoard logger on."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from callbacks.loss_history import LossHistory
    from gpt2_lightning import GPT2LightningModule, GPTConfig, SyntheticTokenDataModule

    timing = PhaseTimingCallback(warmup_steps=2)
    guard = SyncsAreErrors(first=2, last=9)
    module = GPT2LightningModule(GPTConfig.from_name("tiny"))
    dm = SyntheticTokenDataModule(1024, 64, 2, num_batches=10)
    logger = TensorBoardLogger(str(tmp_path), name="tb", max_queue=1000)
    try:
        trainer([timing, ThroughputCallback(timing), LossHistory(), guard], accelerator="gpu", max_steps=10,
                logger=logger, log_every_n_steps=0).fit(module, dm)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert guard.steps_checked == 8 and timing.summary()["step"]["n"] == 8


@requires_cuda
@pytest.mark.gpu
def test_gpu_no_sync_per_step():
    from gpt2_lightning import GPT2LightningModule, GPTConfig, SyntheticTokenDataModule

    counts = []
    for steps in (4, 12):
        timing = PhaseTimingCallback(warmup_steps=1)
        module = GPT2LightningModule(GPTConfig.from_name("tiny"))
        dm = SyntheticTokenDataModule(1024, 64, 2, num_batches=steps + 1)
        sync = mock.Mock(wraps=torch.cuda.synchronize)
        with mock.patch("torch.cuda.synchronize", sync):
            trainer([timing, ThroughputCallback(timing)], accelerator="gpu", max_steps=steps).fit(module, dm)
        counts.append(sync.call_count)
        assert timing.summary()["step"]["n"] == steps - 1
    assert counts[0] == counts[1]
