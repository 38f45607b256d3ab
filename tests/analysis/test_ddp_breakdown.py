"""The module breakdown with several processes: built from the threads that run the model; the collectives' own
threads beside the step, never summed into it; a rank's wait for the others is its own row."""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from gpt2_lightning.analysis.module_parts import OPTIMIZER_ROW, OUTSIDE_ROW, WAITING_ROW
from gpt2_lightning.analysis.trace_analysis import analyze_trace
from tests.kineto import TraceBuilder


def test_collective_threads_are_beside_the_step_and_the_wait_is_its_own_row(tmp_path):
    """One CPU step of 1000 us on thread 1 (us): module a's forward [0, 200), its backward [300, 500) (sequence
    number 4), the optimizer [900, 1000); gloo's thread 2 holds an all_reduce [450, 850) while thread 1 runs nothing
    from 500 to 850: 350 us waiting; [200, 300) and [850, 900) are outside any module. Another thread 3 (a logger)
    works [0, 1000)."""
    b = TraceBuilder().host_step(1, 0, 1000)
    b.cpu_op("[pl][module]torch.nn.modules.linear.Linear: model.a", 0, 200, cat="user_annotation")
    b.cpu_op("aten::addmm", 10, 190)
    b.events[-1]["args"]["Sequence number"] = 4
    b.cpu_op("autograd::engine::evaluate_function: AddmmBackward0", 300, 500)
    b.events[-1]["args"]["Sequence number"] = 4
    b.cpu_op("Optimizer.step#AdamW.step", 900, 1000, cat="user_annotation")
    b.cpu_op("gloo:all_reduce", 450, 850, tid=2, cat="user_annotation")
    b.cpu_op("aten::copy_", 0, 1000, tid=3)
    m = analyze_trace(b.write(tmp_path / "t.json"))["modules"]
    rows = {r["part"]: r for r in m["parts"]}
    assert m["total_ms_per_step"] == pytest.approx(1.000)  # the step once: not 1 + 0.4 + 1 ms of three threads
    assert rows["model.a (Linear)"]["forward_ms"] == pytest.approx(0.200)
    assert rows["model.a (Linear)"]["backward_ms"] == pytest.approx(0.200)
    assert rows[OPTIMIZER_ROW]["total_ms"] == pytest.approx(0.100)
    assert rows[WAITING_ROW]["total_ms"] == pytest.approx(0.350)  # [500, 850): nothing but the all-reduce in flight
    assert rows[OUTSIDE_ROW]["total_ms"] == pytest.approx(0.150)  # [200, 300) and [850, 900)
    assert m["beside_the_step"] == {"collective_threads_ms": pytest.approx(0.400),
                                    "other_threads_ms": pytest.approx(1.000), "threads": 2}


def test_one_process_has_no_waiting_row(tmp_path):
    b = TraceBuilder().host_step(1, 0, 100)
    b.cpu_op("[pl][module]torch.nn.modules.linear.Linear: model.a", 0, 60, cat="user_annotation")
    m = analyze_trace(b.write(tmp_path / "t.json"))["modules"]
    assert WAITING_ROW not in {r["part"] for r in m["parts"]}
    assert m["beside_the_step"]["threads"] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_over_gloo_rank_zero_waits_for_the_slow_rank(tmp_path):
    """Two real processes; rank 1 sleeps 40 ms before each forward. Rank 0's breakdown adds up to its own steps (read
    from the trace's ProfilerStep ranges), the gloo threads are beside them, and its wait is about rank 1's sleep."""
    script = Path(__file__).with_name("ddp_gloo_trace.py")
    proc = subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--port", str(_free_port()),
                           "--sleep-ms", "40"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    slept = statistics.fmean(json.loads((tmp_path / "slept1.json").read_text()))
    path = tmp_path / "rank0.json"
    m = analyze_trace(path)["modules"]
    events = json.loads(path.read_text())["traceEvents"]
    step_us = [e["dur"] for e in events if e.get("ph") == "X" and e["name"].startswith("ProfilerStep#")]
    assert m["total_ms_per_step"] == pytest.approx(statistics.fmean(step_us) / 1000, rel=1e-6)
    assert sum(r["total_ms"] for r in m["parts"]) == pytest.approx(m["total_ms_per_step"])
    rows = {r["part"]: r for r in m["parts"]}
    assert rows[WAITING_ROW]["total_ms"] == pytest.approx(slept, rel=0.3)
    assert rows[OUTSIDE_ROW]["pct"] < 25
    assert m["beside_the_step"]["collective_threads_ms"] > 0
