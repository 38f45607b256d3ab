"""Comparisons that can be trusted: what differs between runs, the noise judgement on every ratio, the warnings."""

import json
import random
import subprocess
import sys

import pytest

from callbacks.timing import summarize
from tests.conftest import ROOT


def run(steps_ms, name="r", batch=8, device=("cuda", "NVIDIA H100"), profiler="none", experiments=("train",),
        **config):
    """A results dict whose train steps (and inference passes) took ``steps_ms``."""
    stats = summarize(steps_ms)
    tokens = batch * 1024 / (stats["median_ms"] / 1000)
    exps = {"train": {"phases": {"step": stats}, "throughput": {"tokens_per_sec": tokens, "tflops": None,
                                                                 "mfu_pct": None}},
            "inference": {"phases": {"forward": stats}}, "init": {"phases": {"init": stats}}}
    cfg = {"run_dir": f"/runs/{name}", "model": "gpt2", "precision": "32-true", "batch_size": batch, "seq_len": 1024,
           "compile": False, "profiler": profiler, "strategy": "auto", "devices": "1", "num_nodes": 1, "steps": 5,
           "warmup_steps": 2, "init_on": "device", "data": None} | config
    return {"schema_version": 1, "status": "complete", "config": cfg,
            "env": {"device_type": device[0], "device_name": device[1], "torch": "2.13.0", "lightning": "2.6.6",
                    "hostname": "h", "torch_threads": 16},
            "experiments": {e: exps[e] for e in experiments}}


def draws(seed, n=5, mean=100.0, sd=5.0):
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


def step_row(rows):
    return next(r for r in rows if r["label"] == "train: step")


def test_two_runs_from_one_distribution_are_within_noise():
    from gpt2_lightning.report.results import compare

    rows = compare([run(draws(1)), run(draws(2))])
    row = step_row(rows)
    assert row["noise"] == [None, "within noise"]
    low, high = row["speedup_ranges"][1]
    assert low <= 1.0 <= high
    first = summarize(draws(1))
    assert row["ranges"][0] == (first["p10_ms"], first["p90_ms"])


def test_one_distribution_is_rarely_called_different():
    """The false-alarm rate the docs quote: 5 steps per run, 2-3% of pairs; 10 steps, under 1%."""
    from gpt2_lightning.report.results import compare

    for n, most in ((5, 0.05), (10, 0.01)):
        called = sum(step_row(compare([run(draws(2 * i, n)), run(draws(2 * i + 1, n))]))["noise"][1] != "within noise"
                     for i in range(400))
        assert called / 400 <= most, (n, called)


def test_clearly_different_runs_give_a_ratio_beyond_noise():
    from gpt2_lightning.report.compare import format_comparison
    from gpt2_lightning.report.results import compare

    runs = [run(draws(1, mean=130.0, sd=2.0)), run(draws(2, mean=100.0, sd=2.0))]
    rows = compare(runs)
    row = step_row(rows)
    assert row["noise"][1] == "beyond noise"
    assert row["speedups"][1] == pytest.approx(1.3, rel=0.05)
    low, high = row["speedup_ranges"][1]
    assert 1.0 < low <= row["speedups"][1] <= high
    tps = next(r for r in rows if r["label"] == "train: tokens/s")
    assert tps["noise"][1] == "beyond noise" and tps["speedups"][1] == pytest.approx(row["speedups"][1])
    text = format_comparison(["slow", "fast"], rows, runs)
    line = next(x for x in text.splitlines() if x.startswith("train: step"))
    assert f"{row['speedups'][1]:.2f}x [{low:.2f}-{high:.2f}x] beyond noise" in line and "≈" not in line


def test_within_noise_is_marked_in_the_table():
    from gpt2_lightning.report.compare import format_comparison
    from gpt2_lightning.report.results import compare

    runs = [run(draws(1)), run(draws(2))]
    text = format_comparison(["a", "b"], compare(runs), runs)
    line = next(x for x in text.splitlines() if x.startswith("train: step"))
    assert "≈ within noise" in line


def test_too_few_steps_are_not_judged():
    from gpt2_lightning.report.results import compare

    row = step_row(compare([run([100.0, 101.0, 99.0]), run([200.0, 201.0, 199.0])]))
    assert row["noise"] == [None, None] and row["speedup_ranges"][1] is None
    assert row["speedups"][1] == pytest.approx(0.5)  # the ratio is still shown, unjudged


def test_settings_that_differ_block():
    from gpt2_lightning.report.compare import format_settings, settings_table

    a = run(draws(1), "a", batch=1, device=("cpu", "AMD EPYC"))
    b = run(draws(2), "b", batch=2, device=("cuda", "NVIDIA H100"), precision="bf16-mixed")
    differ, same = settings_table([a, b])
    assert dict(differ) == {"precision": ["32-true", "bf16-mixed"], "batch size": ["1", "2"],
                            "device": ["cpu: AMD EPYC", "cuda: NVIDIA H100"]}
    assert ("model", "gpt2") in same and ("torch", "2.13.0") in same
    text = format_settings([a, b], ["a", "b"])
    lines = text.splitlines()
    assert lines[0] == "Settings that differ:"
    assert any(x.split() == ["batch", "size", "1", "2"] for x in lines)
    assert "Same in every run: made by profile.py; model gpt2;" in text


def test_versions_and_strategy_show_when_they_differ():
    from gpt2_lightning.report.compare import settings_table

    a, b = run(draws(1)), run(draws(2), strategy="ddp", devices="8")
    b["env"] |= {"torch": "2.11.0", "lightning": "2.5.0"}
    differ = dict(settings_table([a, b])[0])
    assert set(differ) == {"strategy", "devices x nodes", "torch", "lightning"}


def test_a_planted_slowdown_is_a_setting_that_differs_and_is_warned_about():
    """A run with --add-delay-ms (a sleep in every forward pass, for checks) was compared as having "the same
    settings" as a plain one: nothing said that its figures were not the code's."""
    from gpt2_lightning.report.compare import format_settings, settings_table, warnings_for

    plain, slowed = run(draws(1), "main"), run(draws(2), "slow", add_delay_ms=40.0)
    assert dict(settings_table([plain, slowed])[0]) == {
        "planted delay": ["none", "40 ms per forward pass (--add-delay-ms)"]}
    assert "same settings" not in format_settings([plain, slowed], ["main", "slow"])
    warned = warnings_for([plain, slowed], ["main", "slow"])
    assert len(warned) == 1 and warned[0].startswith("WARNING: slow (40 ms per forward pass (--add-delay-ms))")
    assert settings_table([plain, run(draws(2), add_delay_ms=0.0)])[0] == []  # 0: no delay, as without the flag


def test_a_ddp_run_is_compared_per_process_and_over_the_whole_job():
    """A 2-process run against a single one: rank 0's rows say so; a row of its own reads the job's rate, where the
    single run's own rate is all of it (before, the table read rank 0's 3.15k against 11.1k while the time to train
    beside it used the global 6.29k)."""
    from gpt2_lightning.report.compare import warnings_for
    from gpt2_lightning.report.results import compare

    single = run(draws(1), "one")
    ddp = run(draws(1), "ddp", devices="2", strategy="ddp")
    per_rank = ddp["experiments"]["train"]["throughput"]["tokens_per_sec"]
    ddp["experiments"]["train"] |= {"world_size": 2, "global_tokens_per_sec": 2 * per_rank}
    rows = {r["label"]: r for r in compare([single, ddp])}
    assert rows["train: tokens/s (rank 0)"]["values"][1] == per_rank
    assert rows["train: tokens/s, whole job"]["values"] == [
        single["experiments"]["train"]["throughput"]["tokens_per_sec"], 2 * per_rank]
    assert "inference: tokens/s, whole job" not in rows  # no rate there, in either run
    warned = [w for w in warnings_for([single, ddp], ["one", "ddp"]) if "processes" in w]
    assert len(warned) == 1 and "one: 1, ddp: 2" in warned[0]
    assert not any("whole job" in r["label"] or "rank 0" in r["label"]
                   for r in compare([single, run(draws(2))]))  # single processes: no such rows


def test_warnings_profiler_experiments_shapes_and_tools():
    from gpt2_lightning.report.compare import warnings_for

    base = run(draws(1))
    assert warnings_for([base, run(draws(2))], ["a", "b"]) == []
    profiled = warnings_for([base, run(draws(2), profiler="pytorch")], ["a", "b"])
    assert len(profiled) == 1 and "b (--profiler pytorch)" in profiled[0]
    fewer = warnings_for([run(draws(1), experiments=("init", "inference", "train")), base], ["a", "b"])
    assert len(fewer) == 1 and "a: init, inference, train; b: train" in fewer[0]
    shapes = warnings_for([base, run(draws(2), batch=2)], ["a", "b"])
    assert len(shapes) == 1 and "compare tokens/s" in shapes[0]
    trained = run(draws(2), train={"max_steps": 10})
    assert any("train.py and profile.py" in w for w in warnings_for([base, trained], ["a", "b"]))


def test_an_unstable_run_is_named_in_the_comparison():
    from gpt2_lightning.report.compare import warnings_for

    busy = run([64.0, 70.0, 1710.0, 66.0, 900.0])
    busy["experiments"]["train"]["load_avg"] = [3.5, 2.0, 1.0]
    warnings = warnings_for([run(draws(1)), busy], ["quiet", "busy"])
    assert len(warnings) == 1
    assert warnings[0].startswith("busy: WARNING: train figures are unstable") and "load average 3.50" in warnings[0]


def test_compare_script_end_to_end(tmp_path):
    paths = []
    for name, data in (("cpu", run(draws(1, mean=9000.0, sd=90.0), "cpu", device=("cpu", "AMD EPYC"))),
                       ("gpu", run(draws(2, mean=50.0, sd=0.5), "gpu", profiler="pytorch"))):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(data))
    out = tmp_path / "cmp"
    proc = subprocess.run([sys.executable, "scripts/compare.py", *map(str, paths), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Settings that differ:"
    assert any(x.startswith("device") and "cpu: AMD EPYC" in x and "cuda: NVIDIA H100" in x for x in lines)
    assert any(x.startswith("WARNING: gpu (--profiler pytorch)") for x in lines)
    step = next(x for x in lines if x.startswith("train: step"))
    ratio = summarize(draws(1, mean=9000.0, sd=90.0))["median_ms"] / summarize(draws(2, mean=50.0, sd=0.5))["median_ms"]
    assert f"{ratio:.0f}x [" in step and "beyond noise" in step
    md = (out / "comparison.md").read_text()
    assert "## Settings that differ" in md and "| device | cpu: AMD EPYC | cuda: NVIDIA H100 |" in md


def test_comparison_title_names_what_differs():
    from gpt2_lightning.report.compare import comparison_title

    a = run(draws(1), "a", device=("cpu", "AMD EPYC"))
    b = run(draws(2), "b", device=("cuda", "NVIDIA H100"), profiler="pytorch")
    assert comparison_title([a, b], ["a", "b"]) == ("gpt2 · AMD EPYC vs NVIDIA H100 · 32-true · runs: a, b · "
                                                    "also differ: profiler")



def test_the_judgement_column_reads_from_the_left_under_its_header():
    """The walk-through: the last column's header sat right-aligned ~80 columns from where its cells' phrases began."""
    from gpt2_lightning.report.compare import format_comparison
    from gpt2_lightning.report.results import compare

    runs = [run(draws(1), "main"), run([3 * x for x in draws(2)], "slow"), run([100.0, 101.0, 99.0], "few")]
    lines = format_comparison(["main", "slow", "few"], compare(runs), runs).split("\n\n")[0].splitlines()
    header, rows = lines[0], [x for x in lines[2:] if x.startswith("train: step")]
    for label in ("slow vs main", "few vs main"):
        start = header.index(label)
        for row in rows:  # each phrase starts with its speed-up ("0.33x [...] beyond noise", "1.00x (not judged: ...)")
            assert row[start:].split()[0].endswith("x") and row[start - 2:start] == "  ", (label, row)
    assert "| figure | main | slow | slow vs main | few | few vs main |\n|---|---:|---:|---|---:|---|" in \
        format_comparison(["main", "slow", "few"], compare(runs), runs, markdown=True)


def test_the_table_comes_before_the_warnings_with_one_line_counting_them():
    """The walk-through: 11 warning lines came before the table and pushed it off the screen."""
    from gpt2_lightning.report.compare import format_full
    from gpt2_lightning.report.results import compare

    runs = [run(draws(1), "main", profiler="pytorch"), run(draws(2), "slow", add_delay_ms=40.0,
                                                           experiments=("train", "inference"))]
    text = format_full(runs, ["main", "slow"], compare(runs))
    lines = text.splitlines()
    heads_up = lines.index("3 warnings about these runs, under the table: read them before quoting a ratio from it.")
    table = next(i for i, x in enumerate(lines) if x.startswith("figure "))
    warned = [i for i, x in enumerate(lines) if x.startswith("WARNING: ")]
    assert len(warned) == 3 and heads_up < table < lines.index("Warnings:") < min(warned)
    md = format_full(runs, ["main", "slow"], compare(runs), markdown=True)
    assert md.index("**3 warnings") < md.index("## Figures") < md.index("## Warnings") < md.index("- WARNING: ")
