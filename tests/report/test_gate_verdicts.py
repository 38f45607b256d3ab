"""The gate is never green when it cannot judge (issue 26.1-26.3, 28.7): a gated figure slower than the threshold that
could not be judged exits 2 with what to rerun; the same run twice is refused; a NaN figure is not measured; times of
different work are not judged; with several processes the whole job's rate and the slowest rank are gated."""

import math
import re
from pathlib import Path

import pytest

from callbacks.timing import summarize
from tests.report.test_gate import PCT, gate, write
from tests.report.test_judgement import BASE, repeated, single


def cannot_lines(out):
    return [x for x in out.splitlines() if x.startswith("CANNOT GATE")]


def test_two_repeats_with_a_planted_slowdown_cannot_gate(tmp_path, capsys):
    """Issue: --repeat 2 with a planted --add-delay-ms 40 read 0.44x and the gate said exit 0."""
    code = gate(tmp_path, repeated(BASE[:2]), repeated([m * 2.25 for m in BASE[:2]]), "--fail-if-slower", PCT)
    out = capsys.readouterr().out
    assert code == 2
    lines = cannot_lines(out)
    assert len(lines) == 2  # tokens/s and time per token of train, the one experiment measured
    # 2.25x the time: 1 / 2.25 = 0.44x, a token takes 125% longer
    tps = next(x for x in lines if "train: tokens/s" in x)
    assert ("0.44x: time per token +125.0%, tokens/s -55.6% (slower by more than 20%) but not judged (2 and 2 "
            "repeats: too few to judge") in tps
    assert tps.endswith("rerun both with --repeat 5")
    assert out.splitlines()[-1] == f"gate: cannot gate: 2 figure(s) slower than {PCT}% could not be judged (exit 2)"


def test_too_few_steps_cannot_gate(tmp_path, capsys):
    """Issue: single runs of --steps 2 with a planted 300 ms delay (0.09x) passed."""
    base, slow = single([30.0, 31.0]), single([330.0, 331.0])
    assert gate(tmp_path, base, slow, "--fail-if-slower", PCT) == 2
    lines = cannot_lines(capsys.readouterr().out)
    assert len(lines) == 2
    assert all("(under 5 steps): rerun both with more --steps (at least 5; these ran 2 and 2) and --repeat 5" in x
               for x in lines)
    # 30.5 ms against 330.5 ms: 330.5 / 30.5 = 10.836 the time, 30.5 / 330.5 - 1 = -90.8% the rate
    assert "0.0923x: time per token +983.6%, tokens/s -90.8% (slower by more than 20%)" in lines[0]


def test_a_candidate_whose_repeats_failed_cannot_gate(tmp_path, capsys):
    """Issue: a candidate with 2 of its 5 repeats failed passed; 5 against 3 is a 3.6% chance of a false alarm."""
    from gpt2_lightning.report.repeat_summary import merge_repeats

    steps = lambda m: [m * (1 + 0.01 * k) for k in (-2, -1, 0, 1, 2)]  # noqa: E731
    base = merge_repeats([single(steps(m), repeat=5) for m in BASE], Path("/runs/main"), 5)
    failed = single(steps(150.0), repeat=5)
    failed["experiments"]["train"] = {"error": "train: out of memory"}
    kept = [single(steps(m * 1.5), repeat=5) for m in BASE[:3]]
    candidate = merge_repeats([kept[0], failed, kept[1], None, kept[2]], Path("/runs/change"), 5)
    assert gate(tmp_path, base, candidate, "--fail-if-slower", PCT) == 2
    line = next(x for x in cannot_lines(capsys.readouterr().out) if "train: tokens/s" in x)
    assert "(5 and 3 repeats: too few to judge" in line
    assert line.endswith("rerun both with --repeat 5 (change: 3 of 5 repeats measured train, the others failed "
                         "(its report.md says why))")


def test_a_busy_runner_cannot_gate(tmp_path, capsys):
    """Issue: threads that waited for a core 30% of the time; the pair is not judged, and not a pass."""
    busy = {"waiting_share": 0.30, "involuntary_switches": 900}
    steady = [10.0, 10.1, 10.2, 10.3, 10.4]
    assert gate(tmp_path, single(steady), single([4 * x for x in steady], machine=busy), "--fail-if-slower", PCT) == 2
    line = cannot_lines(capsys.readouterr().out)[0]
    assert "(the machine was busy: a run's threads waited for a core 30% of the time)" in line
    assert "rerun on a quiet runner" in line
    # the same busy pair, not slower than the threshold: nothing to fear from it, exit 0
    assert gate(tmp_path / "b", single(steady), single(steady[::-1], machine=busy), "--fail-if-slower", PCT) == 0


def test_a_regression_beyond_noise_is_exit_3_even_beside_an_unjudged_figure(tmp_path, capsys):
    base, slow = repeated(BASE), repeated([m * 1.5 for m in BASE])
    base["experiments"]["inference"] = single([10.0, 10.1])["experiments"]["train"] | {"phases": {
        "forward": summarize([10.0, 10.1])}}
    slow["experiments"]["inference"] = single([30.0, 30.1])["experiments"]["train"] | {"phases": {
        "forward": summarize([30.0, 30.1])}}
    assert gate(tmp_path, base, slow, "--fail-if-slower", PCT) == 3
    out = capsys.readouterr().out
    assert any(x.startswith("REGRESSION train: tokens/s") for x in out.splitlines())
    assert any(x.startswith("CANNOT GATE inference: tokens/s") for x in out.splitlines())


def test_the_same_run_given_twice_is_refused(tmp_path, capsys):
    from gpt2_lightning.report.compare_cli import main

    one = write(tmp_path / "one", repeated(BASE))
    for other in (one, f"{one}/results.json", f"{tmp_path}/../{tmp_path.name}/one"):
        with pytest.raises(SystemExit) as e:
            main([one, other, "--fail-if-slower", PCT, "--out", str(tmp_path / "cmp")])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and len(err.splitlines()) == 1 and "both paths are one run" in err
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "results.json").write_bytes((Path(one) / "results.json").read_bytes())  # a copied folder: one run
    with pytest.raises(SystemExit) as e:
        main([one, str(copy), "--out", str(tmp_path / "cmp")])
    assert e.value.code == 2 and "both paths are one run" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ NaN and infinity
def test_a_nan_rate_is_not_measured_anywhere(tmp_path, capsys):
    """Issue: a results.json whose tokens/s is NaN gave 'REGRESSION ... nan% slower, beyond noise'."""
    from gpt2_lightning.report.history import write_history
    from gpt2_lightning.report.results import RunResults

    bad = repeated([m * 1.5 for m in BASE])
    bad["experiments"]["train"]["throughput"]["tokens_per_sec"] = float("nan")
    bad["experiments"]["train"]["throughput"]["tflops"] = float("inf")
    path = Path(write(tmp_path / "runs" / "bad", bad)) / "results.json"
    assert "NaN" in path.read_text() and "Infinity" in path.read_text()  # as another tool would write it
    loaded = RunResults.load(path).to_dict()["experiments"]["train"]["throughput"]
    assert loaded["tokens_per_sec"] is None and loaded["tflops"] is None
    assert gate(tmp_path, repeated(BASE), bad, "--fail-if-slower", PCT) == 2
    out = capsys.readouterr().out
    assert not re.search(r"\bnan\b", out.lower())
    line = next(x for x in cannot_lines(out) if "train: tokens/s" in x)
    assert line == ("CANNOT GATE train: tokens/s 1.28k -> - (change): not judged (change's figure is missing or not "
                    "a finite number in its results.json): rerun change")
    write(tmp_path / "runs" / "ok", repeated(BASE))
    text, _ = write_history(tmp_path / "runs", tmp_path / "hist")
    assert not re.search(r"\bnan\b", text.lower())


def test_a_nan_in_a_hand_built_dict_is_not_judged():
    from gpt2_lightning.report.results import compare

    bad = single(BASE)
    bad["experiments"]["train"]["throughput"]["tokens_per_sec"] = float("nan")
    row = next(r for r in compare([single(BASE), bad]) if r["key"] == "train: tokens/s")
    assert row["values"][1] is None and row["speedups"][1] is None and row["noise"][1] is None


# ---------------------------------------------------------------------------------------- different work, one verdict
def test_when_the_batch_shapes_differ_the_rates_are_judged_and_the_times_not():
    """Issue: bs2 against bs8 judged the time rows beyond noise and the tokens/s rows within noise."""
    from gpt2_lightning.report.results import compare

    small = repeated(BASE, batch_size=2)  # 128 tokens in ~100 ms
    big = repeated([m * 2 for m in BASE], batch_size=8, tokens_per_step=512)  # 4x the tokens in 2x the time
    rows = {r["key"]: r for r in compare([small, big])}
    step = rows["train: step"]
    assert step["noise"][1] is None and "batch shapes differ" in step["notes"][1]
    rate = rows["train: tokens/s"]
    assert rate["speedups"][1] == pytest.approx(2.0) and rate["noise"][1] == "beyond noise"


def test_the_gate_on_different_shapes_gates_the_rates_alone(tmp_path, capsys):
    small = repeated(BASE, batch_size=2)
    slower_big = repeated([m * 8 for m in BASE], batch_size=8, tokens_per_step=512)  # half the rate
    assert gate(tmp_path, small, slower_big, "--fail-if-slower", PCT, "--allow-different-settings") == 3
    out = capsys.readouterr().out
    found = [x for x in out.splitlines() if x.startswith("REGRESSION")]
    assert len(found) == 2 and found[0].startswith("REGRESSION train: tokens/s 1.28k -> 640.0 (change): 0.50x")
    assert found[1].startswith("REGRESSION train: time per token")  # the step times (4x the work) are not gated
    assert not cannot_lines(out)
    assert "≈ within noise" not in next(x for x in out.splitlines() if x.startswith("train: step"))
    assert "not judged: the batch shapes differ, so the work does: judged on tokens/s" in out


# --------------------------------------------------------------------------------------------- the note's chance
def test_the_note_states_the_chance_for_the_counts_judged():
    """Issue: 5 repeats against 4 printed "2.9% at 4 against 4"; the chance is 2 / C(9, 5) = 1.6%."""
    from gpt2_lightning.report.compare import judgement_note
    from gpt2_lightning.report.results import compare

    runs = [repeated(BASE), repeated(BASE[:4])]
    note = judgement_note(compare(runs), runs, ["a", "b"])
    assert f"{2 / math.comb(9, 5):.1%} at 5 against 4" in note and "1.6% at 5 against 4" in note
    assert "4 against 4" not in note
    runs = [repeated(BASE[:3]), repeated(BASE[:3])]
    assert "none judged: too few repeats" in judgement_note(compare(runs), runs, ["a", "b"])


# ------------------------------------------------------------------------------------------------- many processes
def ddp(rank_steps, device="cuda", tokens=128):
    """A single run of len(rank_steps) processes; rank 0's figures are the experiment's own, as results.json has it."""
    data = single(rank_steps[0], device=device, tokens_per_step=tokens, devices=str(len(rank_steps)), strategy="ddp")
    train = data["experiments"]["train"]
    ranks = [{"rank": i, "phases": {"step": summarize(s)}, "tokens": tokens, "torch_threads": 1, "waiting_ms": 0.0}
             for i, s in enumerate(rank_steps)]
    slowest = max(r["phases"]["step"]["median_ms"] for r in ranks)
    train |= {"world_size": len(ranks), "ranks": ranks, "straggler": None,
              "global_tokens_per_sec": tokens * len(ranks) / (slowest / 1000)}
    return data


STEADY = [10.0, 10.1, 10.2, 10.3, 10.4]


def test_a_slow_rank_fails_the_gate_on_the_job_rate_and_the_slowest_rank(tmp_path, capsys):
    """Rank 0 unchanged, rank 1 50% slower: before, the gate read rank 0 only and passed (exit 0)."""
    base = ddp([STEADY, STEADY])
    slow = ddp([STEADY, [1.5 * x for x in STEADY]])
    assert gate(tmp_path, base, slow, "--fail-if-slower", PCT) == 3
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if x.startswith("REGRESSION")]
    assert len(lines) == 2
    # 256 tokens over the slowest rank's 10.2 ms, then over its 15.3 ms
    assert lines[0].startswith("REGRESSION train: step, slowest rank 10.2 ms -> 15.3 ms (change): 0.67x")
    assert lines[1].startswith("REGRESSION train: tokens/s, whole job 25.10k -> 16.73k (change): 0.67x")
    labels = [x.split("  ")[0] for x in out.splitlines() if x.startswith("train:")]
    assert "train: step (rank 0)" in labels and "train: tokens/s (rank 0)" in labels
    assert gate(tmp_path / "b", base, ddp([STEADY[::-1], STEADY]), "--fail-if-slower", PCT) == 0


def test_the_slowest_rank_is_the_largest_median_and_a_single_process_is_its_own(capsys):
    from gpt2_lightning.report.results import compare

    one = single(STEADY, device="cuda")
    two = ddp([STEADY, [2 * x for x in STEADY]])
    rows = {r["label"]: r for r in compare([one, two])}
    assert rows["train: step, slowest rank"]["values"] == [10.2, 20.4]
    assert rows["train: tokens/s, whole job"]["values"][1] == pytest.approx(256 / 0.0204)
    assert rows["train: tokens/s, whole job"]["values"][0] == pytest.approx(128 / 0.0102)


def test_the_comparison_names_a_runs_straggler():
    from gpt2_lightning.report.compare import warnings_for

    slow = ddp([STEADY, [1.5 * x for x in STEADY]])
    # 4.0 ms of its 5.1 ms excess in forward: the phase's figure beside the phase, the whole excess apart
    slow["experiments"]["train"]["straggler"] = {"rank": 1, "excess_ms": 5.1, "phase": "forward",
                                                 "phase_excess_ms": 4.0}
    lines = [w for w in warnings_for([ddp([STEADY, STEADY]), slow], ["main", "change"]) if "straggler" in w]
    assert lines == ["change: train: rank 1 is the straggler (+4.000 ms per step in forward (+5.100 ms of own work "
                     "per step in all)): the rows 'slowest rank' and 'whole job' read it, the (rank 0) rows do not."]
