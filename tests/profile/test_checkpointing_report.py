"""Activation checkpointing in a CPU run's per-module breakdown: recompute runs inside the backward phase, so it is
scaled with it, every total holds it, and the rows still add up to the un-profiled step (the timing callback's)."""

from __future__ import annotations

import json
import re

import pytest

from tests.profile.test_own_model import _run


@pytest.fixture(scope="module")
def ckpt_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    proc = _run("profile.py", "--accelerator", "cpu", "--model", "tiny", "--batch-size", "2", "--seq-len", "16",
                "--warmup-steps", "1", "--steps", "3", "--diagnose-steps", "2", "--experiments", "train",
                "--activation-checkpointing", "--profiler", "pytorch", "--no-energy", "--threads", "1",
                "--out", str(out), "--run-name", "c")
    assert proc.returncode == 0, proc.stderr
    return proc, out / "c"


def test_recompute_is_in_the_totals_and_scaled_with_the_backward_phase(ckpt_run):
    _, run_dir = ckpt_run
    train = json.loads((run_dir / "results.json").read_text())["experiments"]["train"]
    phases = {k: v["median_ms"] for k, v in train["phases"].items()}
    m = train["diagnosis"]["modules"]
    model = [r for r in m["parts"] if r["part"] not in ("optimizer", "outside any module")]
    assert any(r["recompute_ms"] for r in model) and all(b["recompute_ms"] > 0 for b in m["blocks"])
    for r in model + m["blocks"]:  # total = forward + backward + recompute, in every row and layer
        assert r["total_ms"] == pytest.approx(r["forward_ms"] + r["backward_ms"] + r["recompute_ms"], rel=1e-9), r
    # against the timing callback's un-profiled medians: the rows add up to the step, and backward + recompute (both
    # run in the backward phase) to the backward phase (all shrunk alike when the medians add up to more than the step)
    assert m["total_ms_per_step"] == pytest.approx(phases["step"], rel=1e-9)
    fit = min(1.0, phases["step"] / (phases["forward"] + phases["backward"] + phases["optimizer"]))
    assert sum(r["backward_ms"] + r["recompute_ms"] for r in model) == pytest.approx(phases["backward"] * fit,
                                                                                     rel=1e-9)
    assert sum(r["forward_ms"] for r in model) == pytest.approx(phases["forward"] * fit, rel=1e-9)
    # each layer's excess over the median layer and the layers named as standing out, from the scaled totals
    totals = sorted(b["total_ms"] for b in m["blocks"])
    median = (totals[(len(totals) - 1) // 2] + totals[len(totals) // 2]) / 2
    for b in m["blocks"]:
        assert b["excess_ms"] == pytest.approx(b["total_ms"] - median, abs=1e-9)
    assert m["outlier_blocks"] == [b["block"] for b in m["blocks"] if len(totals) >= 3 and b["total_ms"] > 1.5 * median]


def test_report_md_totals_hold_the_recompute(ckpt_run):
    _, run_dir = ckpt_run
    report = (run_dir / "report.md").read_text()
    assert "| part | forward ms | backward ms | recompute ms | total ms |" in report
    rows = re.findall(r"^\| (MLP|layer norms|residual adds|attention projections) \| ([\d.]+) \| ([\d.]+) \| "
                      r"([\d.]+) \| ([\d.]+) \|", report, re.M)
    assert {r[0] for r in rows} >= {"MLP", "layer norms"}
    for _, f, b, r, total in rows:
        assert float(total) == pytest.approx(float(f) + float(b) + float(r), abs=0.0021)  # three rounded cells
