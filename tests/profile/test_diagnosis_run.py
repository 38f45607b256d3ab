"""The self-diagnosis of a run: the extra profiled steps (on the CPU here, the same code a GPU runs), what is kept
and deleted, the GPU branch on the real H100 trace, and a profile run's results, report and TensorBoard text."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from gpt2_lightning.profile import diagnosis as diagnosis_run
from gpt2_lightning.profile.diagnosis import diagnose_experiment, diagnosis_trace_path, profile_extra_steps
from gpt2_lightning.profile.trainers import make_module
from gpt2_lightning.profile.settings import ConfigError, ProfileConfig
from gpt2_lightning.analysis.trace_analysis import analyze_trace
from tests.conftest import ROOT, requires_cuda
from tests.analysis.test_trace_analysis import FIXTURE


def tiny_cfg(**kw):
    return ProfileConfig(**{"accelerator": "cpu", "model": "tiny", "batch_size": 2, "seq_len": 16, **kw})


@pytest.mark.parametrize("stage", ["train", "predict"])
def test_extra_steps_are_profiled_one_range_each(tmp_path, stage):
    cfg = tiny_cfg(diagnose_steps=2)
    path = profile_extra_steps(cfg, make_module(cfg), stage, tmp_path, "x")
    assert path == diagnosis_trace_path(tmp_path, "x") and path.name == "diagnosis-x.pt.trace.json.gz"
    a = analyze_trace(path)
    assert a["kind"] == "cpu" and a["step_source"] == "host ProfilerStep ranges"
    assert a["steps"] == 2  # the profiler's warm-up step is traced but not written
    assert a["categories"]["matmul"]["ms_per_step"] > 0
    assert (a["categories"]["optimizer"]["ms_per_step"] > 0) == (stage == "train")


def _result(step_ms=31.0):
    return {"phases": {"step": {"median_ms": step_ms}, "data": {"median_ms": 0.5}, "forward": {"median_ms": 9.0}},
            "throughput": {"mfu_pct": 30.0}}


@pytest.fixture
def gpu_branch(monkeypatch, tmp_path):
    """The GPU branch with the extra steps replaced by the real H100 trace (copied where they would write theirs)."""
    monkeypatch.setattr(diagnosis_run, "resolve_device", lambda accelerator: torch.device("cuda", 0))
    calls = []

    def fake_steps(cfg, module, stage, run_dir, experiment):
        calls.append(stage)
        return shutil.copy(FIXTURE, diagnosis_trace_path(run_dir, experiment))

    monkeypatch.setattr(diagnosis_run, "profile_extra_steps", fake_steps)
    return calls


def test_gpu_branch_diagnoses_against_the_unprofiled_step_and_deletes_the_trace(gpu_branch, tmp_path):
    d = diagnose_experiment(ProfileConfig(accelerator="gpu"), tmp_path, "train", "train", None, _result())
    assert gpu_branch == ["train"]
    assert d["step_ms"] == 31.0 and d["busy_pct"] == pytest.approx(100 * 26.053 / 31.0, abs=0.01)
    assert d["verdict"][0].startswith("Casts and copies take 19%") and "no autocast" in d["verdict"][0]  # 32-true
    assert d["extra_steps"] == 3 and d["extra_wall_s"] > 0
    assert d["trace_file"] is None and not list(tmp_path.iterdir())  # read, then deleted


@pytest.mark.parametrize("kw", [{"keep_trace": True}, {"profiler": "pytorch"}])
def test_gpu_branch_keeps_the_trace_when_asked(gpu_branch, tmp_path, kw):
    d = diagnose_experiment(ProfileConfig(accelerator="gpu", **kw), tmp_path, "train", "train", None, _result())
    assert d["trace_file"] == "diagnosis-train.pt.trace.json.gz" and (tmp_path / d["trace_file"]).exists()
    if kw.get("profiler"):  # the counted steps were profiled: no busy share, no step-time rule
        assert d["busy_pct"] is None and "note" in d and not any("idle" in s for s in d["verdict"])


def test_gpu_branch_inference_judges_against_the_forward_pass(gpu_branch, tmp_path):
    d = diagnose_experiment(ProfileConfig(accelerator="gpu", precision="bf16-mixed"), tmp_path, "inference",
                            "predict", None, _result())
    assert gpu_branch == ["predict"] and d["step_ms"] == 9.0


def test_fp8_casts_are_blamed_on_bf16_autocast_and_float8_casts_not_on_no_autocast(gpu_branch, tmp_path):
    d = diagnose_experiment(ProfileConfig(accelerator="gpu", precision="fp8"), tmp_path, "train", "train", None,
                            _result())
    assert d["verdict"][0].startswith("Casts and copies take 19%")
    assert "no autocast" not in d["verdict"][0] and "bf16 autocast" in d["verdict"][0]
    assert "float8" in d["verdict"][0]


@pytest.mark.parametrize("strategy", ["fsdp", "fsdp_cpu_offload", "deepspeed_stage_3"])
def test_fsdp_skips_the_diagnosis_and_says_why(gpu_branch, tmp_path, capsys, strategy):
    from gpt2_lightning.report.diagnosis import markdown, summary_lines

    d = diagnose_experiment(ProfileConfig(accelerator="gpu", strategy=strategy), tmp_path, "train", "train", None,
                            _result())
    assert gpu_branch == []  # the sharded module is never fitted again
    assert set(d) == {"skipped"} and f"--strategy {strategy} has sharded the module" in d["skipped"]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"profile.py: train: diagnosis skipped: {d['skipped']}"]
    assert summary_lines("train", d) == [f"train: diagnosis skipped: {d['skipped']}"]
    assert markdown(d)[0].startswith("**Diagnosis skipped:**")
    ddp = diagnose_experiment(ProfileConfig(accelerator="gpu", strategy="ddp"), tmp_path, "train", "train", None,
                              _result())
    assert gpu_branch == ["train"] and "verdict" in ddp


def test_no_diagnose_and_plain_cpu_runs_get_none(gpu_branch, tmp_path):
    assert diagnose_experiment(ProfileConfig(accelerator="gpu", no_diagnose=True), tmp_path, "train", "train", None,
                               _result()) is None
    assert gpu_branch == []


def _cpu_steps(monkeypatch, write):
    """The CPU branch with the extra steps replaced by a trace ``write`` puts where they would write theirs."""
    monkeypatch.setattr(diagnosis_run, "profile_extra_steps",
                        lambda cfg, module, stage, run_dir, experiment: write(diagnosis_trace_path(run_dir, experiment)))


def test_cpu_run_is_diagnosed_from_its_extra_steps_in_unprofiled_time(tmp_path, monkeypatch):
    """--profiler pytorch on a CPU: the counted steps ran un-profiled (the 2.0 ms step), the extra steps' trace (one
    profiled step of 1 ms: copy 0.4, mm 0.6) gives the shares, and its times are scaled to the 2.0 ms step."""
    from tests.kineto import TraceBuilder

    b = TraceBuilder().host_step(1, 0, 1000).cpu_op("aten::copy_", 0, 400).cpu_op("aten::mm", 400, 1000)
    _cpu_steps(monkeypatch, lambda path: b.write(path))
    d = diagnose_experiment(tiny_cfg(profiler="pytorch"), tmp_path, "train", "train", None, _result(2.0))
    assert d["kind"] == "cpu" and d["extra_steps"] == 3 and d["trace_file"] == "diagnosis-train.pt.trace.json.gz"
    assert d["verdict"][0].startswith("Matmuls take 60% of CPU operator time (1.20 ms per step)")
    assert d["verdict"][1].startswith("Casts and copies take 40% of CPU operator time (0.80 ms per step)")
    assert d["categories"]["matmul"]["ms_per_step"] == pytest.approx(1.2) and d["profiled_slowdown"] == 0.5
    assert "note" not in d  # the counted steps were not profiled


def test_a_broken_trace_is_reported_not_raised(tmp_path, capsys, monkeypatch):
    def broken(path):
        path.write_text("{")
        return path

    _cpu_steps(monkeypatch, broken)
    d = diagnose_experiment(tiny_cfg(profiler="pytorch"), tmp_path, "train", "train", None, _result())
    assert set(d) == {"error"} and "not a Chrome trace" in d["error"]
    assert "train: diagnosis failed" in capsys.readouterr().err


def test_settings():
    assert ProfileConfig().diagnose_steps == 3 and not ProfileConfig().no_diagnose
    with pytest.raises(ConfigError, match="--diagnose-steps 0"):
        ProfileConfig(diagnose_steps=0)


# ------------------------------------------------------------------------------------------------ a whole run
@pytest.fixture(scope="module")
def profiled_cpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cmd = [sys.executable, "scripts/profile.py", "--accelerator", "cpu", "--model", "tiny", "--batch-size", "2",
           "--seq-len", "16", "--warmup-steps", "1", "--steps", "2", "--experiments", "inference,train",
           "--profiler", "pytorch", "--memory-snapshot", "--out", str(out), "--run-name", "r"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return proc, out / "r"


@pytest.mark.slow
def test_cpu_profiled_run_carries_its_diagnosis_everywhere(profiled_cpu_run):
    proc, run_dir = profiled_cpu_run
    assert proc.returncode == 0, proc.stderr
    data = json.loads((run_dir / "results.json").read_text())
    for exp in ("inference", "train"):
        d = data["experiments"][exp]["diagnosis"]
        assert d["kind"] == "cpu" and d["steps"] == 3 and 1 <= len(d["verdict"]) <= 3, exp  # the extra steps
        assert d["trace_file"] == f"diagnosis-{exp}.pt.trace.json.gz" and (run_dir / d["trace_file"]).exists()
        assert f"{exp}: diagnosis over 3 uncounted profiled step(s)" in proc.stdout
    report = (run_dir / "report.md").read_text()
    assert report.count("### Diagnosis") == 2 and "Memory split: parameters" in report
    # the per-module breakdown, everywhere the diagnosis is (issue 22)
    modules = data["experiments"]["train"]["diagnosis"]["modules"]
    assert modules["grouping"] == "gpt2" and {r["part"] for r in modules["parts"]} >= {"MLP", "optimizer"}
    mlp = next(r for r in modules["parts"] if r["part"] == "MLP")
    assert mlp["backward_ms"] > 0 and mlp["tflops"] > 0 and mlp["pct_of_peak"] is None  # no peak for a CPU
    assert report.count("Per-module breakdown, by part of the model") == 2 and "![module breakdown](modules.png)" in report
    assert (run_dir / "modules.png").exists()
    assert proc.stdout.count("  modules (% of the un-profiled step): ") == 2
    assert "--memory-snapshot records CUDA allocations: nothing is recorded on the CPU" in proc.stderr
    assert not list(run_dir.glob("memory-*.pickle"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gpt2_lightning.report.tensorboard_logs import tensorboard_dir

    acc = EventAccumulator(str(tensorboard_dir(run_dir, "summary")), size_guidance={"tensors": 0})
    acc.Reload()
    assert "diagnosis/text_summary" in acc.Tags()["tensors"]


# ------------------------------------------------------------------------------------------------ on a GPU
@requires_cuda
@pytest.mark.gpu
def test_gpu_run_diagnoses_itself(tmp_path):
    cmd = [sys.executable, "scripts/profile.py", "--accelerator", "gpu", "--model", "tiny", "--batch-size", "2",
           "--seq-len", "64", "--steps", "3", "--experiments", "inference,train", "--out", str(tmp_path),
           "--run-name", "g"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "g" / "results.json").read_text())
    for exp in ("inference", "train"):
        d = data["experiments"][exp]["diagnosis"]
        assert d["kind"] == "gpu" and d["steps"] == 3 and d["extra_steps"] == 3 and d["busy_pct"] > 0
        assert d["trace_file"] is None and not (tmp_path / "g" / f"diagnosis-{exp}.pt.trace.json.gz").exists()
        assert d["extra_wall_s"] < 10
