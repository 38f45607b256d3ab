"""scripts/gpu_checks.sh, checked on the CPU before a GPU runs it: its syntax, its budget (one call of the GPU machine,
<= 540 s), a relative OUT, and the verdicts it prints from the figures it collects."""

import importlib.util
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPTS = Path(ROOT) / "scripts"
ONE_CALL_S = 540


def test_scripts_parse():
    for name in ("gpu_checks.sh", "_suite.sh", "perf_suite.sh"):
        proc = subprocess.run(["bash", "-n", str(SCRIPTS / name)], capture_output=True, text=True)
        assert proc.returncode == 0, (name, proc.stderr)


def test_step_limits_fit_one_call():
    text = (SCRIPTS / "gpu_checks.sh").read_text()
    suite = (SCRIPTS / "_suite.sh").read_text()
    limits = [int(n) for n in re.findall(r"^\s*step \S+ (\d+) ", text, flags=re.M)]
    env_s = int(re.search(r"^ENV_TIMEOUT_S=(\d+)", suite, flags=re.M).group(1))
    budget = int(re.search(r"^BUDGET_S=\$\{BUDGET_S:-(\d+)\}", text, flags=re.M).group(1))
    assert len(limits) == 11 and budget <= ONE_CALL_S
    assert sum(limits) + env_s <= budget - 10, (limits, env_s)  # 10 s left for packing the results between steps
    assert "BUDGET_S" in suite and "DEADLINE_S" in suite  # and the script itself never runs past the budget


def _suite(tmp_path, body, **env):
    """Run `. _suite.sh; BODY` from tmp_path, with a Python that does nothing (no torch import: no time spent)."""
    script = f". {SCRIPTS / '_suite.sh'}\n{body}"
    return subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": "true", **env})


def test_relative_out_packs_results_and_records_each_step(tmp_path):
    proc = _suite(tmp_path, 'mkdir -p "$RUNS/r" && echo "{}" > "$RUNS/r/results.json" && echo x > "$RUNS/r/t.pt.trace.json"'
                            ' && step demo 5 true && step broken 5 false', OUT="rel/out")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "rel" / "out"
    with tarfile.open(out / "runs.tar.gz") as tar:
        assert tar.getnames() == ["./r/results.json"]  # small files only, found from a relative OUT
    rows = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()]
    assert [(name, rc) for name, rc, _ in rows] == [("demo", "0"), ("broken", "1")]
    assert "=== demo: exit 0 after 0 s" in proc.stdout


def test_a_spent_budget_skips_steps_instead_of_running_past_it(tmp_path):
    proc = _suite(tmp_path, "step late 30 sleep 1", OUT="o", BUDGET_S="3")
    assert "=== late: skipped, the 3 s budget is spent" in proc.stdout
    assert not (tmp_path / "o" / "steps.tsv").exists()


# ---------------------------------------------------------------------------------------------------------- verdicts
@pytest.fixture(scope="module")
def verdicts():
    spec = importlib.util.spec_from_file_location("gpu_verdicts", SCRIPTS / "gpu_verdicts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _train(step_ms, tokens_per_sec=300e3, **extra):
    return {"phases": {"step": {"median_ms": step_ms}}, "throughput": {"tokens_per_sec": tokens_per_sec}, **extra}


def _part(name, fwd, bwd):
    return {"part": name, "forward_ms": fwd, "backward_ms": bwd, "total_ms": fwd + bwd}


def _good_out(tmp_path):
    """What a run on a good H100 leaves (figures as in docs/performance.md, energy as NVML gives it)."""
    out = tmp_path / "gpu-out"
    energy = {"source": "nvml", "joules_per_token": 0.0012, "avg_watts": 480.0, "window_s": 2.1}
    diag = {"verdict": ["The GPU does the right work ..."], "busy_pct": 97.0, "gpu_busy_ms_per_step": 23.3,
            "modules": {"parts": [_part("MLP", 2.1, 4.2), _part("attention projections", 1.0, 2.4),
                                  _part("attention kernel", 0.6, 2.0), _part("output head", 0.9, 1.6),
                                  _part("layer norms", 0.7, 2.0), {"part": "optimizer", "total_ms": 1.0, "pct": 4.3},
                                  {"part": "outside any module", "total_ms": 4.8, "pct": 20.6}]}}
    for name, step in (("gpt2-fp32", 160.9), ("gpt2-bf16", 27.0)):
        exps = {"inference": {"energy": energy, "diagnosis": diag},
                "train": _train(step, energy=energy, diagnosis=diag,
                                host={"gpu_caught_up_steps": 0, "counted_steps": 4})}
        _write(out / "runs" / name / "results.json", {"experiments": exps})
    _write(out / "runs" / "gpt2-fp32-bare" / "results.json", {"experiments": {"train": _train(160.5)}})
    _write(out / "runs" / "snapshot" / "results.json",
           {"experiments": {"train": _train(161.2, memory_snapshot="memory-train.pickle")}})
    (out / "runs" / "snapshot" / "memory-train.pickle").write_bytes(b"x" * 1000)
    _write(out / "runs" / "compiled-bf16-b32" / "results.json", {"experiments": {"train": _train(67.9, 482.4e3)}})
    fp8 = _train(60.0, 540e3, diagnosis={"verdict": ["Casts and copies take 20%: fp8 runs under bf16 autocast ..."]})
    fp8["throughput"] |= {"peak_tflops": 1978.9, "mfu_pct": 23.0}
    _write(out / "runs" / "fp8-b32" / "results.json", {"experiments": {"train": fp8}})
    _write(out / "runs" / "fsdp-1" / "results.json",
           {"experiments": {"train": _train(31.0, diagnosis={"skipped": "--strategy fsdp has sharded the module"})}})
    ddp = _train(48.0, straggler={"rank": 1, "excess_ms": 20.4, "phase": "forward"},
                 diagnosis={"ranks": [{"rank": 0, "communication_ms_per_step": 2.1},
                                      {"rank": 1, "communication_ms_per_step": 1.9}]})
    _write(out / "runs" / "ddp-2gpu" / "results.json", {"experiments": {"train": ddp}})
    _write(out / "data-check.json", {"loader_ms": 30.0, "host_data_ms": 30.4, "device_data_ms": 30.3})
    (out / "steps.tsv").write_text("no-sync\t0\t20000\ngpt2-fp32\t0\t45000\ngpt2-bf16\t0\t34000\n"
                                   "gpt2-fp32-bare\t0\t38500\n")
    return out


def test_every_check_passes_on_good_figures(verdicts, tmp_path, capsys):
    assert verdicts.main(["--out", str(_good_out(tmp_path))]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "15 passed, 0 failed, 0 skipped"
    assert all(line.startswith("PASS  ") and "(target: " in line for line in lines[:-1]), lines
    assert any("diagnosis + energy wall time: +6.5 s (45.0 s against 38.5 s)" in line for line in lines)
    assert any("host vs device data, 30 ms loader: host 30.40 ms, device 30.30 ms" in line for line in lines)


@pytest.mark.parametrize("spoil, failing", [
    (lambda out: _write(out / "data-check.json", {"loader_ms": 30.0, "host_data_ms": 0.0, "device_data_ms": 31.2}),
     "host vs device data"),
    (lambda out: (out / "steps.tsv").write_text("no-sync\t1\t1\ngpt2-fp32\t0\t50000\ngpt2-fp32-bare\t0\t38500\n"),
     "diagnosis + energy wall time"),
    (lambda out: (out / "runs" / "snapshot" / "memory-train.pickle").unlink(), "memory snapshot"),
])
def test_a_figure_short_of_its_target_fails_the_script(verdicts, tmp_path, capsys, spoil, failing):
    out = _good_out(tmp_path)
    spoil(out)
    assert verdicts.main(["--out", str(out)]) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert any(failing in line for line in failed), failed


def test_what_cannot_run_here_is_skipped_and_said(verdicts, tmp_path, capsys):
    out = _good_out(tmp_path)
    assert verdicts.main(["--out", str(out), "--skip", "fp8-b32:torchao not importable here"]) == 0
    assert "SKIP  fp8 vs bf16, compiled B32: torchao not importable here" in capsys.readouterr().out


def test_the_module_check_fails_on_the_first_h200_run(verdicts, tmp_path, capsys):
    """The H200's results from before the optimizer-closure fix (docs/results/h200-before-issue19): the forward of
    optimizer.step(closure) was counted as optimizer (36% of the step, forward 0 for every part)."""
    out = _good_out(tmp_path)
    real = json.loads((Path(ROOT) / "docs/results/h200-before-issue19/gpt2-bf16/results.json").read_text())
    _write(out / "runs" / "gpt2-bf16" / "results.json", real)
    verdicts.main(["--out", str(out)])
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert any("per-module breakdown" in line and "optimizer 36.2%" in line for line in failed), failed
