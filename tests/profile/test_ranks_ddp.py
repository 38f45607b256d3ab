"""Two CPU processes over gloo with a straggler of known size planted on rank 1 (``--add-delay-rank``), and every
rank's own trace diagnosed under ``--profiler pytorch``. DDP re-launches the command for rank 1: subprocesses."""

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

BASE = ["scripts/profile.py", "--accelerator", "cpu", "--model", "tiny", "--batch-size", "2", "--seq-len", "32",
        "--devices", "2", "--strategy", "ddp", "--threads", "1", "--no-energy", "--experiments", "inference,train"]
PLANTED_MS = 150.0  # many times a tiny step's compute: a loaded machine's contention (20-30 ms) stays far below it


def _run(tmp_path, name, *extra):
    cmd = [sys.executable, *BASE, *extra, "--out", str(tmp_path), "--run-name", name]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads((tmp_path / name / "results.json").read_text())


@pytest.mark.slow
def test_a_planted_straggler_is_named_and_the_other_rank_waits_for_it(tmp_path):
    proc, data = _run(tmp_path, "slow", "--steps", "4", "--warmup-steps", "1", "--add-delay-ms", str(PLANTED_MS),
                      "--add-delay-rank", "1")
    for exp, phase in (("inference", "forward"), ("train", "step")):
        r = data["experiments"][exp]
        s = r["straggler"]
        assert s is not None and s["rank"] == 1 and s["phase"] == "forward", (exp, s)
        assert s["phase_excess_ms"] == pytest.approx(PLANTED_MS, rel=0.3), exp  # one sleep per forward pass
        # the sentence puts forward's own excess beside "forward" (not the rank's whole excess in own work)
        said = re.search(rf"{exp}: rank 1 is the straggler: \+(\d+) ms per step in forward", proc.stdout)
        assert said and float(said.group(1)) == pytest.approx(PLANTED_MS, rel=0.3), (exp, proc.stdout[-2000:])
        assert [x["torch_threads"] for x in r["ranks"]] == [1, 1]  # --threads held inside both processes
        # the job's rate: both ranks' tokens over the slower rank's median step, from the ranks' own figures
        slowest = max(x["phases"][phase]["median_ms"] for x in r["ranks"])
        assert r["global_tokens_per_sec"] == pytest.approx(2 * 2 * 32 / (slowest / 1000), rel=1e-9)
        assert f"{exp}: rank 1 is the straggler: +" in proc.stdout
        # results.json (rank 0's) reports the delayed rank's own sleeps: one per forward pass (1 warm-up + 4 counted),
        # none shorter than asked, gathered from rank 1 when the stage ended
        planted = r["planted_delay"]
        assert (planted["rank"], planted["slept_on_rank"], planted["calls"]) == (1, 1, 5), (exp, planted)
        assert PLANTED_MS <= planted["median_slept_ms"] < 1.5 * PLANTED_MS, (exp, planted)
    waits = {x["rank"]: x["waiting_ms"] for x in data["experiments"]["train"]["ranks"]}
    assert waits[0] >= 0.7 * PLANTED_MS and waits[0] - waits[1] >= 0.5 * PLANTED_MS, waits  # rank 0 waits for 1
    assert "**Rank 1 is the straggler" in (tmp_path / "slow" / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("asked", [["--profiler", "pytorch"], ["--keep-trace"]])  # --keep-trace: review item 3
def test_every_rank_names_and_diagnoses_its_own_trace(tmp_path, asked):
    _, data = _run(tmp_path, "prof", "--steps", "2", "--warmup-steps", "1", *asked)
    for exp in ("inference", "train"):
        r = data["experiments"][exp]
        assert "traces" not in r  # on a CPU the counted steps are not profiled: the extra steps' trace is the one
        d = r["diagnosis"]
        assert d is not None and "error" not in d, (exp, d)
        names = [f"diagnosis-{exp}-rank{k}.pt.trace.json.gz" for k in (0, 1)]
        assert [x["trace"] for x in d["ranks"]] == names
        assert all(x["error"] is None for x in d["ranks"])
        assert all((tmp_path / "prof" / name).exists() for name in names)  # kept: asked for
    # each rank's all-reduce, read from its own trace's gloo ranges: there is one per training step
    assert all(x["communication_ms_per_step"] > 0 for x in data["experiments"]["train"]["diagnosis"]["ranks"])
