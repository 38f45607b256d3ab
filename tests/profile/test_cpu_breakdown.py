"""The CPU breakdown (issue 26.7-26.8): counted steps never profiled, a few uncounted profiled steps after them, each
phase's rows scaled to that phase's un-profiled median; run by default only when cheap; a signal during those steps
keeps the experiment's figures."""

import gzip
import json
import os
import signal
import subprocess
import sys

import pytest

from gpt2_lightning.profile import diagnosis as diagnosis_run
from gpt2_lightning.profile.diagnosis import (CPU_BREAKDOWN_MAX_SHARE, CPU_PROFILED_SLOWDOWN, PROFILER_WARMUP_STEPS,
                                              diagnose_experiment, diagnosis_trace_path)
from gpt2_lightning.profile.settings import ProfileConfig
from tests.conftest import ROOT
from tests.kineto import TraceBuilder

DELAY_MS = 150.0  # far above a tiny step's own forward (a few ms), and far above the noise of a loaded machine


@pytest.fixture(scope="module")
def delayed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    # B4 x T64: the un-profiled forward has tens of ms of operators besides the sleep (at T16 a few ms, hardly more
    # than what the module ranges' own hooks add outside operators in the profiled steps)
    cmd = [sys.executable, "scripts/profile.py", "--accelerator", "cpu", "--model", "tiny", "--batch-size", "4",
           "--seq-len", "64", "--warmup-steps", "1", "--steps", "3", "--diagnose-steps", "2", "--experiments", "train",
           "--profiler", "pytorch", "--add-delay-ms", str(DELAY_MS), "--no-energy", "--out", str(out),
           "--run-name", "d"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc, out / "d"


def test_a_planted_forward_delay_lands_in_the_forward_rows_which_add_up_to_the_unprofiled_step(delayed_run):
    proc, run_dir = delayed_run
    train = json.loads((run_dir / "results.json").read_text())["experiments"]["train"]
    phases = {k: v["median_ms"] for k, v in train["phases"].items()}
    slept = train["planted_delay"]["median_slept_ms"]  # the sleep's own clock, not the timing callback's
    m = train["diagnosis"]["modules"]
    rows = {r["part"]: r for r in m["parts"]}
    model = [r for r in m["parts"] if r["part"] not in ("optimizer", "outside any module")]
    # the breakdown's per-step total is the un-profiled step the timing callback measured, and each phase's rows
    # its un-profiled median; on a busy machine the medians can add up to more than the step's (each from another
    # step): then the three phases fill the step, none above its median
    assert m["total_ms_per_step"] == pytest.approx(phases["step"], rel=1e-9)
    shown = {"forward": sum(r["forward_ms"] for r in model), "backward": sum(r["backward_ms"] for r in model),
             "optimizer": rows["optimizer"]["total_ms"]}
    if phases["forward"] + phases["backward"] + phases["optimizer"] <= phases["step"]:
        assert shown == {p: pytest.approx(phases[p], rel=1e-9) for p in shown}
    else:
        assert sum(shown.values()) == pytest.approx(phases["step"], rel=1e-9)
        assert all(shown[p] <= phases[p] * (1 + 1e-9) for p in shown)
    # the delay (a forward pre-hook of the GPT module) is in the profiled steps too, in the GPT module's own work,
    # outside any operator; after scaling that row still holds the sleep, as long as the sleep measured itself (time
    # outside operators is kept; the profiler's cost and a loaded machine's noise go to the operators)
    holder = rows["other model code"]
    assert holder["profiled_ms"] >= slept * 0.9 and holder["profiled_op_ms"]["forward_ms"] < 0.1 * slept
    assert holder["forward_ms"] == pytest.approx(slept, rel=0.2) and holder["backward_ms"] < 0.05 * slept
    # said where it is quoted: console, report.md (and TensorBoard's text, the same markdown), modules.png's title
    note = "shares from the profiled steps, times scaled to the un-profiled phases"
    assert note in proc.stdout and f"per {phases['step']:.3f} ms un-profiled step" in proc.stdout
    report = (run_dir / "report.md").read_text()
    assert f"{phases['step']:.3f} ms per step of host time of the un-profiled step ({note})" in report
    assert "these timings are un-profiled" in report and "Profiled with Lightning's" not in report
    from gpt2_lightning.report.diagnosis import markdown_all  # TensorBoard's Text tab

    data = json.loads((run_dir / "results.json").read_text())
    assert f"{phases['step']:.3f} ms per step of host time of the un-profiled step ({note})" in markdown_all(data)
    assert "ran under a profiler" not in proc.stdout and "This run was profiled" not in proc.stdout


def test_the_counted_steps_are_not_profiled(delayed_run):
    """The one trace holds the diagnosis's 1 + 2 steps, none of the 4 counted ones: its ProfilerStep ranges, and no
    range of the timing callback (which opens phase/* ranges whenever a profiler records its steps)."""
    _, run_dir = delayed_run
    assert sorted(p.name for p in run_dir.glob("*.pt.trace.json*")) == ["diagnosis-train.pt.trace.json.gz"]
    events = json.loads(gzip.open(run_dir / "diagnosis-train.pt.trace.json.gz").read())["traceEvents"]
    steps = [e for e in events if e.get("ph") == "X" and e.get("name", "").startswith("ProfilerStep#")]
    assert len(steps) == 2
    assert not any(e.get("name", "").startswith("phase/") for e in events)
    d = json.loads((run_dir / "results.json").read_text())["experiments"]["train"]
    assert "traces" not in d and "top_ops" not in d  # Lightning's profiler did not run over the counted steps
    assert d["diagnosis"]["extra_steps"] == 2 and d["diagnosis"]["trace_file"] == "diagnosis-train.pt.trace.json.gz"
    # recorded for the cost estimate; this step is mostly a 150 ms sleep, which the profiler does not slow, so the
    # ratio sits near 1, on a busy machine on either side of it
    assert 0.5 < d["diagnosis"]["profiled_slowdown"] < 3.0 and "note" not in d["diagnosis"]


# ------------------------------------------------------------------------------------------------ by default when cheap
def _cpu_result(wall_steps_s, step_ms):
    """A train result whose 1 + 9 steps took ``wall_steps_s`` in all, median step ``step_ms``."""
    per_step = [{"step": i, "warmup": i == 0, "step_ms": 1000.0 * wall_steps_s / 10} for i in range(10)]
    phases = {p: {"median_ms": ms} for p, ms in
              (("data", 0.1), ("forward", 0.3 * step_ms), ("backward", 0.4 * step_ms), ("optimizer", 0.2 * step_ms),
               ("step", step_ms))}
    return {"phases": phases, "per_step": per_step, "throughput": {}}


@pytest.fixture
def fake_steps(monkeypatch):
    calls = []

    def steps(cfg, module, stage, run_dir, experiment):
        calls.append(stage)
        b = TraceBuilder().host_step(1, 0, 1000).cpu_op("aten::mm", 0, 1000)
        return b.write(diagnosis_trace_path(run_dir, experiment))

    monkeypatch.setattr(diagnosis_run, "profile_extra_steps", steps)
    return calls


def test_cpu_breakdown_runs_by_default_only_under_its_share_of_the_experiment(fake_steps, tmp_path):
    cfg = ProfileConfig(accelerator="cpu", model="tiny", diagnose_steps=3)
    step_ms, setup_s = 100.0, 1.0
    cost = setup_s + (PROFILER_WARMUP_STEPS + 3) * step_ms / 1000.0 * CPU_PROFILED_SLOWDOWN  # hand-computed
    wall_at = cost / CPU_BREAKDOWN_MAX_SHARE - cost  # the experiment for which the cost is exactly the share
    steps_s = wall_at - setup_s
    at = diagnose_experiment(cfg, tmp_path, "train", "train", None, _cpu_result(steps_s, step_ms), wall_at)
    assert fake_steps == ["train"] and at["kind"] == "cpu" and at["modules"]
    ddp = ProfileConfig(accelerator="cpu", model="tiny", diagnose_steps=3, devices="2", strategy="ddp")
    several = diagnose_experiment(ddp, tmp_path, "train", "train", None, _cpu_result(steps_s, step_ms), wall_at)
    assert fake_steps == ["train"] and "the ranks must all run it" in several["not_run"]  # ranks never disagree
    short = wall_at * 0.95  # the same set-up, fewer steps: the cost is more than the share
    below = diagnose_experiment(cfg, tmp_path, "train", "train", None, _cpu_result(short - setup_s, step_ms), short)
    assert fake_steps == ["train"] and set(below) == {"not_run"}
    assert f"would take ~{cost:.1f} s" in below["not_run"] and "--profiler pytorch runs them" in below["not_run"]
    forced = diagnose_experiment(ProfileConfig(accelerator="cpu", model="tiny", profiler="pytorch"), tmp_path,
                                 "train", "train", None, _cpu_result(short - setup_s, step_ms), short)
    assert fake_steps == ["train", "train"] and forced["trace_file"] == "diagnosis-train.pt.trace.json.gz"
    from gpt2_lightning.report.diagnosis import markdown, summary_lines

    assert summary_lines("train", below) == [f"train: no breakdown: {below['not_run']}"]
    assert markdown(below)[0] == f"No per-step breakdown: {below['not_run']}."


# ------------------------------------------------------------------------------------------------ interrupted
@pytest.mark.parametrize("branch", ["cpu", "gpu"])
def test_a_signal_during_the_extra_steps_keeps_the_measured_experiment(tmp_path, monkeypatch, branch):
    """The CPU breakdown's extra steps, and the GPU diagnosis's (its branch taken on the CPU, as in
    tests/profile/test_cuda_only_code.py: the same code with a profiler that asks for CUDA activity)."""
    import torch

    from gpt2_lightning.profile.interrupts import RunInterrupted, interruptible
    from gpt2_lightning.profile.profilers import ProfilerStepCallback
    from gpt2_lightning.profile.run import run_profile

    class SignalAtSecondStep(ProfilerStepCallback):
        """SIGTERM at the end of the diagnosis's second extra step (its first recorded one)."""

        def on_train_batch_end(self, *args, **kwargs):
            super().on_train_batch_end(*args, **kwargs)
            self.n = getattr(self, "n", 0) + 1
            if self.n == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(diagnosis_run, "ProfilerStepCallback", SignalAtSecondStep)
    if branch == "gpu":
        monkeypatch.setattr(diagnosis_run, "resolve_device", lambda accelerator: torch.device("cuda", 0))
    cfg = ProfileConfig(accelerator="cpu", model="tiny", batch_size=2, seq_len=16, warmup_steps=1, steps=2,
                        experiments="train", profiler="pytorch", no_energy=True, diagnose_steps=3)
    with pytest.raises(RunInterrupted), interruptible():
        run_profile(cfg, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    train = data["experiments"]["train"]
    assert data["status"] == "incomplete" and "error" not in train and not train.get("interrupted")
    assert train["phases"]["step"]["n"] == 2 and train["throughput"]["tokens_per_sec"] > 0
    assert set(train["diagnosis"]) == {"interrupted"}
    assert train["diagnosis"]["interrupted"].startswith("SIGTERM arrived during the diagnosis's extra steps")
    assert not list(tmp_path.glob("diagnosis-*"))  # the trace cut short is not kept
    assert "**Diagnosis interrupted:** SIGTERM arrived" in (tmp_path / "report.md").read_text()
    from gpt2_lightning.report.diagnosis import summary_lines  # the console's summary

    assert summary_lines("train", train["diagnosis"]) == [f"train: diagnosis interrupted: "
                                                          f"{train['diagnosis']['interrupted']}"]


def test_comparisons_and_warnings_know_a_cpus_counted_steps_were_not_profiled():
    from gpt2_lightning.report.compare import warnings_for
    from gpt2_lightning.report.noise import instability_lines
    from gpt2_lightning.report.profiled import counted_steps_profiler

    def run(profiler, device):
        steps = {"median_ms": 10.0, "p10_ms": 5.0, "p90_ms": 20.0, "n": 5}  # p90/p10 = 4: unstable
        return {"config": {"profiler": profiler, "accelerator": "auto", "steps": 5}, "env": {"device_type": device},
                "experiments": {"train": {"phases": {"step": steps}}}}

    assert counted_steps_profiler(run("pytorch", "cpu")) == "none"
    assert counted_steps_profiler(run("pytorch", "cuda")) == "pytorch"
    assert counted_steps_profiler(run("simple", "cpu")) == "simple"
    def profiled(runs):
        return [w for w in warnings_for(runs, ["a", "b"]) if "ran under a profiler" in w]

    assert profiled([run("none", "cpu"), run("pytorch", "cpu")]) == []
    assert "b (--profiler pytorch)" in profiled([run("none", "cuda"), run("pytorch", "cuda")])[0]
    assert "This run was profiled" not in " ".join(instability_lines(run("pytorch", "cpu")))
    assert "This run was profiled" in " ".join(instability_lines(run("pytorch", "cuda")))


# ------------------------------------------------------------------------------------------------ what is scaled
SLEEP_MS, OPERATORS_MS = 120.0, 60.0  # each far above the noise of a loaded machine, and the tiny model's own forward


def test_a_sleep_keeps_its_length_and_the_profilers_operator_cost_is_taken_out(tmp_path, monkeypatch):
    """A real tiny CPU run with two planted figures in forward: a 120 ms sleep in the GPT module's own work (outside
    any operator, which the profiler does not slow), and, in the profiled extra steps only, at least 60 ms of matmuls
    in the output head (operator time that the counted steps do not have, as the profiler's per-operator cost is).
    Scaling forward by one factor (the un-profiled forward over the profiled one) took the sleep down by about the
    planted operators' share (to ~80 ms on a quiet machine, anywhere under load); kept outside operators, it reads
    the sleep as the sleep measured itself."""
    import time

    import torch

    from callbacks.delay import PlantedDelay
    from gpt2_lightning.profile.run import run_profile

    class OperatorsInProfiledSteps(PlantedDelay):
        """The extra steps' planted delay (diagnosis.py builds its own), with the output head's matmuls added."""

        def _attach(self, trainer, pl_module):
            super()._attach(trainer, pl_module)
            head, a = pl_module.model.lm_head, torch.randn(256, 256)
            forward = head.forward

            def with_matmuls(*args, **kwargs):  # inside the head's module range: the hooks run around forward
                end = time.perf_counter() + OPERATORS_MS / 1000
                while time.perf_counter() < end:
                    torch.mm(a, a)
                return forward(*args, **kwargs)

            head.forward = with_matmuls
            self._head = head

        def teardown(self, trainer, pl_module, stage):
            super().teardown(trainer, pl_module, stage)
            del self._head.forward  # the class's forward again

    monkeypatch.setattr(diagnosis_run, "PlantedDelay", OperatorsInProfiledSteps)
    cfg = ProfileConfig(accelerator="cpu", model="tiny", batch_size=8, seq_len=64, warmup_steps=1, steps=3,
                        experiments="train", profiler="pytorch", no_energy=True, diagnose_steps=2,
                        add_delay_ms=SLEEP_MS)
    run_profile(cfg, tmp_path)
    train = json.loads((tmp_path / "results.json").read_text())["experiments"]["train"]
    slept = train["planted_delay"]["median_slept_ms"]  # the counted steps' sleeps, by the sleep's own clock
    m = train["diagnosis"]["modules"]
    rows = {r["part"]: r for r in m["parts"]}
    # the trace saw the planted matmuls as the head's operator time (all but the loop's Python between them), and the
    # sleep as no operator's
    assert rows["output head"]["profiled_op_ms"]["forward_ms"] >= 0.8 * OPERATORS_MS
    assert rows["other model code"]["profiled_op_ms"]["forward_ms"] < 0.1 * slept
    assert m["scaled"]["method"]["forward"] == "operators"
    assert rows["other model code"]["forward_ms"] == pytest.approx(slept, rel=0.15)
    assert rows["other model code"]["profiled_ms"] >= 0.9 * slept  # each row keeps its profiled time
    assert m["total_ms_per_step"] == pytest.approx(train["phases"]["step"]["median_ms"], rel=1e-9)
