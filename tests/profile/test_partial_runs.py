"""A signal during a sweep or ``--repeat N`` keeps everything measured and says exactly what: the sweep's table and
figure over the points that ran (marked interrupted), "1 of 5 repeats ran", finished folders left ``complete``. The
signal is a real SIGINT sent to a real profile.py process at a known point (a folder appearing); the figures kept are
checked against the files each measurement's own process wrote. A NaN in a point's results is not measured."""

import copy
import json
import math
import re
import signal
import subprocess
import sys
import time
from unittest import mock

import pytest

from tests.conftest import ROOT
from tests.report.test_noise_and_plots import PNG_MAGIC, run_data

# --add-delay-ms: each point's train runs >= 2 s after its results.json appears, so a signal 0.3 s after that lands
# inside it; tiny everything else, so the point before it finishes in seconds
SLOW_POINT = ["--accelerator", "cpu", "--model", "tiny", "--seq-len", "16", "--steps", "2", "--warmup-steps", "1",
              "--experiments", "train", "--add-delay-ms", "700", "--no-energy"]


def _interrupt_when(cmd, ready, timeout=240):
    """Start cmd, send SIGINT 0.3 s after the path ``ready`` exists; (exit code, stderr)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not ready.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert ready.exists(), proc.communicate()[1]
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.mark.slow
def test_ctrl_c_during_a_sweep_keeps_the_table_of_the_points_that_ran(tmp_path):
    cmd = [sys.executable, "scripts/profile.py", *SLOW_POINT, "--sweep", "batch_size=1,2,4,8", "--out", str(tmp_path),
           "--run-name", "s"]
    sweep = tmp_path / "s"
    code, out, err = _interrupt_when(cmd, sweep / "batch_size-2" / "results.json")
    assert code == 130 and "Traceback" not in err, err
    first = json.loads((sweep / "batch_size-1" / "results.json").read_text())
    cut = json.loads((sweep / "batch_size-2" / "results.json").read_text())
    assert first["status"] == "complete" and cut["status"] == "incomplete" and cut["interrupted_by"] == "SIGINT"
    assert not (sweep / "batch_size-4").exists() and not (sweep / "results.json").exists()  # a folder of runs
    record = json.loads((sweep / "sweep.json").read_text())
    assert record["status"] == "interrupted" and record["interrupted_by"] == "SIGINT" and record["not_run"] == [4, 8]
    rows = {r["batch_size"]: r for r in record["rows"]}
    assert rows[1]["status"] == "complete" and rows[2]["status"] == "interrupted" and set(rows) == {1, 2}
    # the finished point's figures, as its own process wrote them
    assert rows[1]["train step ms"] == first["experiments"]["train"]["phases"]["step"]["median_ms"]
    assert (sweep / "sweep.png").read_bytes()[:8] == PNG_MAGIC
    md = (sweep / "sweep.md").read_text()
    assert ("This sweep was interrupted by SIGINT: 1 of 4 points ran (batch_size=1); batch_size=2 was cut short" in md
            and "not run: batch_size=4, 8." in md)
    # the console says what each folder holds, and nothing more finished than it is
    assert "interrupted by SIGINT during batch_size=2" in err
    assert "batch_size-1/: complete" in err and "batch_size-2/: interrupted, marked incomplete" in err
    assert "not run: batch_size=4, batch_size=8" in err and "sweep table over the 1 point(s) that ran" in err
    assert "complete" in out.splitlines()[2] and "interrupted" in out.splitlines()[3]  # the table, printed


@pytest.mark.slow
def test_ctrl_c_after_the_first_repeat_keeps_it_and_says_1_of_5(tmp_path):
    cmd = [sys.executable, "scripts/profile.py", *SLOW_POINT, "--batch-size", "1", "--repeat", "5", "--out",
           str(tmp_path), "--run-name", "r"]
    run = tmp_path / "r"
    code, out, err = _interrupt_when(cmd, run / "repeat-2" / "results.json")
    assert code == 130 and "Traceback" not in err, err
    one = json.loads((run / "repeat-1" / "results.json").read_text())
    data = json.loads((run / "results.json").read_text())
    assert data["status"] == "incomplete" and data["interrupted_by"] == "SIGINT"
    # repeat 1's figures, as its own process wrote them: repeat 2, cut short, is not averaged in
    assert data["experiments"]["train"]["phases"]["step"]["median_ms"] == pytest.approx(
        one["experiments"]["train"]["phases"]["step"]["median_ms"])
    assert data["experiments"]["train"]["repeats"]["numbers"] == [1]
    assert [r["status"] for r in data["repeats"]] == ["complete", "incomplete"]
    report = (run / "report.md").read_text()
    assert "1 of 5 repeats ran (repeat 2 was cut short), each a fresh process" in report and "- 1 repeats," not in report
    assert "**This run is incomplete, interrupted by SIGINT: 1 of 5 repeats ran" in report
    assert "1 of 5 repeats ran" in out and "1 of 5 repeats ran (repeat 2 was cut short): results.json and report.md" \
        in err


def _capture_figures():
    figures = []
    return figures, mock.patch("gpt2_lightning.report.plots.plt.close", side_effect=figures.append)


def test_a_non_finite_figure_is_not_measured_in_the_sweep(tmp_path):
    from gpt2_lightning.profile.sweep import format_sweep, noise_cell, sweep_rows, write_sweep

    good = run_data(0, steps=[12.0, 12.5, 13.0, 12.4, 12.6])
    bad = copy.deepcopy(good)  # from another tool, an old version, a hand edit
    bad["experiments"]["train"]["throughput"]["tokens_per_sec"] = float("nan")
    bad["experiments"]["train"]["phases"]["step"] |= {"median_ms": float("inf"), "p90_ms": float("nan")}
    rows = sweep_rows("batch_size", [(1, good), (2, bad)])
    assert rows[1]["train tokens/s"] is None and rows[1]["train step ms"] is None
    assert rows[1]["train step p10-p90 ms"] is None
    assert noise_cell(rows[1]).startswith("not measured: train")  # never judged ok or unstable
    table = format_sweep("batch_size", rows)
    assert not re.search(r"\b(nan|inf)\b", table.lower()), table
    second = table.splitlines()[3]
    assert "12.5 ms" not in second and " - " in second
    figures, patch = _capture_figures()
    with patch:
        write_sweep("batch_size", [(1, good), (2, bad)], tmp_path)
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert record["rows"][1]["train tokens/s"] is None
    for ax in figures[0].axes:  # drawn: batch_size=1 alone, never a NaN or infinite y
        for line in ax.lines:
            ys = [y for y in line.get_ydata() if y is not None]
            assert all(math.isfinite(y) for y in ys) and set(line.get_xdata()) <= {0}


def test_an_interrupted_sweep_table_marks_the_cut_point_and_does_not_draw_it(tmp_path):
    from gpt2_lightning.profile.sweep import write_sweep

    done = run_data(0, steps=[12.0, 12.5, 13.0, 12.4, 12.6])
    cut = run_data(0, steps=[30.0, 31.0])
    cut["status"] = "incomplete"
    cut["experiments"]["train"]["interrupted"] = True
    figures, patch = _capture_figures()
    with patch:
        table, files = write_sweep("batch_size", [(1, done), (2, cut)], tmp_path,
                                   stopped={"by": "SIGTERM", "points": 4, "not_run": [4, 8]})
    header, _, first, second = table.splitlines()
    assert "status" in header and "complete" in first and "interrupted" in second
    ax = next(a for a in figures[0].axes if a.get_ylabel().startswith("step ms"))
    assert {x for line in ax.lines for x in line.get_xdata()} == {0}  # batch_size=1 only
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1"]
    md = (tmp_path / "sweep.md").read_text()
    assert "interrupted by SIGTERM: 1 of 4 points ran (batch_size=1); batch_size=2 was cut short" in md
    assert json.loads((tmp_path / "sweep.json").read_text())["status"] == "interrupted"
    # an uninterrupted sweep keeps its table as it was: no status column
    (tmp_path / "whole").mkdir()
    complete, _ = write_sweep("batch_size", [(1, done)], tmp_path / "whole")
    assert "status" not in complete.splitlines()[0]
    assert json.loads((tmp_path / "whole" / "sweep.json").read_text())["status"] == "complete"


def test_an_interrupted_sweep_over_a_modules_own_argument_names_its_points(tmp_path):
    """--sweep module_args.layers=1,2,4 stopped during its second point: the console and the table name the points by
    the argument's value (a plain getattr of 'module_args.layers' raised inside the interrupt handler)."""
    from gpt2_lightning.profile.interrupts import RunInterrupted
    from gpt2_lightning.profile.partial_runs import after_interrupt
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.sweep_settings import sweep_configs

    cfg = ProfileConfig(accelerator="cpu", module="tests/profile/own_models.py:TinyLM",
                        sweep="module_args.layers=1,2,4")
    configs = sweep_configs(cfg)
    run_dirs = [tmp_path / f"layers-{n}" for n in (1, 2, 4)]
    e = RunInterrupted(signal.SIGINT)
    e.progress = {"index": 1, "repeat": 1, "cut": None, "results": [run_data(0, steps=[12.0, 12.5, 13.0]), None, None]}
    said = []
    after_interrupt(e, configs, run_dirs, tmp_path, "module_args.layers", lambda *a, **k: said.append(" ".join(a)))
    text = "\n".join(said)
    assert "during module_args.layers=2" in text and "not run: module_args.layers=4" in text
    assert json.loads((tmp_path / "sweep.json").read_text())["not_run"] == [2, 4]
