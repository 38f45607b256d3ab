"""On CUDA the timing callbacks never make the host wait for the GPU inside a step.

Without a GPU, the CUDA path of the timer is run with stand-in events and a counting `torch.cuda.synchronize`:
the number of synchronisations must not grow with the number of steps. The GPU test below checks the real thing.
"""

import time
from unittest import mock

import pytest
import torch

from callbacks import DeviceTimer, PhaseTimingCallback, ThroughputCallback
from tests.conftest import requires_cuda
from tests.helpers import CostlyModule, loader, sleep_ms, trainer


class FakeEvent:
    def __init__(self, enable_timing: bool = False) -> None:
        self.t = None

    def record(self, stream=None) -> None:
        self.t = time.perf_counter()

    def elapsed_time(self, end: "FakeEvent") -> float:
        return (end.t - self.t) * 1000.0


class CudaPathTimer(DeviceTimer):
    def __init__(self, device) -> None:
        super().__init__(device)
        self.uses_cuda = True  # take the event path although the Trainer runs on the CPU


def _count_syncs(steps: int) -> tuple[int, PhaseTimingCallback]:
    sync = mock.Mock()
    timing = PhaseTimingCallback(warmup_steps=1)
    with mock.patch("callbacks.phase_timing.DeviceTimer", CudaPathTimer), \
            mock.patch("torch.cuda.Event", FakeEvent), mock.patch("torch.cuda.synchronize", sync):
        module = CostlyModule(sleep_ms, forward_ms=0, backward_ms=0, optimizer_ms=0, warmup_steps=1, warmup_ms=0)
        trainer([timing], max_steps=steps).fit(module, loader(sleep_ms, 0))
    return sync.call_count, timing


def test_synchronize_count_does_not_grow_with_steps():
    few, t_few = _count_syncs(4)
    many, t_many = _count_syncs(40)
    assert t_few.summary()["step"]["n"] == 3 and t_many.summary()["step"]["n"] == 39
    assert few == many  # one at the end of init, one when training ends: none per step
    assert few <= 2


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
