"""Stand-ins for what only a GPU machine has, so that the CUDA-only code paths run on a CPU in CI.

- ``SimulatedGpu``: a GPU on a scripted clock (``tests.helpers.ScriptedClock``). Work queued with ``launch(ms)`` runs
  in order after what is already queued; a CUDA event completes when the device reaches it (at once when nothing is
  queued before it, as on an idle stream), so events lag the host exactly as far as the queued work says; the launch
  queue is bounded (the host blocks when the device is too far behind, as CUDA's launch queue makes it);
  ``synchronize()`` makes the host wait for everything queued and is counted. ``installed()`` puts it in place of
  ``torch.cuda.Event`` / ``torch.cuda.synchronize`` and the host clock, and sends ``DeviceTimer`` down its CUDA path
  although the Trainer runs on the CPU.
- ``fake_nvml``: nvidia-ml-py's calls with a total-energy counter that moves every 100 ms at a fixed power.
- ``MemoryHistory``: ``torch.cuda.memory._record_memory_history`` / ``_dump_snapshot`` that log their calls (and a
  dump that takes host time, as a real one does).
"""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Iterator
from unittest import mock

from callbacks.timing import DeviceTimer

NVML_UPDATE_S = 0.1  # NVML's energy counter moves about every 100 ms


class SimulatedGpu:
    def __init__(self, clock, queue_ms: float = math.inf) -> None:
        self.clock = clock
        self.free_at = clock.t  # when the device has finished everything queued so far (clock seconds)
        self.queue_s = queue_ms / 1000.0
        self.syncs = 0
        gpu = self

        class Event:
            def __init__(self, enable_timing: bool = False) -> None:
                self.at: float | None = None

            def record(self, stream=None) -> None:
                self.at = max(gpu.free_at, gpu.clock.t)  # the device reaches it once the work before it is done

            def query(self) -> bool:
                return self.at is not None and gpu.clock.t >= self.at

            def elapsed_time(self, end: "Event") -> float:
                # like CUDA: reading an event the device has not reached is an error
                assert self.query() and end.query(), "elapsed_time on an event the device has not reached"
                return (end.at - self.at) * 1000.0

        self.Event = Event

    def launch(self, ms: float) -> None:
        """Queue ``ms`` of device work; the host blocks while the device is more than the queue's length behind."""
        now = self.clock.t
        self.free_at = max(self.free_at, now) + ms / 1000.0
        if self.free_at - now > self.queue_s:
            self.clock.t = self.free_at - self.queue_s

    def synchronize(self, device=None) -> None:
        self.syncs += 1
        self.clock.t = max(self.clock.t, self.free_at)

    def step_costs(self, host_ms: float | None = None):
        """A ``spend`` for tests.helpers.CostlyModule: each phase queues its cost as device work and takes
        ``host_ms`` of host time to launch it (None: as long as the device takes, a device that keeps up)."""

        def spend(ms: float) -> None:
            self.launch(ms)
            self.clock.advance(ms if host_ms is None else host_ms)

        return spend

    @contextlib.contextmanager
    def installed(self) -> Iterator["SimulatedGpu"]:
        original_init = DeviceTimer.__init__

        def cuda_path(timer, device) -> None:
            original_init(timer, device)
            timer.uses_cuda = True  # the event path, although the Trainer runs on the CPU

        with mock.patch("time.perf_counter", self.clock), mock.patch("torch.cuda.Event", self.Event), \
                mock.patch("torch.cuda.synchronize", self.synchronize), \
                mock.patch.object(DeviceTimer, "__init__", cuda_path):
            yield self


def fake_nvml(clock, watts: float = 300.0, uuids: tuple[str, ...] = ("GPU-00000000-aaaa",)) -> types.SimpleNamespace:
    """pynvml with GPUs whose total-energy counters (mJ) move every 100 ms at ``watts``, on ``clock``."""
    import pynvml

    def energy_mj(handle: int) -> int:
        updated = math.floor(round(clock.t / NVML_UPDATE_S, 9)) * NVML_UPDATE_S
        return round(updated * watts * 1000.0)

    return types.SimpleNamespace(
        NVMLError=pynvml.NVMLError, NVMLError_NotSupported=pynvml.NVMLError_NotSupported,
        NVMLError_NoPermission=pynvml.NVMLError_NoPermission, nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: len(uuids), nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUUID=lambda h: uuids[h], nvmlDeviceGetTotalEnergyConsumption=energy_mj,
        nvmlDeviceIsMigDeviceHandle=lambda h: False,
    )


class MemoryHistory:
    """Stand-ins for torch.cuda.memory's recording calls; ``calls`` logs them, a dump costs ``dump_ms`` of host time."""

    def __init__(self, clock=None, dump_ms: float = 0.0, dump_error: BaseException | None = None) -> None:
        self.clock, self.dump_ms, self.dump_error = clock, dump_ms, dump_error
        self.calls: list[tuple[str, object]] = []

    def record(self, enabled="all", **kwargs) -> None:
        self.calls.append(("record", enabled))

    def dump(self, path) -> None:
        self.calls.append(("dump", str(path)))
        if self.clock is not None:
            self.clock.advance(self.dump_ms)
        if self.dump_error is not None:
            raise self.dump_error

    @contextlib.contextmanager
    def installed(self) -> Iterator["MemoryHistory"]:
        import torch

        with mock.patch.object(torch.cuda.memory, "_record_memory_history", self.record), \
                mock.patch.object(torch.cuda.memory, "_dump_snapshot", self.dump):
            yield self
