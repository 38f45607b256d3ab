"""Every run says when its figures are unstable; CPU output carries no GPU-only lines; plots honest and titled."""

import copy

import pytest

from callbacks.timing import summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_data(step_ms, device="cpu", load=(3.5, 2.0, 1.0), steps=None):
    steps = steps or [step_ms] * 5
    stats = summarize(steps)
    parts = {"data": 1.0, "forward": 0.3, "backward": 0.5, "optimizer": 0.1}
    per_step = [{"step": i + 2, "warmup": False, "step_ms": s, "data_ms": 1.0, "forward_ms": 0.3 * s,
                 "backward_ms": 0.5 * s, "optimizer_ms": 0.1 * s} for i, s in enumerate(steps)]
    per_step = [{"step": 0, "warmup": True, "step_ms": 900.0, "data_ms": 1.0, "forward_ms": 1.0, "backward_ms": 1.0,
                 "optimizer_ms": 1.0}] + per_step
    return {
        "config": {"model": "tiny", "precision": "32-true", "batch_size": 2, "seq_len": 64, "steps": len(steps),
                   "warmup_steps": 1, "profiler": "none", "run_dir": "/r/x"},
        "env": {"device_type": device, "device_name": "AMD EPYC" if device == "cpu" else "NVIDIA H100",
                "cpu_count": 2},
        "status": "complete",
        "experiments": {
            "init": {"phases": {"init": summarize([30.0, 31.0, 29.0])}, "cold_init_ms": 50.0,
                     "device_startup_ms": 0.0 if device == "cpu" else 4000.0, "load_avg": list(load)},
            "inference": {"phases": {"forward": summarize([10.0, 10.5, 9.5])}, "naive_ms": 9.9,
                          "throughput": {"tokens_per_sec": 1e4, "tflops": 0.0012, "mfu_pct": None},
                          "load_avg": list(load)},
            "train": {"phases": {"step": stats, **{p: summarize([f * s if p != "data" else f for s in steps])
                                                     for p, f in parts.items()}},
                      "throughput": {"tokens_per_sec": 500.0, "tflops": 0.0012, "mfu_pct": None},
                      "memory": {"max_rss_gib": 0.4}, "per_step": per_step, "load_avg": list(load)},
        },
    }


def test_unstable_steps_warn_with_load_average_and_more_steps():
    from gpt2_lightning.report.render import format_summary, render_report

    data = run_data(0, steps=[64.0, 66.0, 70.0, 900.0, 1710.0])
    text = format_summary(data)
    warning = [x for x in text.splitlines() if x.startswith("WARNING")]
    assert len(warning) == 1
    assert "train figures are unstable" in warning[0] and "load average 3.50 2.00 1.00 on 2 cores" in warning[0]
    assert "more --steps (now 5)" in warning[0]
    assert "train figures are unstable" in render_report(data, {})


def test_steady_steps_do_not_warn():
    from gpt2_lightning.report.render import format_summary

    data = run_data(0, steps=[64.0, 66.0, 70.0, 65.0, 68.0])
    assert "WARNING" not in format_summary(data)


def test_threshold_is_the_documented_one():
    from gpt2_lightning.report.noise import unstable

    just_under = {"phases": {"step": {"n": 5, "p10_ms": 100.0, "p90_ms": 149.0}}}
    just_over = {"phases": {"step": {"n": 5, "p10_ms": 100.0, "p90_ms": 151.0}}}
    assert unstable("train", just_under) is None and unstable("train", just_over) == pytest.approx(1.51)
    builds = {"phases": {"init": {"n": 5, "p10_ms": 100.0, "p90_ms": 200.0}}}
    assert unstable("init", builds) is None  # builds spread up to 1.74 on a quiet machine


def test_cpu_summary_has_no_gpu_only_lines():
    from gpt2_lightning.report.render import format_summary, render_report

    text = format_summary(run_data(0, steps=[64.0, 66.0, 70.0, 65.0, 68.0]))
    assert "device start-up" not in text and "unsynchronised host timer" not in text
    assert "TFLOP/s" not in text and "1.20 GFLOP/s" in text
    assert "MFU n/a (no peak for CPUs)" in text and "MFU -" not in text
    assert "first build in the process 50.0 ms" in text
    report = render_report(run_data(0, steps=[64.0, 66.0, 70.0, 65.0, 68.0]), {})
    assert "Device start-up" not in report and "Naive vs synchronised" not in report
    assert "n/a (no peak for CPUs)" in report


def test_gpu_summary_keeps_startup_and_naive_lines():
    from gpt2_lightning.report.render import format_summary

    text = format_summary(run_data(0, device="cuda", steps=[64.0, 66.0, 70.0, 65.0, 68.0]))
    assert "device start-up 4.00 s" in text and "unsynchronised host timer reads" in text
    assert "n/a (no peak known for NVIDIA H100)" in text


def _drawn_bars(data, tmp_path):
    """The phases.png figure as drawn: {experiment: (title, right end of its stacked bar)}."""
    from unittest import mock

    from gpt2_lightning.report.plots import plot_phase_breakdown

    figures = []
    with mock.patch("gpt2_lightning.report.plots.plt.close", side_effect=figures.append):
        plot_phase_breakdown(data, tmp_path / "phases.png")
    out = {}
    for ax in figures[0].axes:
        bars = [p for p in ax.patches if p.get_width() > 0]
        if bars:
            out[ax.get_ylabel() or ax.get_yticklabels()[0].get_text()] = (
                ax.get_title(loc="left"), max(b.get_x() + b.get_width() for b in bars))
    return out


@pytest.mark.parametrize("n", [5, 4])
def test_phases_bar_ends_at_the_median_step_it_is_titled_with(tmp_path, n):
    """A noisy run: medians of the parts add up to 104.9 ms while the median step is 120 ms (the old bar stopped
    15 ms short of its own title). The bar is now the median step's own phases and ends at the median step."""
    rows = [(100.0, 40.0, 59.9), (300.0, 250.0, 49.8), (120.0, 20.0, 99.9), (310.0, 60.0, 249.6), (105.0, 45.0, 59.8)]
    rows = rows[:n]
    per_step = [{"step": i, "warmup": False, "step_ms": st, "data_ms": 0.0, "forward_ms": f, "backward_ms": b,
                 "optimizer_ms": 0.0} for i, (st, f, b) in enumerate(rows)]
    per_step.append({"step": 9, "warmup": True, "step_ms": 5000.0, "forward_ms": 1.0, "backward_ms": 1.0})
    data = run_data(0, steps=[r[0] for r in rows])
    data["experiments"]["train"]["per_step"] = per_step
    median_step = 120.0 if n == 5 else (120.0 + 300.0) / 2  # by hand: the middle one, or the middle two's mean
    assert data["experiments"]["train"]["phases"]["step"]["median_ms"] == pytest.approx(median_step)
    title, end = _drawn_bars(data, tmp_path)["train"]
    assert end == pytest.approx(median_step)
    assert f"median step {median_step:.1f} ms" in title
    # what the old bar drew: the sum of the phase medians, 15 ms short of the median step
    medians = {k: sorted(s[f"{k}_ms"] for s in per_step[:5])[2] for k in ("step", "forward", "backward")}
    assert n == 4 or medians["step"] - medians["forward"] - medians["backward"] == pytest.approx(15.1)


def test_phase_and_step_plots_are_titled(tmp_path):
    from gpt2_lightning.report.plots import _title, plot_per_step, plot_phase_breakdown

    data = run_data(0, steps=[64.0, 66.0, 70.0, 65.0, 68.0])
    assert _title(data) == "tiny · AMD EPYC · 32-true · B2×T64 · init, inference, train"
    for fn, name in ((plot_phase_breakdown, "p.png"), (plot_per_step, "s.png")):
        assert fn(data, tmp_path / name).read_bytes()[:8] == PNG_MAGIC


def test_sweep_drops_empty_panels_and_prints_units(tmp_path):
    from gpt2_lightning.report.plots import sweep_panels
    from gpt2_lightning.profile.sweep import format_sweep, sweep_rows, write_sweep

    quiet, busy = run_data(0, steps=[12.0, 12.5, 13.0, 12.4, 12.6]), run_data(0, steps=[64.0, 66.0, 70.0, 900.0, 1710.0])
    runs = [(1, quiet), (2, busy)]
    rows = sweep_rows("batch_size", runs)
    assert [c for c, _ in sweep_panels(rows)] == ["train tokens/s", "train step ms"]  # no MFU on a CPU
    gpu = copy.deepcopy(quiet)
    gpu["experiments"]["train"]["throughput"]["mfu_pct"] = 30.0
    assert "train MFU %" in [c for c, _ in sweep_panels(sweep_rows("batch_size", [(1, gpu)]))]
    table = format_sweep("batch_size", rows)
    header, _, first, second = table.splitlines()
    assert "train step " in header and "train step ms" not in header
    assert "12.5 ms" in first and "ok" in first
    assert "70.0 ms" in second and "UNSTABLE train p90/p10" in second and "load 3.50" in second
    _, files = write_sweep("batch_size", runs, tmp_path)
    md = (tmp_path / "sweep.md").read_text()
    assert "sweep over batch_size · tiny · AMD EPYC · 32-true" in md and "batch_size=2: train figures are unstable" in md
    assert (tmp_path / "sweep.png").read_bytes()[:8] == PNG_MAGIC


def test_energy_unavailable_is_said_once_per_run():
    from gpt2_lightning.report.render import format_summary

    data = run_data(0, steps=[12.0, 12.5, 13.0, 12.4, 12.6])
    why = "rapl: no powercap at /sys/class/powercap (not Linux, or a VM/container without RAPL)"
    for exp in ("inference", "train"):
        data["experiments"][exp]["energy"] = {"unavailable": why}
    lines = [line for line in format_summary(data).splitlines() if "energy unavailable" in line]
    assert lines == [f"energy unavailable (inference, train): {why}"]


def test_report_shows_device_startup_only_on_a_gpu():
    from gpt2_lightning.report.render import render_report

    cpu = run_data(0, steps=[12.0, 12.5, 13.0, 12.4, 12.6])
    cpu["env"]["device_startup_ms"] = 0.0
    assert "device_startup_ms" not in render_report(cpu, {})
    gpu = run_data(0, device="cuda", steps=[12.0, 12.5, 13.0, 12.4, 12.6])
    gpu["env"]["device_startup_ms"] = 4000.0
    assert "| device_startup_ms | 4000.0 |" in render_report(gpu, {})


def test_per_step_legends_never_cover_a_line(tmp_path):
    """Each panel's legend sits outside its plotting area: inside, it covered the train run's data line."""
    from unittest import mock

    from gpt2_lightning.report.plots import plot_per_step

    figures = []
    with mock.patch("gpt2_lightning.report.plots.plt.close", side_effect=figures.append):
        plot_per_step(run_data(0, steps=[12.0, 12.5, 13.0, 12.4, 12.6]), tmp_path / "per_step.png")
    fig = figures[0]
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(ax.get_window_extent(renderer)), ax.get_title()


def test_per_step_gives_each_phase_one_colour_of_its_own(tmp_path):
    """The init panel of an own module's run (construct_ms beside GPT-2's phases): every series' line and markers in
    one colour, and no two series alike (construct's markers took a new colour each, its line init_model's blue)."""
    from unittest import mock

    from matplotlib.colors import to_hex

    from gpt2_lightning.report.plots import plot_per_step

    data = run_data(0, steps=[12.0, 12.5, 13.0, 12.4, 12.6])
    data["experiments"] = {"init": {"phases": data["experiments"]["init"]["phases"], "per_step": [
        {"step": i, "warmup": i < 2, "init_ms": 30.0 + i, "init_model_ms": 20.0 + i, "init_optimizer_ms": 0.2,
         "construct_ms": 1.5 + 0.1 * i} for i in range(7)]}}
    figures = []
    with mock.patch("gpt2_lightning.report.plots.plt.close", side_effect=figures.append):
        plot_per_step(data, tmp_path / "per_step.png")
    ax = figures[0].axes[0]
    by_series = {}  # a series' line (labelled), then its 7 markers (unlabelled), as plotted
    for line in ax.lines:
        label = line.get_label()
        if not label.startswith("_"):
            current = label
        by_series.setdefault(current, set()).add(to_hex(line.get_color()))
    assert set(by_series) == {"init", "init_model", "init_optimizer", "construct"}
    assert all(len(colours) == 1 for colours in by_series.values()), by_series
    assert len({c for colours in by_series.values() for c in colours}) == 4, by_series


def _training_run():
    data = run_data(0, steps=[12.0, 12.5, 13.0, 12.4, 12.6])
    data["config"]["train"] = {"lr": 1e-3, "max_steps": 60}
    data["experiments"] = {"train": data["experiments"]["train"]}
    data["experiments"]["train"]["train_loss"] = [{"step": 9, "loss": 4.9153}, {"step": 59, "loss": 2.4871}]
    data["experiments"]["train"]["val_loss"] = [{"step": 0, "loss": 5.5497, "perplexity": 257.17},
                                                {"step": 60, "loss": 2.3837, "perplexity": 10.845}]
    return data


def test_training_report_is_titled_as_one_and_shows_the_loss(tmp_path):
    from unittest import mock

    from gpt2_lightning.report.render import render_report
    from gpt2_lightning.report.run_report import write_report

    data = _training_run()
    figures = []
    with mock.patch("gpt2_lightning.report.plots.plt.close", side_effect=figures.append):
        assert write_report(data, tmp_path) == []
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# GPT-2 training run: ")
    assert "| train loss (step 9 → 59) | 4.9153 | 2.4871 |" in report
    assert "| validation loss (step 0 → 60) | 5.5497 | 2.3837 |" in report
    assert "![loss curve](loss.png)" in report and (tmp_path / "loss.png").read_bytes()[:8] == PNG_MAGIC
    assert report.index("## Training") < report.index("## train")  # what it learned, beside (before) the timing
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in figures[-1].axes[0].lines}
    assert lines == {"train": ([9, 59], [4.9153, 2.4871]), "validation": ([0, 60], [5.5497, 2.3837])}
    # a profile keeps its title and has no loss curve
    profile = run_data(0, steps=[12.0, 12.5, 13.0, 12.4, 12.6])
    assert render_report(profile, {}).startswith("# GPT-2 profile: ") and "## Training" not in render_report(profile, {})


def test_sweep_judges_every_experiment_and_says_not_judged_for_few_steps():
    from gpt2_lightning.profile.sweep import noise_cell, sweep_rows

    point = run_data(0, steps=[12.0, 12.5, 13.0, 12.4, 12.6])
    point["experiments"]["inference"]["phases"]["forward"] = summarize([5.0, 5.1, 7.7, 5.2, 9.0])  # p90/p10 > 1.5
    few = run_data(0, steps=[12.0, 12.5])
    cells = [noise_cell(r) for r in sweep_rows("batch_size", [(1, point), (2, few)])]
    # p10 = 5.0 + 0.4 x 0.1 = 5.04, p90 = 7.7 + 0.6 x 1.3 = 8.48: 1.68
    assert cells[0].startswith("UNSTABLE inference p90/p10 1.68, load 3.50") and "ok: train" in cells[0]
    assert "not judged (under 5): init (3)" in cells[0]
    assert "ok" not in cells[1] and "not judged (under 5): init (3), inference (3), train (2)" in cells[1]


def test_sweep_rows_in_value_order_with_one_number_format_per_column(tmp_path):
    from gpt2_lightning.profile.sweep import format_sweep, sweep_rows

    runs = []
    for b, tflops in ((4, 0.0703), (1, 0.029), (2, 0.05)):
        data = run_data(0, steps=[12.0 * b] * 5)
        data["experiments"]["train"]["throughput"]["tflops"] = tflops
        runs.append((b, data))
    rows = sweep_rows("batch_size", runs)
    assert [r["batch_size"] for r in rows] == [1, 2, 4]  # given as 4,1,2
    table = format_sweep("batch_size", rows).splitlines()
    header = table[0].split("  ")
    assert "train GFLOP/s" in table[0] and "train peak RSS GiB (process)" in table[0]
    column = [h.strip() for h in header if h.strip()].index("train GFLOP/s")
    cells = [[c for c in line.split("  ") if c.strip()][column].strip() for line in table[2:]]
    assert cells == ["29.0", "50.0", "70.3"]
    models = sweep_rows("model", [("gpt2-medium", runs[0][1]), ("tiny", runs[1][1]), ("gpt2", runs[2][1])])
    assert [r["model"] for r in models] == ["tiny", "gpt2", "gpt2-medium"]


def test_sweep_plot_labels_sit_above_the_whiskers(tmp_path):
    from unittest import mock

    from gpt2_lightning.report.plots import plot_sweep
    from gpt2_lightning.profile.sweep import sweep_rows

    runs = [(1, run_data(0, steps=[10.0, 10.0, 10.0, 30.0, 30.0])),
            (2, run_data(0, steps=[20.0, 20.0, 20.0, 20.0, 21.0]))]
    rows = sweep_rows("batch_size", runs)
    with mock.patch("gpt2_lightning.report.plots.plt.close") as close:
        plot_sweep("batch_size", rows, tmp_path / "s.png")
    fig = close.call_args.args[0]
    ax = next(a for a in fig.axes if a.get_ylabel().startswith("step ms"))
    anchors = {round(t.xy[0]): t.xy[1] for t in ax.texts}
    assert anchors[0] >= rows[0]["train step p10-p90 ms"][1] > rows[0]["train step ms"]  # above the whisker's top
    assert anchors[1] >= rows[1]["train step p10-p90 ms"][1]


def test_a_first_step_faster_than_a_steady_one_reads_so_and_an_interruption_is_said_once():
    from gpt2_lightning.report.render import render_report

    data = run_data(0, steps=[64.0, 66.0, 70.0, 65.0, 68.0])
    data["experiments"]["train"] |= {"first_step_ms": 16.0, "first_step_overhead_ms": -50.011}
    assert "step: 16.0 ms, 50.0 ms faster than a steady one." in render_report(data, {})  # was "-50.011 ms over"
    data["experiments"]["train"]["first_step_overhead_ms"] = 12.5
    assert "step: 16.0 ms, 12.5 ms over a steady one." in render_report(data, {})
    data["experiments"]["train"]["interrupted"] = True
    report = render_report(data, {})
    assert "**Interrupted:** its figures are over the 5 counted step(s)" in report and "interrupted;" not in report
    data["experiments"]["train"]["phases"] = {}  # stopped before its first counted step
    assert "**Interrupted** before any counted step was measured." in render_report(data, {})


def test_a_nan_loss_is_saved_as_null_and_warned_about(tmp_path):
    """16-true on a CPU diverges at step 1: results.json refused the NaN (allow_nan=False) and the run ended in a
    traceback, its directory gone. Now the NaN is null and the console and report.md say the loss diverged."""
    import json

    from gpt2_lightning.report.render import format_summary, render_report
    from gpt2_lightning.report.results import RunResults

    data = run_data(0, steps=[64.0, 66.0, 70.0, 65.0, 68.0])
    data["experiments"]["train"]["train_loss"] = [{"step": 0, "loss": 6.97}, {"step": 1, "loss": float("nan")},
                                                  {"step": 2, "loss": float("inf")}]
    data["experiments"]["train"]["throughput"]["tflops"] = float("nan")
    results = RunResults(env=data["env"], config=data["config"], experiments=data["experiments"])
    results.save(tmp_path / "results.json")
    saved = json.loads((tmp_path / "results.json").read_text())  # strict JSON: no NaN token in it
    assert [x["loss"] for x in saved["experiments"]["train"]["train_loss"]] == [6.97, None, None]
    assert saved["experiments"]["train"]["throughput"]["tflops"] is None
    for text in (format_summary(saved), render_report(saved, {}), format_summary(data)):
        assert "WARNING: train: the loss was not a finite number from step 1 on (2 of 3 logged steps" in text
    data["experiments"]["train"]["train_loss"] = [{"step": 0, "loss": 6.97}, {"step": 1, "loss": 6.5}]
    assert "not a finite number" not in format_summary(data)
