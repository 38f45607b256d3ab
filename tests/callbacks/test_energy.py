"""Energy: counters read right (NVML, RAPL and its wrap-around), unavailable with a reason, a window of >= 2 s made of
steady steps, exact joules per token from a scripted counter, and timings left untouched by the reads."""

import pathlib
import types
from unittest import mock

import lightning as L
import pytest

from callbacks import EnergyCallback, PhaseTimingCallback
from callbacks.energy import EnergyWindow, energy_figures
from callbacks.energy_meters import EnergyUnavailable, NvmlMeter, RaplMeter, measure_watts
from tests.helpers import CostlyModule, RecordingLogger, ScriptedClock, WallMeter, loader, trainer

# step costs that are exact binary fractions of a second, so scripted times add up exactly
STEP = dict(forward_ms=62.5, backward_ms=31.25, optimizer_ms=31.25)  # 125 ms = 1/8 s per step
TOKENS_PER_STEP = 2 * 4  # tests.helpers batches are (B=2, T=4)


class ScriptedMeter:
    """A counter that integrates `watts` over the scripted clock (mJ, like NVML); a read may cost clock time."""

    source, devices = "nvml", 1

    def __init__(self, clock, watts, read_ms=0.0):
        self.clock, self.watts, self.read_ms, self.reads = clock, watts, read_ms, 0

    def read(self):
        self.reads += 1
        value = (round(self.clock.t * self.watts * 1000),)
        self.clock.advance(self.read_ms)
        return value

    def joules(self, start, end):
        return (end[0] - start[0]) / 1000.0


class BrokenMeter:
    source, devices = "nvml", 1

    def read(self):
        raise EnergyUnavailable("nvml: no NVIDIA driver to talk to (scripted)")

    def joules(self, start, end):
        raise AssertionError("never called")


def fit(clock, energy, max_steps=1000, callbacks_after=(), **module_kw):
    module = CostlyModule(clock.advance, warmup_steps=2, **{**STEP, **module_kw})
    with mock.patch("time.perf_counter", clock):
        t = trainer([energy, *callbacks_after], max_steps=max_steps, logger=RecordingLogger())
        t.fit(module, loader(clock.advance, data_ms=0, length=1000))
    return t


# ------------------------------------------------------------------------------------------------ the window in fit
def test_exact_joules_per_token_from_a_scripted_counter():
    clock = ScriptedClock()
    energy = EnergyCallback(warmup_steps=2, counted_steps=16, meter=ScriptedMeter(clock, watts=250.0), clock=clock)
    t = fit(clock, energy)
    r = energy.result
    assert r["window_steps"] == 16 and r["window_s"] == 2.0  # 16 x 1/8 s: long enough, no extra step needed
    assert r["joules"] == 500.0 and r["avg_watts"] == 250.0
    assert r["window_tokens"] == 16 * TOKENS_PER_STEP
    assert r["joules_per_token"] == 500.0 / 128 == 3.90625
    assert r["tokens_per_kwh"] == pytest.approx(128 / (500.0 / 3.6e6), rel=1e-12)
    assert r["source"] == "nvml" and r["devices"] == 1
    assert r["idle_watts"] is None and r["joules_above_idle"] is None
    # long enough at the last counted step: fit stops there, and the window closes at the end of fit
    assert t.global_step == 2 + 16


def test_only_the_windows_batches_are_counted():
    """Counting a batch's tokens is device work (a mask's sum and its copy): none in warm-up, none after the window."""
    import callbacks.energy as energy_module

    clock = ScriptedClock()
    energy = EnergyCallback(warmup_steps=2, counted_steps=16, meter=ScriptedMeter(clock, watts=250.0), clock=clock)
    with mock.patch.object(energy_module, "count_tokens", wraps=energy_module.count_tokens) as counted:
        fit(clock, energy)
    assert counted.call_count == 16 == energy.result["window_steps"]  # the 2 warm-up batches are not counted
    assert energy.result["window_tokens"] == 16 * TOKENS_PER_STEP


def test_short_steps_get_extra_steps_until_the_window_is_two_seconds():
    clock = ScriptedClock()
    energy = EnergyCallback(warmup_steps=2, counted_steps=5, idle_watts=100.0, meter=ScriptedMeter(clock, 300.0),
                            clock=clock)
    t = fit(clock, energy)
    r = energy.result
    # 5 counted steps are 0.625 s; at that rate 11 more make 2 s exactly: the window holds 16 steps
    assert r["window_steps"] == 16 and r["window_s"] == 2.0
    assert r["joules"] == 600.0 and r["joules_above_idle"] == 600.0 - 100.0 * 2.0
    assert r["joules_per_token"] == 600.0 / (16 * TOKENS_PER_STEP)
    assert t.global_step == 2 + 16


def test_uneven_steps_extend_the_window_again():
    """The plan from the counted steps' rate falls short when later steps are faster: a second look extends it."""
    clock = ScriptedClock()
    energy = EnergyCallback(warmup_steps=0, counted_steps=2, min_window_s=1.0, meter=ScriptedMeter(clock, 10.0),
                            clock=clock)
    module = CostlyModule(clock.advance, warmup_steps=0, forward_ms=125, backward_ms=125, optimizer_ms=0)
    original = module._cost

    def cheaper_after_two(phase):  # 0.25 s per step for 2 steps, then 0.0625 s
        return original(phase) if module.batches < 2 else {"forward": 31.25, "backward": 31.25}.get(phase, 0.0)

    module._cost = cheaper_after_two
    with mock.patch("time.perf_counter", clock):
        trainer([energy], max_steps=1000).fit(module, loader(clock.advance, data_ms=0, length=1000))
    r = energy.result
    # looks at steps 2 (0.5 s: plan 2 more), 4 (0.625 s: 3 more), 7 (0.8125 s: 2 more), 9 (0.9375 s: 1 more), 10
    assert r["window_s"] == 1.0
    assert r["window_steps"] == 10  # 0.5 + 8 x 0.0625 = 1.0


@pytest.mark.parametrize("world_size", [1, 2])
def test_reads_and_waits_fall_in_uncounted_steps(world_size):
    """The opening read lands in the last warm-up step; the closing read after the last counted step's end: at the
    end of fit alone, in the next (extra) step's data time with several processes (whose look is a collective)."""
    clock = ScriptedClock()
    read_ms = 7.8125  # 1/128 s
    energy = EnergyCallback(warmup_steps=2, counted_steps=5, min_window_s=0.5,
                            meter=ScriptedMeter(clock, 100.0, read_ms=read_ms), clock=clock)
    timing = PhaseTimingCallback(warmup_steps=2)
    with mock.patch.object(L.Trainer, "world_size", new_callable=mock.PropertyMock, return_value=world_size):
        fit(clock, energy, callbacks_after=[timing], warmup_ms=62.5)
    records = [r for r in timing.records if r.stage == "train"]
    assert len(records) == 2 + 5 + (world_size > 1)
    for r in records[2:7]:
        assert r.phases["step"] == 125.0 and r.phases["data"] == 0.0, r
    assert records[1].phases["step"] == 3 * 62.5 + read_ms  # the last warm-up step: its 3 phases, and the read
    if world_size > 1:
        assert records[7].phases["data"] == read_ms  # the extra step's data time holds the closing read
    assert energy.meter.reads == 2
    assert energy.result["window_steps"] == 5 and energy.result["window_s"] == read_ms / 1000 + 5 * 0.125


def test_energy_callback_must_come_before_the_timing_callback():
    clock = ScriptedClock()
    energy = EnergyCallback(meter=ScriptedMeter(clock, 1.0), clock=clock)
    with pytest.raises(ValueError, match="before PhaseTimingCallback"):
        module = CostlyModule(clock.advance)
        with mock.patch("time.perf_counter", clock):
            trainer([PhaseTimingCallback(), energy], max_steps=3).fit(module, loader(clock.advance, 0))


def test_logs_energy_and_power_scalars():
    clock = ScriptedClock()
    energy = EnergyCallback(warmup_steps=2, counted_steps=16, idle_watts=50.0, meter=ScriptedMeter(clock, 250.0),
                            clock=clock)
    t = fit(clock, energy)
    logged = [m for _, m in t.logger.logged if any(k.startswith("energy/") for k in m)]
    assert logged == [{
        "energy/joules": 500.0, "energy/joules_above_idle": 400.0, "energy/joules_per_token": 3.90625,
        "energy/tokens_per_kwh": pytest.approx(128 / (500.0 / 3.6e6)), "energy/window_s": 2.0,
        "power/avg_watts": 250.0, "power/idle_watts": 50.0,
    }]


def test_unavailable_energy_stops_with_the_counted_steps():
    clock = ScriptedClock()
    energy = EnergyCallback(warmup_steps=2, counted_steps=3, meter=BrokenMeter(), clock=clock)
    t = fit(clock, energy)
    assert energy.result == {"unavailable": "nvml: no NVIDIA driver to talk to (scripted)"}
    assert t.global_step == 5  # no extra step: there is no window to fill


def test_a_stage_that_ends_early_gives_a_short_window_not_a_guess():
    clock = ScriptedClock()
    energy = EnergyCallback(warmup_steps=2, counted_steps=3, meter=ScriptedMeter(clock, 100.0), clock=clock)
    fit(clock, energy, max_steps=5)
    assert "window too short" in energy.result["unavailable"]
    assert "0.38 s" in energy.result["unavailable"]


# ------------------------------------------------------------------------------------------------ predict
def test_predict_runs_until_the_window_is_long_enough():
    clock = ScriptedClock()
    energy = EnergyCallback(warmup_steps=1, counted_steps=3, min_window_s=1.0, meter=ScriptedMeter(clock, 40.0),
                            clock=clock)
    module = CostlyModule(clock.advance, forward_ms=125)
    seen = []
    module.on_predict_batch_end = lambda *a, **k: seen.append(1)
    with mock.patch("time.perf_counter", clock):
        trainer([energy]).predict(module, energy.batches(loader(clock.advance, 0, length=4)), return_predictions=False)
    r = energy.result
    # 3 counted batches are 0.375 s; 5 more make 1 s; the closing look is at the next batch's start
    assert r["window_steps"] == 8 and r["window_s"] == 1.0 and r["joules"] == 40.0
    assert r["joules_per_token"] == 40.0 / (8 * TOKENS_PER_STEP)
    # 1 warm-up + 8 in the window, then the one batch Lightning had fetched ahead, whose start closes the window
    assert len(seen) == 1 + 8 + 1


def test_predict_without_energy_runs_exactly_the_counted_batches():
    clock = ScriptedClock()
    energy = EnergyCallback(warmup_steps=2, counted_steps=3, meter=BrokenMeter(), clock=clock)
    module = CostlyModule(clock.advance, forward_ms=1)
    seen = []
    module.on_predict_batch_end = lambda *a, **k: seen.append(1)
    with mock.patch("time.perf_counter", clock):
        trainer([energy]).predict(module, energy.batches(loader(clock.advance, 0, length=2)), return_predictions=False)
    assert len(seen) == 5 and "unavailable" in energy.result


# ------------------------------------------------------------------------------------------------ arithmetic
def test_window_plans_the_steps_still_needed():
    w = EnergyWindow(ScriptedMeter(ScriptedClock(), 1.0), min_seconds=2.0)
    w.steps = 5
    assert w.more_steps(2.0) == 0 and w.more_steps(3.0) == 0
    assert w.more_steps(0.01, device=(5, 2.0)) == 0  # the device's time is long enough, whatever the host read
    assert w.more_steps(0.625, device=(5, 0.625)) == 5  # 11 more would reach 2 s: at most double, then look again
    w.steps = 10
    assert w.more_steps(1.25, device=(10, 1.25)) == 6  # 16 steps make 2 s
    assert w.more_steps(0.01, device=(2, 0.08)) == 10  # planned from the device's 40 ms per step, not the host's 1 ms
    assert w.more_steps(1.999, device=(10, 1.999)) == 1
    assert w.more_steps(0.01) == 1 and w.more_steps(0.0, device=(0, 0.0)) == 1  # no device rate yet: next step


def test_features_hold_no_tokens_so_there_is_no_energy_per_token():
    """Issue 18 item 3's rule for energy too: an MLP's (32, 64) float batch is 32 samples, not 2,048 tokens."""
    import torch

    from callbacks.tokens import tokens_in_batch

    assert not tokens_in_batch(torch.randn(32, 64))  # the energy window counts it as 0
    assert tokens_in_batch((torch.randint(0, 50, (2, 4)), torch.randint(0, 50, (2, 4)))) == 8
    assert tokens_in_batch(torch.randn(32, 64), length_fn=lambda batch: 100) == 100  # the user says what it holds
    r = energy_figures(500.0, 2.0, 16, 0, None, "nvml", 1)
    assert r["joules_per_token"] is None and r["tokens_per_kwh"] is None and r["avg_watts"] == 250.0


def test_energy_figures():
    r = energy_figures(joules=720.0, window_s=2.4, steps=12, tokens=12 * 8192, idle_watts=70.0, source="nvml",
                       devices=1)
    assert r["avg_watts"] == 300.0 and r["joules_above_idle"] == pytest.approx(720.0 - 168.0)
    assert r["joules_per_token"] == 720.0 / 98304
    assert r["tokens_per_kwh"] == pytest.approx(98304 * 3.6e6 / 720.0)


# ------------------------------------------------------------------------------------------------ NVML
def fake_nvml(counters_mj, uuids=None, energy_error=None, init_error=None, mig=False):
    import pynvml

    counters = {i: list(v) for i, v in enumerate(counters_mj)}

    def get_energy(handle):
        if energy_error:
            raise energy_error
        return counters[handle].pop(0)

    def init():
        if init_error:
            raise init_error

    return types.SimpleNamespace(
        NVMLError=pynvml.NVMLError, NVMLError_NotSupported=pynvml.NVMLError_NotSupported,
        NVMLError_NoPermission=pynvml.NVMLError_NoPermission, nvmlInit=init,
        nvmlDeviceGetCount=lambda: len(counters_mj), nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUUID=lambda h: (uuids or [f"GPU-{i:04d}" for i in range(len(counters_mj))])[h],
        nvmlDeviceGetTotalEnergyConsumption=get_energy, nvmlDeviceIsMigDeviceHandle=lambda h: mig,
    )


def test_nvml_sums_every_device_of_the_run_in_joules():
    meter = NvmlMeter([0, 1], nvml=fake_nvml([[1_000, 301_000], [5_000, 155_000]]))
    start, end = meter.read(), meter.read()
    assert meter.joules(start, end) == 300.0 + 150.0
    assert meter.devices == 2 and meter.source == "nvml"


def test_nvml_finds_a_cuda_device_by_uuid():
    nvml = fake_nvml([[0, 0], [10, 2_010]], uuids=[b"GPU-aaaa", b"GPU-bbbb"])
    meter = NvmlMeter(["bbbb"], nvml=nvml)  # torch reports the UUID without NVML's prefix
    assert meter.joules(meter.read(), meter.read()) == 2.0


@pytest.mark.parametrize("kwargs, reason", [
    (dict(energy_error="NotSupported"), "no total-energy counter"),
    (dict(energy_error="NoPermission"), "no permission"),
    (dict(init_error="DriverNotLoaded"), "no NVIDIA driver"),
    (dict(mig=True), "MIG slice"),
])
def test_nvml_unavailable_paths(kwargs, reason):
    import pynvml

    kwargs = {k: (getattr(pynvml, f"NVMLError_{v}")() if k.endswith("error") else v) for k, v in kwargs.items()}
    meter = NvmlMeter([0], nvml=fake_nvml([[0, 1]], **kwargs))
    with pytest.raises(EnergyUnavailable, match=reason):
        meter.read()


def test_nvml_without_a_driver_is_unavailable_with_the_reason():
    """This machine has nvidia-ml-py but no NVIDIA driver: the real library says so."""
    pytest.importorskip("pynvml")
    try:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a driver is present")
    except ImportError:
        pass
    with pytest.raises(EnergyUnavailable, match="nvml: no NVIDIA driver"):
        NvmlMeter([0]).read()


def test_nvml_unknown_uuid():
    with pytest.raises(EnergyUnavailable, match="no GPU with UUID"):
        NvmlMeter(["cccc"], nvml=fake_nvml([[0]])).read()


# ------------------------------------------------------------------------------------------------ RAPL
def rapl_tree(root, zones):
    """zones: {dir name: (name, energy_uj, max_energy_range_uj)}"""
    for d, (name, energy, max_range) in zones.items():
        z = root / d
        z.mkdir(parents=True)
        (z / "name").write_text(name + "\n")
        (z / "energy_uj").write_text(f"{energy}\n")
        (z / "max_energy_range_uj").write_text(f"{max_range}\n")
    return root


def set_energy(root, d, value):
    (root / d / "energy_uj").write_text(f"{value}\n")


def test_rapl_reads_packages_only_and_undoes_a_wrap(tmp_path):
    root = rapl_tree(tmp_path / "powercap", {
        "intel-rapl:0": ("package-0", 999_000_000, 1_000_000_000),
        "intel-rapl:0:0": ("core", 5, 1_000_000_000),  # inside package 0: not counted twice
        "intel-rapl:1": ("package-1", 2_000_000, 1_000_000_000),
        "intel-rapl:2": ("psys", 7, 1_000_000_000),  # the whole platform: not counted
    })
    meter = RaplMeter(root)
    start = meter.read()
    assert meter.devices == 2 and meter.source == "rapl"
    set_energy(root, "intel-rapl:0", 4_000_000)  # wrapped: 1 J to the top, then 4 J
    set_energy(root, "intel-rapl:1", 12_000_000)  # 10 J
    set_energy(root, "intel-rapl:0:0", 10**9)
    assert meter.joules(start, meter.read()) == 1.0 + 4.0 + 10.0


def test_rapl_without_powercap(tmp_path):
    with pytest.raises(EnergyUnavailable, match="rapl: no powercap"):
        RaplMeter(tmp_path / "missing").read()


def test_rapl_without_a_package_zone(tmp_path):
    root = rapl_tree(tmp_path / "pc", {"intel-rapl:0": ("psys", 1, 10)})
    with pytest.raises(EnergyUnavailable, match="no CPU package zone"):
        RaplMeter(root).read()


def test_rapl_permission_denied(tmp_path, monkeypatch):
    root = rapl_tree(tmp_path / "pc", {"intel-rapl:0": ("package-0", 1, 10)})
    original = pathlib.Path.read_text

    def read_text(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return original(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "read_text", read_text)
    with pytest.raises(EnergyUnavailable, match="rapl: no permission to read .*energy_uj"):
        RaplMeter(root).read()


def test_idle_watts_over_a_scripted_second(tmp_path):
    root = rapl_tree(tmp_path / "pc", {"intel-rapl:0": ("package-0", 0, 10**12)})
    clock = ScriptedClock()

    def sleep(seconds):
        clock.advance(seconds * 1000)
        set_energy(root, "intel-rapl:0", 73_000_000)  # 73 J in 1 s

    assert measure_watts(RaplMeter(root), 1.0, sleep=sleep, clock=clock) == 73.0


# ------------------------------------------------------------------------------------------------ a whole profile
def test_profile_run_measures_energy_and_keeps_extra_steps_out_of_the_timings(tmp_path, monkeypatch):
    import callbacks.energy
    import gpt2_lightning.profile.energy as energy_run
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.run import run_profile

    monkeypatch.setattr(callbacks.energy, "meter_for", lambda device: WallMeter(50.0))
    monkeypatch.setattr(energy_run, "meter_for", lambda device: WallMeter(50.0))
    monkeypatch.setattr(energy_run, "_idle_cache", {})
    cfg = ProfileConfig(accelerator="cpu", model="tiny", batch_size=2, seq_len=16, steps=2, warmup_steps=1,
                        experiments="inference,train", energy_window_s=1.0, price_per_hour=2.0, energy_price=0.5)
    (tmp_path / "run").mkdir()
    data = run_profile(cfg, tmp_path / "run").to_dict()
    assert data["env"]["idle_power"]["watts"] == pytest.approx(50.0, rel=0.01)
    for exp, phase in (("inference", "forward"), ("train", "step")):
        result = data["experiments"][exp]
        e = result["energy"]
        assert e["source"] == "rapl" and e["window_s"] >= 1.0 and e["window_steps"] >= 2
        assert e["window_tokens"] == e["window_steps"] * 2 * 16
        assert e["avg_watts"] == pytest.approx(50.0, rel=0.01)
        assert e["joules_per_token"] == e["joules"] / e["window_tokens"]
        assert abs(e["joules_above_idle"]) < 0.05 * e["joules"]  # a steady 50 W: nothing above idle
        # every step of the window ran (and, for predict, the one batch Lightning fetched ahead), but only the
        # counted ones are in the figures and the rate
        assert len(result["per_step"]) == 1 + 2  # warm-up and counted steps; the window's extra ones are counted
        assert 2 + result["extra_steps"] == e["window_steps"] + (exp == "inference")
        assert result["phases"][phase]["n"] == 2
        assert result["cost"]["usd_per_million_tokens_energy"] == pytest.approx(
            e["joules_per_token"] * 1e6 / 3.6e6 * 0.5)
    assert data["experiments"]["train"]["projection"]["kwh"] is not None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gpt2_lightning.report.tensorboard_logs import tensorboard_dir

    acc = EventAccumulator(str(tensorboard_dir(tmp_path / "run", "train")))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    # once-per-experiment figures beside the other headline ones: no one-point energy/ or power/ group opens first
    assert {"whole_run/joules_per_token", "whole_run/tokens_per_kwh", "whole_run/avg_watts",
            "whole_run/idle_watts"} <= tags
    assert not any(t.startswith(("energy/", "power/")) for t in tags)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "tokens/kWh" in report and "per million tokens of energy" in report


def test_gradient_accumulation_counts_optimizer_steps_and_every_micro_batch_token():
    clock = ScriptedClock()
    energy = EnergyCallback(warmup_steps=1, counted_steps=2, min_window_s=0.5, meter=ScriptedMeter(clock, 8.0),
                            clock=clock)
    module = CostlyModule(clock.advance, warmup_steps=0, forward_ms=62.5, backward_ms=62.5, optimizer_ms=0)
    with mock.patch("time.perf_counter", clock):
        t = trainer([energy], max_steps=1000, accumulate_grad_batches=2)
        t.fit(module, loader(clock.advance, data_ms=0, length=1000))
    r = energy.result
    # an optimizer step is 2 micro-batches of 0.125 s: 2 steps make 0.5 s
    assert r["window_steps"] == 2 and r["window_s"] == 0.5 and r["window_tokens"] == 2 * 2 * TOKENS_PER_STEP
    assert t.global_step == 3


def test_profile_on_this_cpu_gives_rapl_figures_or_the_reason(tmp_path, monkeypatch):
    """The real meters, whatever this machine allows: never a crash, never a guess."""
    import gpt2_lightning.profile.energy as energy_run
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.run import run_profile

    monkeypatch.setattr(energy_run, "_idle_cache", {})
    cfg = ProfileConfig(accelerator="cpu", model="tiny", batch_size=1, seq_len=8, steps=1, warmup_steps=1,
                        experiments="train")
    (tmp_path / "run").mkdir()
    e = run_profile(cfg, tmp_path / "run").to_dict()["experiments"]["train"]["energy"]
    if "unavailable" in e:
        assert e["unavailable"].startswith("rapl: ") and set(e) == {"unavailable"}
    else:
        assert e["source"] == "rapl" and e["window_s"] >= 2.0 and e["joules"] > 0


@pytest.mark.parametrize("broken_rank", [1, 0])
def test_a_rank_that_cannot_read_its_counters_makes_energy_unavailable_on_every_rank(tmp_path, broken_rank):
    """Two ddp processes on the CPU; one rank's counters cannot be read. Every rank's result says which rank and why,
    and the run ends well. Before, the other rank opened its window alone: its plan's broadcast met the broken rank's
    gradient all-reduce, and the run died ("Connection closed by peer" on gloo; on NCCL such a mismatch can hang)."""
    import json
    import subprocess
    import sys

    script = pathlib.Path(__file__).with_name("ddp_energy_ranks.py")
    proc = subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--broken-rank", str(broken_rank)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank-{rank}.json").read_text())
        assert result == {"unavailable": f"rank {broken_rank}: nvml: no NVIDIA driver to talk to (scripted, this "
                                         "rank only)"}, rank
