"""The regression gate (compare.py --fail-if-slower), --json, folders of runs given to compare.py, and the history."""

import json

import pytest

from gpt2_lightning.report.gate import GATE_FLOOR_PCT
from tests.report.test_judgement import BASE, repeated, single

PCT = f"{GATE_FLOOR_PCT['cpu']:g}"  # the smallest threshold the gate takes on a CPU without --allow-below-floor
SLOWER = [m * 1.5 for m in BASE]  # a planted 50% slowdown


def write(path, data):
    path.mkdir(parents=True, exist_ok=True)
    data = json.loads(json.dumps(data))
    data["config"]["run_dir"] = str(path)
    (path / "results.json").write_text(json.dumps(data))
    return str(path)


def gate(tmp_path, base, candidate, *flags):
    """compare.py BASE CANDIDATE FLAGS in this process: (exit code, stdout, stderr)."""
    from gpt2_lightning.report.compare_cli import main

    args = [write(tmp_path / "main", base), write(tmp_path / "change", candidate), "--out", str(tmp_path / "cmp"),
            *flags]
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    return code


def test_a_planted_slowdown_fails_the_gate_with_one_line_per_regression(tmp_path, capsys):
    code = gate(tmp_path, repeated(BASE), repeated(SLOWER), "--fail-if-slower", PCT)
    out = capsys.readouterr().out
    assert code == 3
    lines = [x for x in out.splitlines() if x.startswith("REGRESSION")]
    assert len(lines) == 2  # time per token and tokens/s of the one experiment measured
    tps = next(x for x in lines if "train: tokens/s" in x)
    # 128 tokens in 100 ms against 150 ms; range: 98 / (103 x 1.5) = 0.63 to 103 / (98 x 1.5) = 0.70
    assert tps.startswith("REGRESSION train: tokens/s 1.28k -> 853.3 (change): 0.67x [0.63-0.70x] beyond noise")
    # a token takes 50% longer: tokens/s 1 / 1.5 - 1 = -33.3%
    assert tps.endswith(f"time per token +50.0%, tokens/s -33.3% (slower by more than {PCT}%)")
    assert out.splitlines()[-1] == f"gate: 2 regression(s) over {PCT}% beyond noise (exit 3)"


def test_a_rate_that_fell_is_said_as_time_per_token_and_rate_in_the_lines_and_the_json(tmp_path, capsys):
    """The walk-through: "tokens/s 2.22k -> 250.2: 0.11x, 787.4% slower" (a rate cannot fall by 787%)."""
    code = gate(tmp_path, repeated(BASE), repeated([m * 9 for m in BASE]), "--fail-if-slower", PCT)
    out = capsys.readouterr().out
    assert code == 3
    lines = {x.split(" (change)")[0]: x for x in out.splitlines() if x.startswith("REGRESSION")}
    # 9x the time: a token takes 800% longer; the rate is 1/9 of the baseline's, 88.9% lower
    assert lines["REGRESSION train: tokens/s 1.28k -> 142.2"].endswith(
        f"time per token +800.0%, tokens/s -88.9% (slower by more than {PCT}%)")
    assert lines["REGRESSION train: time per token 781 µs -> 7.031 ms"].endswith(
        f"beyond noise (repeats): +800.0% (slower by more than {PCT}%)")
    assert "% slower" not in out  # never a rate "N% slower"
    code = gate(tmp_path / "j", repeated(BASE), repeated([m * 9 for m in BASE]), "--fail-if-slower", PCT, "--json")
    found = {r["figure"]: r for r in json.loads(capsys.readouterr().out)["gate"]["regressions"]}
    tps, tpt = found["train: tokens/s"], found["train: time per token"]
    assert tps["rate"] and not tpt["rate"]
    for r in (tps, tpt):  # the same two figures the lines quote, whichever way the row reads
        assert r["slower_pct"] == pytest.approx(800.0) and r["rate_change_pct"] == pytest.approx(-800 / 9)


def test_the_gate_passes_identical_runs_and_slowdowns_under_the_threshold(tmp_path, capsys):
    assert gate(tmp_path, repeated(BASE), repeated(list(reversed(BASE))), "--fail-if-slower", PCT) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"gate: no regression over {PCT}% beyond noise (exit 0)"
    # 12% slower and beyond noise, but under the threshold asked for
    assert gate(tmp_path / "b", repeated(BASE), repeated([m * 1.12 for m in BASE]), "--fail-if-slower", PCT) == 0


def test_a_slowdown_within_noise_passes(tmp_path):
    noisy = [100.0, 160.0, 98.0, 150.0, 99.0]
    assert gate(tmp_path, repeated(noisy), repeated([m * 1.5 for m in noisy]), "--fail-if-slower", PCT) == 0


def test_different_settings_are_refused_unless_meant(tmp_path, capsys):
    code = gate(tmp_path, repeated(BASE), repeated(BASE, batch_size=4), "--fail-if-slower", PCT)
    err = capsys.readouterr().err
    assert code == 2 and "batch size (2 vs 4)" in err and "--allow-different-settings" in err
    assert len(err.strip().splitlines()) == 1
    assert gate(tmp_path / "b", repeated(BASE), repeated(BASE, batch_size=4), "--fail-if-slower", PCT,
                "--allow-different-settings") == 0


def test_a_threshold_below_the_machines_floor_is_refused_unless_told(tmp_path, capsys):
    code = gate(tmp_path, repeated(BASE), repeated(SLOWER), "--fail-if-slower", "5")
    err = capsys.readouterr().err
    assert code == 2 and f"--fail-if-slower 5: below {PCT}%" in err and "--allow-below-floor" in err
    assert gate(tmp_path / "b", repeated(BASE), repeated(SLOWER), "--fail-if-slower", "5", "--allow-below-floor") == 3


def test_a_candidate_that_failed_an_experiment_does_not_pass(tmp_path, capsys):
    failed = repeated(BASE)
    failed["experiments"]["train"] = {"error": "train: out of memory", "error_type": "out_of_memory"}
    assert gate(tmp_path, repeated(BASE), failed, "--fail-if-slower", PCT) == 3
    assert "REGRESSION train: tokens/s 1.28k -> not measured (change)" in capsys.readouterr().out


def test_json_output_for_other_tools(tmp_path, capsys):
    code = gate(tmp_path, repeated(BASE), repeated(SLOWER), "--fail-if-slower", PCT, "--json")
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert code == 3 and data["gate"]["exit_code"] == 3 and len(data["gate"]["regressions"]) == 2
    reg = next(r for r in data["gate"]["regressions"] if r["figure"] == "train: tokens/s")
    assert reg["ratio"] == pytest.approx(1 / 1.5) and reg["basis"] == "repeats" and reg["candidate"] == "change"
    assert [r["label"] for r in data["runs"]] == ["main", "change"]
    assert "wrote" in captured.err and "wrote" not in captured.out


def test_without_repeats_the_gate_says_the_noise_is_unknown(tmp_path, capsys):
    steady = [10.0, 10.1, 10.2, 10.3, 10.4]
    assert gate(tmp_path, single(steady), single([1.05 * x for x in steady]), "--fail-if-slower", PCT) == 0
    assert "judged without repeats, so the between-run noise is unknown" in capsys.readouterr().out
    # 50% slower, ranges apart, but under what single CPU runs tell apart: not a pass (was exit 0)
    assert gate(tmp_path / "b", single(steady), single([1.5 * x for x in steady]), "--fail-if-slower", PCT) == 2
    out = capsys.readouterr().out
    assert ("CANNOT GATE train: tokens/s 12.55k -> 8.37k (change): 0.67x: time per token +50.0%, tokens/s -33.3% "
            "(slower by more than 20%) but not judged (under the 150% minimum effect without repeats)") in out
    assert "--repeat 5" in out


def test_compare_on_a_sweep_folder_says_how_to_compare_its_points(tmp_path, capsys):
    from gpt2_lightning.report.compare_cli import main

    sw = tmp_path / "sw"
    for b in (1, 4):
        write(sw / f"batch_size-{b}", single(BASE, batch_size=b))
    (sw / "sweep.json").write_text(json.dumps({"key": "batch_size", "rows": []}))
    with pytest.raises(SystemExit) as e:
        main([str(sw)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert f"{sw} is a sweep over batch_size (points: batch_size-1, batch_size-4" in err
    assert f"compare.py {sw}/batch_size-1 {sw}/batch_size-4" in err
    (sw / "sweep.json").unlink()
    with pytest.raises(SystemExit):
        main([str(sw), str(sw / "batch_size-1")])
    assert "is a folder of 2 runs" in capsys.readouterr().err
    # compare.py's own output given back to it (was: "results.json: no such file")
    main([str(sw / "batch_size-1"), str(sw / "batch_size-4"), "--out", str(tmp_path / "a-vs-b")])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(sw / "batch_size-1"), str(tmp_path / "a-vs-b")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and f"{tmp_path / 'a-vs-b'} is a comparison's output, not a run" in err


def test_comparison_png_compares_rates_when_shapes_differ():
    from gpt2_lightning.report.compare import plotted_rows
    from gpt2_lightning.report.results import compare

    runs = [single(BASE, batch_size=1), single([2 * m for m in BASE], batch_size=4, tokens_per_step=512)]
    rows, ylabel = plotted_rows(runs, compare(runs))
    assert [r["label"] for r in rows] == ["train: tokens/s"] and ylabel.startswith("tokens/s")
    assert rows[0]["speedups"][1] == pytest.approx(2.0)  # 4x the tokens in 2x the time: twice as fast
    same = [single(BASE), single(BASE)]
    rows, ylabel = plotted_rows(same, compare(same))
    assert [r["label"] for r in rows] == ["train: step"] and ylabel == "median ms (log scale)"


def test_history_orders_by_commit_and_marks_changes_beyond_noise(tmp_path):
    from gpt2_lightning.report.history import write_history

    commits = {"c": ("2026-11-03T00:00:00+00:00", 1.0), "a": ("2026-11-01T00:00:00+00:00", 1.0),
               "b": ("2026-11-02T00:00:00+00:00", 1.3)}  # b made things 30% slower; c undid it
    for name, (when, factor) in commits.items():
        data = repeated([m * factor for m in BASE])
        data["env"]["git"] = {"commit": name * 40, "commit_time": when, "dirty": False}
        write(tmp_path / "nightly" / name, data)
    text, files = write_history(tmp_path / "nightly", tmp_path / "out")
    lines = [x for x in text.splitlines() if x[:1] in "abc"]
    assert [x.split()[0] for x in lines] == ["a", "b", "c"]
    assert "SLOWER, beyond noise" in lines[1] and "0.77x" in lines[1]
    assert "FASTER, beyond noise" in lines[2] and "1.30x" in lines[2]
    assert files[1].read_bytes()[:4] == b"\x89PNG" and "| a | aaaaaaaaaa |" in files[0].read_text()


def test_history_names_a_run_with_a_planted_slowdown(tmp_path):
    from gpt2_lightning.report.history import write_history

    write(tmp_path / "nightly" / "plain", repeated(BASE))
    write(tmp_path / "nightly" / "slowed", repeated(SLOWER, add_delay_ms=8.0))
    text, _ = write_history(tmp_path / "nightly", tmp_path / "out")
    warning = next(x for x in text.splitlines() if x.startswith("WARNING"))
    assert warning.startswith("WARNING: slowed ran with --add-delay-ms") and "plain" not in warning
    assert "mixes settings" not in text  # a planted delay is not a change of the work itself
    write(tmp_path / "nightly" / "bigger", repeated(BASE, batch_size=4))
    text, _ = write_history(tmp_path / "nightly", tmp_path / "out")
    assert "WARNING: the runs differ in batch size, planted delay: the trend mixes settings." in text


def test_history_plot_labels_tell_runs_of_one_commit_apart():
    from gpt2_lightning.report.history import tick_labels

    rows = [{"commit": "aaaaaaaaaa", "run": "mon"}, {"commit": "aaaaaaaaaa", "run": "tue"},
            {"commit": "bbbbbbbbbb", "run": "wed"}, {"commit": "-", "run": "local"}]
    assert tick_labels(rows) == ["aaaaaaaaaa\nmon", "aaaaaaaaaa\ntue", "bbbbbbbbbb", "local"]
