"""The verdict rules: each fires at its threshold and not below it, and quotes the figure it rests on."""

import json
import re
import subprocess
import sys

import pytest

from gpt2_lightning.analysis import verdict as dx
from gpt2_lightning.analysis.verdict import Evidence, diagnose, verdict
from gpt2_lightning.report.diagnosis import format_text, markdown, markdown_all, summary_lines
from gpt2_lightning.analysis.categories import CATEGORIES
from tests.conftest import ROOT
from tests.analysis.test_trace_analysis import FIXTURE


def analysis(busy_ms=None, kind="gpu", comm_overlap_ms=0.0, **pcts):
    """A trace analysis whose categories have the given shares of 10 ms of kernel time per step."""
    pcts = {c: float(pcts.get(c, 0.0)) for c in CATEGORIES}
    pcts["other"] += 100.0 - sum(pcts.values())
    cats = {c: {"ms_per_step": p / 10.0, "pct": p} for c, p in pcts.items()}
    comm_ms = cats["communication"]["ms_per_step"]
    return {"kind": kind, "steps": 3, "step_source": "host ProfilerStep ranges", "gpu_busy_ms_per_step": busy_ms,
            "kernel_ms_per_step": 10.0, "categories": cats, "top_kernels": [], "top_ops": [],
            "communication": {"ms_per_step": comm_ms, "overlapped_ms_per_step": comm_overlap_ms,
                              "overlapped_pct": 100 * comm_overlap_ms / comm_ms if comm_ms else None}}


def fired(e: Evidence) -> list[str]:
    return [rule.__name__ for rule in dx.RULES if rule(e) is not None]


# ------------------------------------------------------------------------------------------------ each rule
def test_busy_share_is_gpu_busy_over_the_unprofiled_step():
    assert dx.busy_pct(analysis(busy_ms=8.0), 10.0) == pytest.approx(80.0)
    assert dx.busy_pct(analysis(busy_ms=8.0), None) is None
    assert dx.busy_pct(analysis(kind="cpu"), 10.0) is None


def test_launch_bound_at_its_threshold_not_below():
    step = 100.0
    at = Evidence(analysis(busy_ms=100.0 - dx.LAUNCH_BOUND_IDLE_PCT), step)
    below = Evidence(analysis(busy_ms=100.0 - dx.LAUNCH_BOUND_IDLE_PCT + 0.1), step)
    assert "launch_bound" in fired(at) and "launch_bound" not in fired(below)
    s = dx.launch_bound(Evidence(analysis(busy_ms=20.0), 100.0)).sentence
    assert "idle 80%" in s and "100.0 ms step" in s and "busy 20.0 ms" in s
    assert "--compile" in s and "--batch-size" in s and "CUDA graphs" in s


def test_launch_bound_quotes_the_host_block_when_present():
    host = {"phases": {}, "gpu_caught_up_steps": 5, "counted_steps": 5}
    s = dx.launch_bound(Evidence(analysis(busy_ms=20.0), 100.0, host=host)).sentence
    assert "caught up with the host in 5 of 5 counted steps" in s
    assert "caught up" not in dx.launch_bound(Evidence(analysis(busy_ms=20.0), 100.0)).sentence


def test_copy_cast_at_its_threshold_not_below():
    assert "copy_cast" in fired(Evidence(analysis(copy_cast=dx.COPY_CAST_PCT), 10.0))
    assert "copy_cast" not in fired(Evidence(analysis(copy_cast=dx.COPY_CAST_PCT - 0.1), 10.0))
    s = dx.copy_cast(Evidence(analysis(copy_cast=22.0), 10.0)).sentence
    assert "22% of kernel time" in s and "2.20 ms per step" in s and "bf16-true" in s and "--compile" in s
    cpu = dx.copy_cast(Evidence(analysis(kind="cpu", copy_cast=22.0), 10.0)).sentence
    assert "22% of CPU operator time" in cpu


def test_copy_cast_advice_follows_the_precision():
    def sentence(precision):
        return dx.copy_cast(Evidence(analysis(copy_cast=30.0), 10.0, precision=precision)).sentence

    assert "autocast (bf16-mixed) re-casts" in sentence("bf16-mixed") and "bf16-true" in sentence("bf16-mixed")
    assert "no autocast" in sentence("32-true") and "bf16-true" not in sentence("32-true")
    assert "autocast" in sentence(None) and ".contiguous()" in sentence(None)  # a bare trace: both causes named


def test_data_wait_at_its_threshold_not_below():
    def phases(data):
        return {"data": {"median_ms": data}, "step": {"median_ms": 40.0}}

    assert "data_wait" in fired(Evidence(analysis(busy_ms=39.0), 40.0, phases(40.0 * dx.DATA_WAIT_PCT / 100)))
    assert "data_wait" not in fired(Evidence(analysis(busy_ms=39.0), 40.0, phases(3.99)))
    assert "data_wait" not in fired(Evidence(analysis(busy_ms=39.0), 40.0))  # no phases: no rule
    s = dx.data_wait(Evidence(analysis(), 40.0, phases(10.0))).sentence
    assert "25% of each step" in s and "10.0 ms of 40.0 ms" in s and "num_workers" in s and "pin_memory" in s


def test_communication_at_its_threshold_and_its_overlap():
    assert "communication" in fired(Evidence(analysis(communication=dx.COMMUNICATION_PCT), 10.0))
    assert "communication" not in fired(Evidence(analysis(communication=dx.COMMUNICATION_PCT - 0.1), 10.0))
    exposed = dx.communication(Evidence(analysis(communication=30.0, comm_overlap_ms=0.6), 10.0))
    assert "30% of kernel time" in exposed.sentence and "20% of it overlapped" in exposed.sentence
    assert "bucket" in exposed.sentence and exposed.weight_ms == pytest.approx(3.0 - 0.6)
    hidden = dx.communication(Evidence(analysis(communication=30.0, comm_overlap_ms=2.7), 10.0))
    assert "90% of it overlapped" in hidden.sentence and "hidden already" in hidden.sentence


def test_matmul_busy_needs_both_shares():
    busy = 100.0 * dx.MATMUL_BUSY_PCT / 100
    assert "matmul_busy" in fired(Evidence(analysis(busy_ms=busy, matmul=dx.MATMUL_DOMINANT_PCT), 100.0))
    assert "matmul_busy" not in fired(Evidence(analysis(busy_ms=busy - 0.1, matmul=80), 100.0))
    assert "matmul_busy" not in fired(Evidence(analysis(busy_ms=99.0, matmul=dx.MATMUL_DOMINANT_PCT - 0.1), 100.0))
    s = dx.matmul_busy(Evidence(analysis(busy_ms=97.0, matmul=70), 100.0, mfu_pct=41.2)).sentence
    assert "70% of kernel time" in s and "busy 97%" in s and "MFU (now 41%)" in s


# ------------------------------------------------------------------------------------------------ the verdict
def test_verdict_is_one_to_three_sentences_weightiest_first():
    e = Evidence(analysis(busy_ms=20.0, copy_cast=40.0, communication=30.0), 100.0,
                 {"data": {"median_ms": 30.0}, "step": {"median_ms": 100.0}})
    assert len(fired(e)) == 4
    v = verdict(e)
    assert len(v) == dx.MAX_SENTENCES
    assert v[0].startswith("The GPU is idle 80%")  # 80 ms at stake, then data 30 ms, then copies 4 ms
    assert v[1].startswith("Waiting for data") and v[2].startswith("Casts and copies")


def test_planted_cases_from_the_issue():
    """GPU spinning with an idle host: busy >= 95%, no launch-bound; host sleeping around trivial work: launch-bound."""
    spinning = verdict(Evidence(analysis(busy_ms=96.0, matmul=90), 100.0))
    assert not any("idle" in s for s in spinning)
    sleeping = verdict(Evidence(analysis(busy_ms=15.0), 100.0))
    assert sleeping[0].startswith("The GPU is idle 85%")


def test_nothing_fired_still_quotes_a_figure():
    v = verdict(Evidence(analysis(busy_ms=90.0, matmul=40, elementwise_norm=35), 100.0))
    assert v == ["No rule fired: the GPU is busy 90% of the 100.0 ms step; the largest category, matmul, takes 40% "
                 "of kernel time."]
    assert re.search(r"\d+%", verdict(Evidence(analysis(kind="cpu", matmul=60), 100.0))[0])


def test_diagnose_adds_busy_and_verdict_only_with_a_step():
    a = analysis(busy_ms=5.0)
    assert "verdict" not in diagnose(a) and "busy_pct" not in diagnose(a)
    d = diagnose(a, step_ms=10.0)
    assert d["busy_pct"] == 50.0 and d["step_ms"] == 10.0 and d["verdict"][0].startswith("The GPU is idle 50%")


# ------------------------------------------------------------------------------------------------ the real trace
def test_fixture_verdict_casts_then_idle():
    from gpt2_lightning.analysis.trace_analysis import analyze_trace

    d = diagnose(analyze_trace(FIXTURE), step_ms=31.0)
    assert d["busy_pct"] == pytest.approx(100 * 26.053 / 31.0, abs=0.01)
    assert [s.split(" ")[0] for s in d["verdict"]] == ["Casts", "The"]
    assert "19% of kernel time (5.02 ms per step)" in d["verdict"][0]
    assert "idle 16% of the 31.0 ms step" in d["verdict"][1]


def test_cli_json_on_the_fixture():
    proc = subprocess.run([sys.executable, "scripts/analyze_trace.py", str(FIXTURE), "--step-ms", "31.0", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"steps", "gpu_busy_ms_per_step", "categories", "top_kernels", "busy_pct", "verdict"} <= set(out)
    assert out["steps"] == 5 and set(out["categories"]) == set(CATEGORIES)
    assert all(set(c) == {"ms_per_step", "pct"} for c in out["categories"].values())
    text = subprocess.run([sys.executable, "scripts/analyze_trace.py", str(FIXTURE)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert text.returncode == 0 and "GPU busy 26.053 ms per step" in text.stdout and "verdict" not in text.stdout


# ------------------------------------------------------------------------------------------------ rendering
def test_renderings_carry_the_figures():
    d = diagnose(analysis(busy_ms=20.0, copy_cast=30.0), step_ms=100.0)
    d["top_kernels"] = [{"name": "nvjet_" + "x" * 200, "category": "matmul", "ms_per_step": 1.5,
                         "calls_per_step": 2.0, "pct": 15.0}]
    text = format_text(d)
    assert "20% of the un-profiled 100.000 ms step" in text and "nvjet_xxx" in text and "..." in text
    md = "\n".join(markdown(d))
    assert "### Diagnosis" in md and "| copy_cast | 3.000 | 30.0 |" in md and d["verdict"][0] in md
    assert summary_lines("train", d)[0].startswith("train: diagnosis over 3 profiled step(s): GPU busy 20.000 ms")
    d["extra_steps"], d["extra_wall_s"] = 3, 2.5
    assert "(2.5 s of extra wall time)" in "\n".join(markdown(d))
    lines = summary_lines("train", d)
    assert lines[0].startswith("train: diagnosis over 3 uncounted profiled step(s): GPU busy 20.000 ms")
    assert lines[1:] == [f"  - {s}" for s in d["verdict"]]
    assert markdown_all({"experiments": {"train": {"diagnosis": d}, "init": {}}}).startswith("## train")
    assert summary_lines("train", {"error": "boom"}) == ["train: diagnosis failed: boom"]


# ------------------------------------------------------------------------------------------------ on a CPU
def _cpu_phases(optimizer_ms, step_ms=100.0):
    return {"optimizer": {"median_ms": optimizer_ms}, "step": {"median_ms": step_ms}}


def test_cpu_optimizer_at_its_threshold_not_below():
    at = Evidence(analysis(kind="cpu"), 100.0, phases=_cpu_phases(dx.CPU_OPTIMIZER_PCT))
    below = Evidence(analysis(kind="cpu"), 100.0, phases=_cpu_phases(dx.CPU_OPTIMIZER_PCT - 0.1))
    assert "cpu_optimizer" in fired(at) and "cpu_optimizer" not in fired(below)
    s = dx.cpu_optimizer(Evidence(analysis(kind="cpu"), 200.0, phases=_cpu_phases(50.0, 200.0))).sentence
    assert s.startswith("The optimizer takes 25% of each step (50.0 ms of the 200.0 ms step)")
    assert "foreach=True" in s and "fused=True" in s
    # a GPU trace (its optimizer is one fused kernel) and a profiled run (its step times) do not fire it
    assert dx.cpu_optimizer(Evidence(analysis(busy_ms=90.0), 100.0, phases=_cpu_phases(50.0))) is None
    assert dx.cpu_optimizer(Evidence(analysis(kind="cpu"), 100.0, phases=_cpu_phases(50.0),
                                     step_is_profiled=True)) is None


def test_cpu_optimizer_from_the_trace_alone():
    """analyze_trace.py --step-ms on a CPU trace: no phases, the optimizer category's share of operator time."""
    at = Evidence(analysis(kind="cpu", optimizer=dx.CPU_OPTIMIZER_PCT), 100.0)
    below = Evidence(analysis(kind="cpu", optimizer=dx.CPU_OPTIMIZER_PCT - 0.1), 100.0)
    assert "cpu_optimizer" in fired(at) and "cpu_optimizer" not in fired(below)
    assert "10% of each step (of CPU operator time)" in dx.cpu_optimizer(at).sentence


def test_cpu_matmul_at_its_threshold_not_below():
    assert "cpu_matmul" in fired(Evidence(analysis(kind="cpu", matmul=dx.CPU_MATMUL_PCT), 100.0))
    assert "cpu_matmul" not in fired(Evidence(analysis(kind="cpu", matmul=dx.CPU_MATMUL_PCT - 0.1), 100.0))
    assert "cpu_matmul" not in fired(Evidence(analysis(busy_ms=50.0, matmul=90.0), 100.0))  # a GPU: matmul_busy's
    s = dx.cpu_matmul(Evidence(analysis(kind="cpu", matmul=70.0), 100.0)).sentence
    assert s.startswith("Matmuls take 70% of CPU operator time (7.00 ms per step)")
    assert "--threads" in s and "--batch-size" in s


def test_a_cpu_verdict_always_names_something_to_try():
    v = verdict(Evidence(analysis(kind="cpu", matmul=40.0, elementwise_norm=45.0), 100.0,
                         phases=_cpu_phases(5.0)))
    assert v == ["No single cause stands out on this CPU; the largest category, elementwise_norm, takes 45% of CPU "
                 "operator time: try a larger --batch-size (more work per operator call) and --threads set to the "
                 "physical cores."]
    assert "No rule fired" not in v[0]
