"""The CUDA path of the timing and energy callbacks, run on the CPU against a simulated GPU (tests.cuda_standins): events
that complete when the device reaches them, a bounded launch queue, a counting synchronize, and NVML's energy counter
moving every 100 ms. Every expected figure is set by the simulation's costs, not by the code under test."""

import pytest

from callbacks import EnergyCallback, PhaseTimingCallback
from callbacks.energy_meters import NvmlMeter
from tests.cuda_standins import SimulatedGpu, fake_nvml
from tests.helpers import CostlyModule, ScriptedClock, loader, trainer

UUID = "GPU-00000000-aaaa"


def _nvml_meter(clock, watts=300.0):
    return NvmlMeter([UUID], nvml=fake_nvml(clock, watts, uuids=(UUID,)))


def test_host_clock_times_the_same_intervals_as_the_device_clock():
    """A device that keeps up and a 30 ms loader: both clocks read 30 ms of data and the same whole step."""
    clock = ScriptedClock()
    gpu = SimulatedGpu(clock)
    timing = PhaseTimingCallback(warmup_steps=1)
    module = CostlyModule(gpu.step_costs(), forward_ms=10, backward_ms=20, optimizer_ms=5, warmup_steps=1)
    with gpu.installed():
        trainer([timing], max_steps=5).fit(module, loader(clock.advance, data_ms=30))
    device, host = timing.summary(), timing.host_summary()["phases"]
    assert device["data"]["median_ms"] == pytest.approx(30.0)
    assert host["data"]["median_ms"] == pytest.approx(30.0) and host["data"]["min_ms"] == pytest.approx(30.0)
    assert device["step"]["median_ms"] == pytest.approx(65.0)
    assert host["step"]["median_ms"] == pytest.approx(65.0)


def _gpu_bound_fit(energy: bool):
    """35 ms of device work per step launched in 3 ms of host time: the GPU never catches up on its own."""
    clock = ScriptedClock()
    gpu = SimulatedGpu(clock, queue_ms=150)
    timing = PhaseTimingCallback(warmup_steps=2, counted_steps=5)
    callbacks = [timing]
    if energy:
        callbacks.insert(0, EnergyCallback(warmup_steps=2, counted_steps=5, min_window_s=0.5,
                                           meter=_nvml_meter(clock), clock=clock))
    module = CostlyModule(gpu.step_costs(host_ms=1.0), forward_ms=10, backward_ms=20, optimizer_ms=5, warmup_steps=2)
    with gpu.installed():
        trainer(callbacks, max_steps=7 if not energy else 1000).fit(module, loader(clock.advance, 0, length=1000))
    return timing, callbacks[0], gpu


def test_a_gpu_bound_run_never_catches_up_even_with_the_energy_windows_waits():
    timing, _, _ = _gpu_bound_fit(energy=False)
    assert timing.host_summary()["gpu_caught_up_steps"] == 0 and timing.host_summary()["counted_steps"] == 5
    timing, energy, gpu = _gpu_bound_fit(energy=True)
    assert gpu.syncs >= 2 and energy.result["source"] == "nvml"  # the window's own waits did happen
    host = timing.host_summary()
    # the step after the window's opening wait found the GPU idle because of that wait: not judged
    assert host["gpu_caught_up_steps"] == 0 and host["counted_steps"] == 4
    assert timing.summary()["step"]["n"] == 5


def test_inference_energy_window_is_planned_from_device_time():
    """40 ms forward passes launched in 0.5 ms: the host is 200 ms ahead. A plan from the host clock (2.5 ms for 5
    passes) asks for thousands of passes; from the device's clock about 50 make the 2 s window."""
    clock = ScriptedClock()
    gpu = SimulatedGpu(clock, queue_ms=200)
    energy = EnergyCallback(warmup_steps=1, counted_steps=5, min_window_s=2.0, meter=_nvml_meter(clock, 250.0),
                            clock=clock)
    timing = PhaseTimingCallback(warmup_steps=1, counted_steps=5)
    module = CostlyModule(gpu.step_costs(host_ms=0.5), forward_ms=40)
    with gpu.installed():
        trainer([energy, timing]).predict(module, energy.batches(loader(clock.advance, 0, length=8)),
                                          return_predictions=False)
    r = energy.result
    assert 2.0 <= r["window_s"] <= 2.3, r
    assert 50 <= r["window_steps"] <= 57  # 2 s of 40 ms passes, and the few the host had queued ahead
    assert r["joules"] == pytest.approx(250.0 * r["window_s"], abs=250.0 * 0.1)  # the counter moves every 100 ms
    assert timing.summary("predict")["forward"]["median_ms"] == pytest.approx(40.0)


class TickingClock(ScriptedClock):
    """Moves 0.1 ms at every read, so that every phase of a real (tiny) run takes some time."""

    def __call__(self) -> float:
        self.t += 1e-4
        return self.t


def test_memory_snapshot_stays_out_of_the_counted_steps(tmp_path, monkeypatch):
    """A profile run with --memory-snapshot on a (stand-in) GPU: recording and a 500 ms dump fall in warm-up steps;
    every counted step is as fast as without them."""
    from unittest import mock

    from gpt2_lightning.profile.memory import MemorySnapshotCallback
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.run import run_profile
    from tests.cuda_standins import MemoryHistory

    clock = TickingClock()
    history = MemoryHistory(clock, dump_ms=500)
    monkeypatch.setattr(MemorySnapshotCallback, "records", staticmethod(lambda trainer: True))
    cfg = ProfileConfig(accelerator="cpu", model="tiny", batch_size=1, seq_len=8, warmup_steps=2, steps=4,
                        experiments="train", memory_snapshot=True, no_energy=True)
    with history.installed(), mock.patch("time.perf_counter", clock):
        train = run_profile(cfg, tmp_path, write=False).experiments["train"]
    assert [c[0] for c in history.calls] == ["record", "dump", "record"]
    assert train["memory_snapshot"] == "memory-train.pickle"
    counted = [s for s in train["per_step"] if not s["warmup"]]
    assert len(counted) == 4 and max(s["step_ms"] for s in counted) < 100
    assert [s["step_ms"] >= 500 for s in train["per_step"]] == [False, True, False, False, False, False]
