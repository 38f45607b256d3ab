"""Several processes, read from figures and traces built by hand: the straggler, the wait, the global rate, the
communication each rank's trace shows (gloo ranges on a CPU, NCCL kernels on a GPU) and the verdict."""

import pytest

from gpt2_lightning.analysis.ranks import global_rate, straggler, straggler_sentence
from gpt2_lightning.analysis.trace_analysis import analyze_trace
from gpt2_lightning.analysis.verdict import diagnose
from gpt2_lightning.report.ranks import markdown
from tests.kineto import TraceBuilder


def stats(ms):
    return {"n": 5, "median_ms": ms, "mean_ms": ms, "p10_ms": ms, "p90_ms": ms, "min_ms": ms, "max_ms": ms}


def rank(r, waiting, tokens=128, **phases):
    return {"rank": r, "phases": {p: stats(v) for p, v in phases.items()}, "tokens": tokens, "torch_threads": 1,
            "waiting_ms": waiting, "waits_in": "all-reduce"}


# the issue's run: rank 1 slept 5 ms in every GELU (+21 ms a step); rank 0's backward holds its 21 ms wait
SLOW_RANK_1 = [rank(0, 21.0, data=0.5, forward=5.8, backward=33.7, optimizer=4.0, step=46.0),
               rank(1, 0.4, data=0.5, forward=26.8, backward=12.4, optimizer=4.0, step=47.0)]


def test_the_slow_rank_is_named_with_its_excess_phase_and_the_others_wait():
    s = straggler(SLOW_RANK_1, "step")
    # own time: 46.0 - 21.0 = 25.0 against 47.0 - 0.4 = 46.6
    assert s["rank"] == 1 and s["excess_ms"] == pytest.approx(21.6)
    assert s["phase"] == "forward" and s["phase_excess_ms"] == pytest.approx(21.0)  # backward: 12.0 vs 12.7
    assert s["others_wait_ms"] == 21.0 and s["waits_in"] == "all-reduce"
    # forward holds all but 0.6 ms of it: one figure, forward's
    assert straggler_sentence(s) == ("rank 1 is the straggler: +21 ms per step in forward; the other ranks wait "
                                     "~21 ms per step in the all-reduce")


# the walk-through's run (2 processes over gloo, tiny, --add-delay-ms 100 --add-delay-rank 1): rank 1's forward is
# 112.9 ms longer than rank 0's, and its backward and optimizer lost 14.6 and 7.1 ms more (rank 0's backward holds its
# 134.6 ms wait): 134.6 ms of own work in all
WALK = [rank(0, 134.6, data=0.5, forward=10.0, backward=150.0, optimizer=10.6, step=171.1),
        rank(1, 0.0, data=0.5, forward=122.9, backward=30.0, optimizer=17.7, step=171.1)]


def test_the_sentence_quotes_the_excess_of_the_phase_it_names():
    s = straggler(WALK, "step")
    assert s["excess_ms"] == pytest.approx(171.1 - 36.5) and s["phase_excess_ms"] == pytest.approx(112.9)
    assert straggler_sentence(s) == ("rank 1 is the straggler: +113 ms per step in forward (+135 ms of own work per "
                                     "step in all); the other ranks wait ~135 ms per step in the all-reduce")
    assert ("- **Rank 1 is the straggler: +113 ms per step in forward (+135 ms of own work per step in all); the "
            "other ranks wait ~135 ms per step in the all-reduce.**") in markdown(
        "train", {"world_size": 2, "ranks": WALK, "straggler": s})
    d = diagnose({"categories": {}}, step_ms=171.1, straggler=s)
    assert d["verdict"][0].startswith("Rank 1 is the straggler: +112.9 ms per step in forward (+134.6 ms of own work "
                                      "per step in all), and the other ranks wait ~134.6 ms")
    # no phase told apart (no per-phase figures): the whole excess, called what it is
    assert straggler_sentence({"rank": 1, "excess_ms": 134.6, "phase": "step", "phase_excess_ms": None}).startswith(
        "rank 1 is the straggler: +135 ms of own work per step;")


def test_identical_ranks_name_no_straggler():
    # a busy machine's two identical ranks (a real 2-process run on 2 shared cores: 48.3 / 48.8 ms steps)
    ranks = [rank(0, 3.1, forward=5.9, backward=31.2, step=48.3), rank(1, 1.2, forward=6.4, backward=30.0, step=48.8)]
    assert straggler(ranks, "step") is None
    assert straggler(ranks[:1], "step") is None  # one process
    assert straggler([rank(0, None, forward=3.4), rank(1, None, forward=3.9)], "forward") is None


def test_inference_straggler_has_no_collective_to_wait_in():
    ranks = [rank(0, None, forward=3.4), rank(1, None, forward=28.5)]
    s = straggler(ranks, "forward")
    assert s["rank"] == 1 and s["excess_ms"] == pytest.approx(25.1) and s["phase"] == "forward"
    assert straggler_sentence(s, stage_has_collectives=False).endswith("wait for it when the stage ends (no "
                                                                      "collective inside a step)")


def test_global_rate_is_the_jobs_tokens_over_the_slowest_rank():
    ranks = [rank(0, None, forward=3.4), rank(1, None, forward=28.5)]
    rate, basis = global_rate(ranks, "forward")
    assert rate == pytest.approx(256 / 0.0285)  # 8.98k tokens/s, not the 41.2k the ranks' own rates add up to
    assert basis["slowest_rank"] == 1 and basis["sum_of_rank_rates"] == pytest.approx(128 / 0.0034 + 128 / 0.0285)
    assert global_rate([rank(0, None, tokens=None, forward=3.4)], "forward")[0] is None


def test_the_verdict_names_the_straggler_first(tmp_path):
    trace = TraceBuilder().host_step(1, 0, 1000).cpu_op("aten::mm", 100, 900).write(tmp_path / "t.json")
    d = diagnose(analyze_trace(trace), step_ms=47.0, straggler=straggler(SLOW_RANK_1, "step"))
    assert d["verdict"][0].startswith("Rank 1 is the straggler: +21.0 ms per step in forward, and the other ranks "
                                      "wait ~21.0 ms per step for it in the all-reduce")
    assert not any("straggler" in v for v in diagnose(analyze_trace(trace), step_ms=47.0)["verdict"])


def test_cpu_trace_communication_is_the_gloo_ranges_wall_time(tmp_path):
    b = TraceBuilder().host_step(1, 0, 50_000).host_step(2, 50_000, 100_000)
    b.cpu_op("aten::mm", 1_000, 20_000)
    b.cpu_op("c10d::allreduce_", 20_000, 20_300)  # the operator: 0.3 ms of the host's own work
    # gloo's ranges on its own threads: step 1 holds 21 ms and 5 ms overlapping by 2 ms (24 ms); step 2, 10 ms
    b.cpu_op("gloo:all_reduce", 20_100, 41_100, tid=9, cat="user_annotation")
    b.cpu_op("gloo:all_reduce", 39_100, 44_100, tid=10, cat="user_annotation")
    b.cpu_op("gloo:broadcast", 60_000, 70_000, tid=9, cat="user_annotation")
    analysis = analyze_trace(b.write(tmp_path / "t.json"))
    comm = analysis["communication"]
    assert comm["blocked_ms_by_step"] == pytest.approx([24.0, 10.0])
    assert comm["ms_per_step"] == pytest.approx(17.0) and comm["collectives_per_step"] == 1.5
    from gpt2_lightning.report.diagnosis import format_text

    assert "\nblocked in collectives 17.000 ms per profiled step (wall time of the backend's ranges, 1.5 per step" \
        in format_text(analysis)  # what analyze_trace.py prints
    one = TraceBuilder().host_step(1, 0, 1000).cpu_op("aten::mm", 100, 900).write(tmp_path / "one.json")
    assert analyze_trace(one)["communication"] is None  # one process: no collective


def _gpu_rank(overlapped: bool) -> TraceBuilder:
    """One rank's step: a 600 us matmul, then a 200 us NCCL all-reduce, on a second stream under the matmul or
    after it."""
    b = TraceBuilder().host_step(1, 0, 1000)
    b.gpu("ampere_sgemm_128x64_nn", start=100, dur=600, launch=10)
    b.gpu("ncclDevKernel_AllReduce_Sum_f32_RING_LL", start=400 if overlapped else 700, dur=200, launch=20, stream=9)
    return b


def test_each_ranks_gpu_trace_reports_its_nccl_time_and_overlap(tmp_path):
    from gpt2_lightning.profile.rank_diagnoses import rank_row

    rows = []
    for r, overlapped in ((0, True), (1, False)):
        a = analyze_trace(_gpu_rank(overlapped).write(tmp_path / f"diagnosis-train-rank{r}.json"))
        assert a["communication"]["ms_per_step"] == pytest.approx(0.2)
        assert a["communication"]["overlapped_pct"] == pytest.approx(100.0 if overlapped else 0.0)
        rows.append(rank_row(r, {**a, "trace": f"diagnosis-train-rank{r}.json"}))
    result = {"world_size": 2, "ranks": SLOW_RANK_1, "straggler": straggler(SLOW_RANK_1, "step"),
              "diagnosis": {"ranks": rows}}
    text = "\n".join(markdown("train", result))
    assert "| 0 | `diagnosis-train-rank0.json` | 1.000 ms | 0.200 ms | 100% |" in text
    assert "| 1 | `diagnosis-train-rank1.json` | 1.000 ms | 0.200 ms | 0% |" in text
    assert "**Rank 1 is the straggler: +21 ms per step in forward" in text


def test_on_a_gpu_each_ranks_wait_comes_from_its_own_nccl_kernels():
    from gpt2_lightning.analysis.ranks import waits_from_traces

    # lockstep steps (47 ms each), no host-timed wait: rank 0's NCCL kernels spin 20.5 ms a step waiting for rank 1
    ranks = [{**r, "waiting_ms": None, "waits_in": None} for r in SLOW_RANK_1]
    ranks[0]["phases"]["step"] = ranks[1]["phases"]["step"] = stats(47.0)
    result = {"ranks": ranks, "straggler": straggler(ranks, "step")}
    assert result["straggler"] is None  # the step alone cannot tell them apart
    diagnosis = {"verdict": ["Matmuls take 80% ..."],
                 "ranks": [{"rank": 0, "communication_ms_per_step": 20.5},
                           {"rank": 1, "communication_ms_per_step": 0.5}]}
    waits_from_traces(result, diagnosis, "step")
    s = result["straggler"]
    assert s["rank"] == 1 and s["excess_ms"] == pytest.approx((47.0 - 0.5) - (47.0 - 20.5)) and s["phase"] == "forward"
    assert s["others_wait_ms"] == 20.5
    assert diagnosis["verdict"][0].startswith("Rank 1 is the straggler: +21.0 ms per step in forward") \
        and len(diagnosis["verdict"]) == 2


def test_a_ranks_step_by_step_own_time_wins_over_its_medians():
    # medians of steps and of waits taken apart came from different steps: 180.6 - 73.4 against 162.3 - 13.9
    ranks = [rank(0, 73.4, forward=17.1, backward=93.3, step=180.6) | {"own_ms": 29.2},
             rank(1, 13.9, forward=64.3, backward=40.5, step=162.3) | {"own_ms": 91.2}]
    assert straggler(ranks, "step")["excess_ms"] == pytest.approx(62.0)
