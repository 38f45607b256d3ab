"""The CLI end to end on the CPU: the issue's command, the results file, and the numbers agreeing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

STATS = {"n", "median_ms", "mean_ms", "p10_ms", "p90_ms", "min_ms", "max_ms"}


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cmd = [sys.executable, "scripts/profile.py", "--accelerator", "cpu", "--model", "tiny", "--batch-size", "2",
           "--seq-len", "64", "--steps", "3", "--out", str(out), "--run-name", "r"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc, out / "r"


def test_exits_zero_and_writes_results(cpu_run):
    proc, run_dir = cpu_run
    assert proc.returncode == 0, proc.stderr
    data = json.loads((run_dir / "results.json").read_text())
    assert data["schema_version"] == 1 and data["status"] == "complete"
    assert set(data["experiments"]) == {"init", "inference", "train"}
    assert set(data["experiments"]["init"]["phases"]["init"]) == STATS
    assert set(data["experiments"]["inference"]["phases"]) == {"forward"}
    assert set(data["experiments"]["train"]["phases"]) == {"data", "forward", "backward", "optimizer", "step"}
    for exp in ("inference", "train"):
        assert {"tokens_per_sec", "tflops", "mfu_pct"} <= set(data["experiments"][exp]["throughput"])
        assert data["experiments"][exp]["throughput"]["mfu_pct"] is None  # a CPU has no peak in the table
        assert data["experiments"][exp]["throughput"]["mfu_note"] == "no peak for CPUs"
        assert set(data["experiments"][exp]["memory"]) == {"max_rss_gib"}
        for stats in data["experiments"][exp]["phases"].values():
            assert stats["n"] == 3
    assert data["experiments"]["inference"]["naive_ms"] > 0
    assert data["env"]["torch"] and data["config"]["batch_size"] == 2
    assert "tokens/s" in proc.stdout and "results.json" in proc.stdout


def test_phases_add_up_to_step_and_rate_is_tokens_over_step(cpu_run):
    _, run_dir = cpu_run
    train = json.loads((run_dir / "results.json").read_text())["experiments"]["train"]
    p = train["phases"]
    # step by step (medians of separate phases need not add up when the machine is noisy): the four parts cover
    # the whole step but for Lightning's own bookkeeping between the hooks
    for s in (s for s in train["per_step"] if not s["warmup"]):
        parts = sum(s[f"{k}_ms"] for k in ("data", "forward", "backward", "optimizer"))
        assert 0.90 * s["step_ms"] <= parts <= s["step_ms"], s
    expected = 2 * 64 / (p["step"]["median_ms"] / 1000.0)
    assert train["throughput"]["tokens_per_sec"] == pytest.approx(expected, rel=0.02)
    inf = json.loads((run_dir / "results.json").read_text())["experiments"]["inference"]
    expected = 2 * 64 / (inf["phases"]["forward"]["median_ms"] / 1000.0)
    assert inf["throughput"]["tokens_per_sec"] == pytest.approx(expected, rel=0.02)


def test_init_reports_startup_and_cold_apart(cpu_run):
    _, run_dir = cpu_run
    init = json.loads((run_dir / "results.json").read_text())["experiments"]["init"]
    assert init["phases"]["init"]["n"] == 3
    assert init["device_startup_ms"] == 0.0  # nothing to start on a CPU
    assert init["cold_init_ms"] > 0
    assert init["phases"]["init_model"]["median_ms"] <= init["phases"]["init"]["median_ms"]


def test_tensorboard_event_files_per_experiment(cpu_run):
    from gpt2_lightning.report.tensorboard_logs import tensorboard_dir

    _, run_dir = cpu_run
    for exp in ("init", "inference", "train"):
        assert list(tensorboard_dir(run_dir, exp).glob("events.out.tfevents.*")), exp


def test_console_entry_point_has_same_main():
    from gpt2_lightning.profile import cli

    text = (Path(ROOT) / "pyproject.toml").read_text()
    assert 'gpt2-profile = "gpt2_lightning.profile.cli:main"' in text
    assert callable(cli.main)
