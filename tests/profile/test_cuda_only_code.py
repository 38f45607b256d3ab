"""The rest of the code that runs only on a GPU (or only with several processes), executed here under stand-ins so
that a GPU's first run meets code that has already run: device start-up, NVML found by a CUDA device's UUID, peak
memory and the peak lookup on a CUDA device, NVTX ranges, the diagnosis's GPU branch end to end, and the per-rank
gathering of energy and timings."""

from types import SimpleNamespace
from unittest import mock

import pytest
import torch

from callbacks import PhaseTimingCallback, ThroughputCallback
from callbacks.timing import DeviceTimer
from tests.cuda_standins import SimulatedGpu, fake_nvml
from tests.helpers import CostlyModule, ScriptedClock, loader, trainer


def test_device_startup_is_the_wall_time_of_bringing_cuda_up(monkeypatch):
    clock = ScriptedClock()
    calls = []
    ones = torch.ones
    monkeypatch.setattr(torch.cuda, "init", lambda: (calls.append("init"), clock.advance(450)))
    monkeypatch.setattr(torch, "ones", lambda *a, device=None, **k: (calls.append(str(device)), ones(*a, **k))[1])
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: (calls.append("sync"), clock.advance(30)))
    with mock.patch("time.perf_counter", clock):
        ms = DeviceTimer(torch.device("cuda", 1)).startup_ms()
    assert ms == pytest.approx(480.0) and calls == ["init", "cuda:1", "sync"]
    assert DeviceTimer("cpu").startup_ms() == 0.0


def test_nvml_meter_for_a_cuda_device_is_found_by_its_uuid(monkeypatch):
    import callbacks.energy_meters as meters

    clock = ScriptedClock()
    uuids = ("GPU-11111111-aaaa", "GPU-22222222-bbbb")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: SimpleNamespace(uuid="22222222-bbbb"))
    monkeypatch.setattr(meters, "_load_pynvml", lambda: fake_nvml(clock, watts=400.0, uuids=uuids))
    meter = meters.meter_for(torch.device("cuda", 1))
    start = meter.read()
    clock.advance(1000)
    assert meter.source == "nvml" and meter.joules(start, meter.read()) == pytest.approx(400.0)


def test_throughput_on_a_cuda_device_takes_its_peak_and_the_allocators_peaks(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: calls.append(("reset", str(d))))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: 3 * 1024**3)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda d: 4 * 1024**3)
    timing = PhaseTimingCallback()
    cb = ThroughputCallback(timing)
    fake = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)), precision="bf16-mixed",
                           callbacks=[timing])
    cb.setup(fake, None, "fit")
    assert cb.peak_tflops == pytest.approx(989.4) and calls == [("reset", "cuda:0")]
    assert cb.memory_summary() == {"max_allocated_gib": 3.0, "max_reserved_gib": 4.0}


def test_nvtx_ranges_follow_the_phases_on_cuda(monkeypatch):
    pushed, popped = [], []
    monkeypatch.setattr(torch.cuda.nvtx, "range_push", lambda name: pushed.append(name))
    monkeypatch.setattr(torch.cuda.nvtx, "range_pop", lambda: popped.append(1))
    clock = ScriptedClock()
    gpu = SimulatedGpu(clock)
    timing = PhaseTimingCallback(warmup_steps=1, nvtx=True)
    with gpu.installed():
        trainer([timing], max_steps=2).fit(CostlyModule(gpu.step_costs(), warmup_steps=1), loader(clock.advance, 1))
    # the ranges of the phases run inside Lightning's hooks (data is waited for before the batch's first hook)
    assert pushed == ["phase/forward", "phase/backward", "phase/optimizer"] * 2
    assert len(popped) == len(pushed)  # every range closed


def test_diagnosis_gpu_branch_runs_its_extra_steps_end_to_end(tmp_path, monkeypatch):
    """The extra steps under a profiler that asks for CUDA activity, on the CPU (a trace with CPU operators only)."""
    from gpt2_lightning.profile import diagnosis as diagnosis_run
    from gpt2_lightning.profile.trainers import make_module
    from gpt2_lightning.profile.settings import ProfileConfig

    monkeypatch.setattr(diagnosis_run, "resolve_device", lambda accelerator: torch.device("cuda", 0))
    cfg = ProfileConfig(accelerator="cpu", model="tiny", batch_size=1, seq_len=8, diagnose_steps=1)
    d = diagnosis_run.diagnose_experiment(cfg, tmp_path, "train", "train", make_module(cfg),
                                          {"phases": {"step": {"median_ms": 5.0}}})
    assert d["steps"] == 1 and d["extra_steps"] == 1 and d["trace_file"] is None and d["verdict"]
    assert not list(tmp_path.iterdir())  # the trace was read, then deleted


def _distributed(monkeypatch, gathered):
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: len(gathered))
    monkeypatch.setattr(torch.distributed, "all_gather_object", lambda out, mine: out.__setitem__(
        slice(None), [mine if g is None else g for g in gathered]))


def test_energy_of_every_rank_is_added_up(monkeypatch):
    from callbacks.energy import _across_ranks, energy_figures

    other = energy_figures(300.0, 2.5, 10, 1000, 70.0, "nvml", 1)
    _distributed(monkeypatch, [None, other])
    r = _across_ranks(energy_figures(200.0, 2.0, 10, 1000, 60.0, "nvml", 1))
    assert r["joules"] == 500.0 and r["window_s"] == 2.5 and r["window_tokens"] == 2000 and r["devices"] == 2
    assert r["idle_watts"] == 130.0 and r["joules_per_token"] == 0.25
    _distributed(monkeypatch, [None, {"unavailable": "nvml: no permission"}])
    assert _across_ranks(other) == {"unavailable": "rank 1: nvml: no permission"}


def test_timing_summaries_of_every_rank_are_gathered_once_the_stage_ends(monkeypatch):
    clock = ScriptedClock()
    timing = PhaseTimingCallback(warmup_steps=1)
    with mock.patch("time.perf_counter", clock):
        trainer([timing], max_steps=3).fit(CostlyModule(clock.advance, warmup_steps=1), loader(clock.advance, 1))
    _distributed(monkeypatch, [None, {"rank": 1, "phases": {}, "batch_shape": (2, 4), "tokens": 8}])
    timing._gather_ranks(SimpleNamespace(world_size=2, global_rank=0), "train")
    ranks = timing.rank_summaries["train"]
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["phases"]["step"]["median_ms"] == pytest.approx(36.0)


def test_nvml_failures_past_the_foreseen_ones_are_unavailable_with_the_reason():
    import pynvml

    from callbacks.energy_meters import EnergyUnavailable, NvmlMeter

    def failing(**overrides):
        nvml = fake_nvml(ScriptedClock())
        for name, error in overrides.items():
            setattr(nvml, name, lambda *a, error=error: (_ for _ in ()).throw(error))
        return NvmlMeter([0], nvml=nvml)

    with pytest.raises(EnergyUnavailable, match="cannot open GPU 0"):
        failing(nvmlDeviceGetHandleByIndex=pynvml.NVMLError_GpuIsLost()).read()
    with pytest.raises(EnergyUnavailable, match="cannot read the energy counter"):
        failing(nvmlDeviceGetTotalEnergyConsumption=pynvml.NVMLError_GpuIsLost()).read()
    # a driver too old to know MIG: not a MIG slice, the counter is read
    assert failing(nvmlDeviceIsMigDeviceHandle=pynvml.NVMLError_FunctionNotFound()).read() == (300_000_000,)
