"""A CPU breakdown in the un-profiled step's time: time outside operators kept as the profiled steps measured it, each
phase's operator time scaled so that the phase adds up to its un-profiled median; by hand-computed examples, and on
hand-built traces whose operators and sleeps are known to the microsecond."""

import pytest

from gpt2_lightning.analysis.phase_scaling import SCALED_NOTE, scale_cpu_analysis, scale_modules
from gpt2_lightning.analysis.trace_analysis import analyze_trace
from tests.kineto import TraceBuilder


def _ops(fwd, bwd, rec=0.0):
    return {"forward_ms": fwd, "backward_ms": bwd, "recompute_ms": rec}


def _modules(op_split=True):
    """Profiled host time per step: forward 40 (MLP 30 of which 20 in operators, head 10 all operators), backward 100
    (MLP 60, head 40, all operators), optimizer 200, outside 60: 400 ms, as a slow profiled optimizer loop makes it.
    Without ``op_split`` the rows carry no operator time (a trace analysis from before it was recorded)."""
    parts = [{"part": "MLP", "forward_ms": 30.0, "backward_ms": 60.0, "total_ms": 90.0, "pct": 22.5,
              "profiled_op_ms": _ops(20.0, 60.0)},
             {"part": "output head", "forward_ms": 10.0, "backward_ms": 40.0, "total_ms": 50.0, "pct": 12.5,
              "profiled_op_ms": _ops(10.0, 40.0)},
             {"part": "optimizer", "forward_ms": None, "backward_ms": None, "total_ms": 200.0, "pct": 50.0},
             {"part": "outside any module", "forward_ms": None, "backward_ms": None, "total_ms": 60.0, "pct": 15.0}]
    blocks = [{"block": 0, "forward_ms": 20.0, "backward_ms": 50.0, "total_ms": 70.0,
               "profiled_op_ms": _ops(12.0, 50.0)}]
    if not op_split:
        for r in parts + blocks:
            r.pop("profiled_op_ms", None)
    return {"grouping": "gpt2", "basis": "host time", "steps": 3, "total_ms_per_step": 400.0, "parts": parts,
            "blocks": blocks, "outlier_blocks": [], "backward_without_forward_ms": 10.0}


PHASES = {"data": {"median_ms": 2.0}, "forward": {"median_ms": 20.0}, "backward": {"median_ms": 50.0},
          "optimizer": {"median_ms": 25.0}, "step": {"median_ms": 100.0}}


def test_time_outside_operators_kept_operator_time_scaled_to_the_phase():
    m = scale_modules(_modules(), PHASES, training=True)
    rows = {r["part"]: r for r in m["parts"]}
    # forward: 10 ms outside operators (MLP's) kept; operators 30 -> 20 - 10 = 10, f = 1/3
    assert rows["MLP"]["forward_ms"] == pytest.approx(10.0 + 20.0 / 3)
    assert rows["output head"]["forward_ms"] == pytest.approx(10.0 / 3)
    # backward: all operators, 100 -> 50
    assert rows["MLP"]["backward_ms"] == pytest.approx(30.0) and rows["output head"]["backward_ms"] == pytest.approx(20)
    assert rows["optimizer"]["total_ms"] == pytest.approx(25.0) and rows["optimizer"]["profiled_ms"] == 200.0
    assert rows["outside any module"]["total_ms"] == pytest.approx(5.0)  # 100 - 20 - 50 - 25
    assert rows["outside any module"]["data_ms"] == 2.0
    assert rows["MLP"]["profiled_ms"] == 90.0 and rows["MLP"]["total_ms"] == pytest.approx(10 + 20 / 3 + 30)
    assert m["total_ms_per_step"] == pytest.approx(100.0) and m["profiled_ms_per_step"] == 400.0
    assert rows["optimizer"]["pct"] == pytest.approx(25.0)  # was 50% of the profiled step
    block = m["blocks"][0]  # forward 8 outside operators + 12 / 3; backward 50 / 2
    assert (block["forward_ms"], block["backward_ms"]) == (pytest.approx(12.0), pytest.approx(25.0))
    assert block["total_ms"] == pytest.approx(37.0) and block["profiled_ms"] == 70.0
    assert m["backward_without_forward_ms"] == pytest.approx(5.0)  # backward operators' time, x 1/2
    s = m["scaled"]
    assert s["method"] == {"forward": "operators", "backward": "operators", "optimizer": "phase"}
    assert s["factors"]["forward"] == pytest.approx(1 / 3) and s["factors"]["backward"] == pytest.approx(0.5)
    assert s["phases"]["forward"]["other_ms"] == pytest.approx(10.0)
    assert s["phases"]["forward"]["operator_ms"] == pytest.approx(30.0)
    assert s["note"] == SCALED_NOTE and SCALED_NOTE in m["basis"]
    assert _modules()["parts"][0]["forward_ms"] == 30.0  # the input is left as it was


def test_without_operator_time_each_phase_is_scaled_by_one_factor():
    m = scale_modules(_modules(op_split=False), PHASES, training=True)
    rows = {r["part"]: r for r in m["parts"]}
    # forward x 20/40, backward x 50/100
    assert rows["MLP"]["forward_ms"] == pytest.approx(15.0) and rows["MLP"]["backward_ms"] == pytest.approx(30.0)
    assert rows["output head"]["total_ms"] == pytest.approx(5.0 + 20.0)
    assert m["blocks"][0]["forward_ms"] == pytest.approx(10.0) and m["blocks"][0]["backward_ms"] == pytest.approx(25)
    assert m["scaled"]["method"]["forward"] == "phase"
    assert m["scaled"]["phases"]["forward"]["why"] == "the breakdown has no operator time"
    assert m["total_ms_per_step"] == pytest.approx(100.0)


def test_a_median_shorter_than_the_time_outside_operators_falls_back_to_one_factor():
    """Forward's median 8 ms is less than the 10 ms the profiled steps spent outside operators: no operator factor
    can make it (f would be negative), so the phase is scaled as a whole, 8 / 40."""
    m = scale_modules(_modules(), {**PHASES, "forward": {"median_ms": 8.0}, "step": {"median_ms": 88.0}}, True)
    rows = {r["part"]: r for r in m["parts"]}
    assert rows["MLP"]["forward_ms"] == pytest.approx(6.0) and rows["output head"]["forward_ms"] == pytest.approx(2)
    assert m["scaled"]["method"]["forward"] == "phase" and m["scaled"]["method"]["backward"] == "operators"
    assert "no longer than the profiled time outside operators (10.000 ms)" in m["scaled"]["phases"]["forward"]["why"]
    assert m["total_ms_per_step"] == pytest.approx(88.0)


def test_recompute_runs_in_backward_and_is_scaled_with_it():
    """Activation checkpointing: MLP backward 60 + recompute 20, head backward 40, all operators, to a 50 ms backward:
    f = 50 / 120."""
    mod = _modules()
    mod["parts"][0].update(recompute_ms=20.0, total_ms=110.0, profiled_op_ms=_ops(20.0, 60.0, 20.0))
    mod["parts"][1]["recompute_ms"] = 0.0
    m = scale_modules(mod, PHASES, training=True)
    rows = {r["part"]: r for r in m["parts"]}
    assert rows["MLP"]["backward_ms"] == pytest.approx(25.0) and rows["MLP"]["recompute_ms"] == pytest.approx(50 / 6)
    assert rows["MLP"]["total_ms"] == pytest.approx(10 + 20 / 3 + 25 + 50 / 6)
    assert rows["output head"]["backward_ms"] == pytest.approx(50 / 3)
    assert m["total_ms_per_step"] == pytest.approx(100.0)


def test_inference_adds_up_to_the_forward_pass():
    parts = [{"part": "MLP", "forward_ms": 30.0, "backward_ms": None, "total_ms": 30.0, "pct": 60.0,
              "profiled_op_ms": _ops(30.0, 0.0)},
             {"part": "output head", "forward_ms": 10.0, "backward_ms": None, "total_ms": 10.0, "pct": 20.0,
              "profiled_op_ms": _ops(6.0, 0.0)},
             {"part": "optimizer", "forward_ms": None, "backward_ms": None, "total_ms": 0.0, "pct": 0.0},
             {"part": "outside any module", "forward_ms": None, "backward_ms": None, "total_ms": 10.0, "pct": 20.0}]
    m = scale_modules({"total_ms_per_step": 50.0, "parts": parts, "blocks": []}, {"forward": {"median_ms": 8.0}},
                      training=False)
    rows = {r["part"]: r for r in m["parts"]}  # 4 ms outside operators kept; operators 36 -> 4
    assert rows["MLP"]["forward_ms"] == pytest.approx(30 / 9) and rows["MLP"]["backward_ms"] is None
    assert rows["output head"]["forward_ms"] == pytest.approx(4 + 6 / 9)
    assert rows["outside any module"]["total_ms"] == 0.0 and m["total_ms_per_step"] == pytest.approx(8.0)


def test_left_alone_without_phases_or_on_a_gpu():
    assert scale_modules(_modules(), {"step": {"median_ms": 100.0}}, training=True) == _modules()
    gpu = {"kind": "gpu", "modules": _modules(), "categories": {}}
    assert scale_cpu_analysis(gpu, PHASES, training=True) is gpu
    assert scale_modules({"unavailable": "no ranges"}, PHASES, True) == {"unavailable": "no ranges"}


def test_categories_scaled_by_the_step_shares_kept():
    a = {"kind": "cpu", "profiled_step_ms": 400.0, "cpu_self_ms_per_step": 300.0, "modules": _modules(),
         "categories": {"matmul": {"ms_per_step": 120.0, "pct": 40.0}},
         "top_ops": [{"name": "aten::mm", "ms_per_step": 80.0, "pct": 26.7}]}
    s = scale_cpu_analysis(a, PHASES, training=True)
    assert s["categories"]["matmul"] == {"ms_per_step": pytest.approx(30.0), "pct": 40.0}
    assert s["top_ops"][0]["ms_per_step"] == pytest.approx(20.0) and s["cpu_self_ms_per_step"] == pytest.approx(75.0)
    assert s["modules"]["total_ms_per_step"] == pytest.approx(100.0)
    assert s["scaled"] == {"note": SCALED_NOTE, "step_ms": 100.0, "profiled_step_ms": 400.0, "factor": 0.25,
                           "method": "step"}  # these rows carry no operator time for the step


def test_phase_medians_that_exceed_the_steps_are_fitted_to_it():
    """Medians do not add up: forward 20 + backward 50 + optimizer 25 = 95 against a median step of 76. The forward's
    10 ms outside operators (a sleep, say) is kept whole; the other 85 ms shrink by g = (76 - 10) / 85 to fit."""
    m = scale_modules(_modules(), {**PHASES, "step": {"median_ms": 76.0}}, training=True)
    rows = {r["part"]: r for r in m["parts"]}
    g = 66.0 / 85.0
    assert m["total_ms_per_step"] == pytest.approx(76.0) and m["scaled"]["fitted"] == pytest.approx(g)
    assert m["scaled"]["fitted_kept_ms"] == pytest.approx(10.0)
    assert rows["optimizer"]["total_ms"] == pytest.approx(25.0 * g) and rows["outside any module"]["total_ms"] == 0.0
    # forward 10 + 10 g: MLP's 10 outside operators kept, the 30 of operators -> 10 g; backward 50 g over 100
    assert rows["MLP"]["forward_ms"] == pytest.approx(10 + 20 * 10 * g / 30)
    assert rows["output head"]["forward_ms"] == pytest.approx(10 * 10 * g / 30)
    assert rows["MLP"]["backward_ms"] == pytest.approx(60 * 50 * g / 100)


def test_when_the_time_outside_operators_alone_exceeds_the_step_every_phase_shrinks_alike():
    """forward 20 (10 outside operators) + backward 50 + optimizer 25 against a step of 8: 95 -> 8, all alike."""
    m = scale_modules(_modules(), {**PHASES, "step": {"median_ms": 8.0}}, training=True)
    assert m["total_ms_per_step"] == pytest.approx(8.0) and m["scaled"]["fitted"] == pytest.approx(8.0 / 95.0)
    assert m["scaled"]["fitted_kept_ms"] == 0.0


# ------------------------------------------------------------------------------------------------ hand-built traces
def _sleepy_trace(tmp_path):
    """One profiled CPU step of 10 ms on one thread (us). Forward [0, 6000) in the GPT module: its own code [0, 100),
    a sleep [100, 4100) (no operator), module a [4100, 5100) with aten::linear [4200, 5000) (aten::addmm nested in it,
    sequence number 3), module b [5100, 6000) with aten::mul [5150, 5950) (sequence number 4). Backward: MulBackward0
    [6000, 7000), AddmmBackward0 [7000, 8000). The optimizer's step [8000, 9500) with aten::add_ [8100, 9400) in it;
    outside any module [9500, 10000).
    Per step: forward 6.0 ms, of which 1.6 in operators and 4.4 outside them (the sleep 4.0, Python 0.4); backward
    2.0, all operators; optimizer 1.5; outside 0.5."""
    b = TraceBuilder().host_step(1, 0, 10000)
    b.cpu_op("[pl][module]my.GPT: model", 0, 6000, cat="user_annotation")
    b.cpu_op("[pl][module]torch.nn.modules.linear.Linear: model.a", 4100, 5100, cat="user_annotation")
    b.cpu_op("aten::linear", 4200, 5000)
    b.events[-1]["args"]["Sequence number"] = 3
    b.cpu_op("aten::addmm", 4250, 4950)
    b.cpu_op("[pl][module]my.Block: model.b", 5100, 6000, cat="user_annotation")
    b.cpu_op("aten::mul", 5150, 5950)
    b.events[-1]["args"]["Sequence number"] = 4
    b.cpu_op("autograd::engine::evaluate_function: MulBackward0", 6000, 7000)
    b.events[-1]["args"]["Sequence number"] = 4
    b.cpu_op("autograd::engine::evaluate_function: AddmmBackward0", 7000, 8000)
    b.events[-1]["args"]["Sequence number"] = 3
    b.cpu_op("aten::mm", 7100, 7900)  # nested in the backward node: its time counted once
    b.cpu_op("Optimizer.step#AdamW.step", 8000, 9500, cat="user_annotation")
    b.cpu_op("aten::add_", 8100, 9400)
    return analyze_trace(b.write(tmp_path / "sleepy.json"))


def test_a_trace_splits_each_row_into_operator_time_and_the_rest(tmp_path):
    rows = {r["part"]: r for r in _sleepy_trace(tmp_path)["modules"]["parts"]}
    assert rows["model (GPT)"]["forward_ms"] == pytest.approx(4.1)
    assert rows["model (GPT)"]["profiled_op_ms"]["forward_ms"] == 0.0  # its code and the sleep: no operator
    assert rows["model.a (Linear)"]["forward_ms"] == pytest.approx(1.0)
    assert rows["model.a (Linear)"]["profiled_op_ms"] == _ops(pytest.approx(0.8), pytest.approx(1.0), 0.0)
    assert rows["model.b (Block)"]["profiled_op_ms"] == _ops(pytest.approx(0.8), pytest.approx(1.0), 0.0)


def test_a_sleep_in_a_traced_forward_keeps_its_length(tmp_path):
    """Un-profiled medians: forward 4.8, backward 1.0, optimizer 0.5, step 6.8 ms. Forward: the 4.4 ms outside
    operators kept, its 1.6 ms of operators -> 0.4 (f = 1/4); backward 2.0 -> 1.0. One factor for forward (4.8 / 6.0)
    would have made the 4.0 ms sleep 3.2 ms."""
    phases = {"data": {"median_ms": 0.1}, "forward": {"median_ms": 4.8}, "backward": {"median_ms": 1.0},
              "optimizer": {"median_ms": 0.5}, "step": {"median_ms": 6.8}}
    m = scale_cpu_analysis(_sleepy_trace(tmp_path), phases, training=True)["modules"]
    rows = {r["part"]: r for r in m["parts"]}
    assert rows["model (GPT)"]["forward_ms"] == pytest.approx(4.1)  # its code and the sleep, as they were
    assert rows["model.a (Linear)"]["forward_ms"] == pytest.approx(0.2 + 0.8 / 4)
    assert rows["model.b (Block)"]["forward_ms"] == pytest.approx(0.1 + 0.8 / 4)
    assert rows["model.a (Linear)"]["backward_ms"] == pytest.approx(0.5)
    assert rows["model.b (Block)"]["backward_ms"] == pytest.approx(0.5)
    assert rows["optimizer"]["total_ms"] == pytest.approx(0.5)
    assert rows["optimizer"]["profiled_ms"] == pytest.approx(1.5)
    assert rows["outside any module"]["total_ms"] == pytest.approx(0.5)
    assert m["total_ms_per_step"] == pytest.approx(6.8) and m["profiled_ms_per_step"] == pytest.approx(10.0)
    assert m["scaled"]["method"]["forward"] == "operators" and m["scaled"]["factors"]["forward"] == pytest.approx(0.25)
    # a forward median shorter than the 4.4 ms outside operators: the phase as a whole, 4.0 / 6.0
    m = scale_cpu_analysis(_sleepy_trace(tmp_path), {**phases, "forward": {"median_ms": 4.0}}, True)["modules"]
    rows = {r["part"]: r for r in m["parts"]}
    assert m["scaled"]["method"]["forward"] == "phase"
    assert rows["model (GPT)"]["forward_ms"] == pytest.approx(4.1 * 4.0 / 6.0)


def test_a_traces_operator_categories_scaled_as_its_operators_are(tmp_path):
    """The sleepy trace's operators (self time) take 4.9 ms of its 10 ms step: linear 0.1 (addmm 0.7 inside it),
    mul 0.8, MulBackward0 1.0, AddmmBackward0 0.2 (mm 0.8 inside it), add_ 1.3; the other 5.1 ms (the sleep, Python,
    the optimizer's and outside's) are kept, so to a 6.8 ms step the operators scale by (6.8 - 5.1) / 4.9. One factor
    for the step (6.8 / 10) would have said 3.3 ms of operator time in a step whose operators take 1.7."""
    a = _sleepy_trace(tmp_path)
    assert a["cpu_self_ms_per_step"] == pytest.approx(4.9)
    assert a["modules"]["profiled_op_ms_per_step"] == pytest.approx(4.9)
    phases = {"forward": {"median_ms": 4.8}, "backward": {"median_ms": 1.0}, "optimizer": {"median_ms": 0.5},
              "step": {"median_ms": 6.8}}
    s = scale_cpu_analysis(a, phases, training=True)
    assert s["cpu_self_ms_per_step"] == pytest.approx(1.7)
    assert s["scaled"]["method"] == "operators" and s["scaled"]["factor"] == pytest.approx(1.7 / 4.9)
    add = next(r for r in s["top_ops"] if r["name"] == "aten::add_")
    assert add["ms_per_step"] == pytest.approx(1.3 * 1.7 / 4.9)
    # a step no longer than its time outside operators: one factor, the un-profiled step over the profiled one
    s = scale_cpu_analysis(a, {**phases, "step": {"median_ms": 5.0}}, training=True)
    assert s["scaled"]["method"] == "step" and s["cpu_self_ms_per_step"] == pytest.approx(4.9 * 0.5)


def test_a_rank_waiting_for_collectives_keeps_its_wait_and_the_rows_still_add_up():
    """Several processes: 40 ms of a model thread blocked in a collective outside any module (a wait: the profiler
    does not slow it) is kept as measured; the model's rows are scaled as without it, outside takes what is left."""
    modules = _modules()
    modules["parts"].insert(-1, {"part": "waiting for collectives", "forward_ms": None, "backward_ms": None,
                                 "total_ms": 40.0, "pct": 0.0})
    m = scale_modules(modules, {**PHASES, "step": {"median_ms": 140.0}}, training=True)
    rows = {r["part"]: r for r in m["parts"]}
    assert rows["waiting for collectives"]["total_ms"] == pytest.approx(40.0)
    assert rows["MLP"]["backward_ms"] == pytest.approx(30.0)  # backward 100 -> 50, as without the wait
    assert rows["outside any module"]["total_ms"] == pytest.approx(140 - 40 - 20 - 50 - 25)
    assert m["total_ms_per_step"] == pytest.approx(140.0)
    assert [r["part"] for r in m["parts"]][-3:] == ["optimizer", "waiting for collectives", "outside any module"]
    # a step of 100: the wait's 40 kept, the phases' 95 fitted into the 60 left (the forward's 10 outside operators
    # kept, the other 85 by g = 50 / 85), so the rows still add up to the step
    m = scale_modules(modules, {**PHASES, "step": {"median_ms": 100.0}}, training=True)
    rows = {r["part"]: r for r in m["parts"]}
    assert rows["waiting for collectives"]["total_ms"] == pytest.approx(40.0)
    assert m["scaled"]["fitted"] == pytest.approx(50.0 / 85.0) and rows["outside any module"]["total_ms"] == 0.0
    assert m["total_ms_per_step"] == pytest.approx(100.0)


def test_inference_categories_take_the_forward_rows_operator_factor():
    """A profiled predict step (400 ms here) holds more than the forward pass the median times (20 ms): the loop,
    hooks, the batch. The forward's rows keep their 10 ms outside operators and scale their 30 ms of operators by
    (20 - 10) / 30; the categories take that factor (matmul 120 -> 40), not 20 / 400 (-> 6) nor a step-level one."""
    a = {"kind": "cpu", "profiled_step_ms": 400.0, "cpu_self_ms_per_step": 300.0, "modules": _modules(),
         "categories": {"matmul": {"ms_per_step": 120.0, "pct": 40.0}}, "top_ops": []}
    s = scale_cpu_analysis(a, {"forward": {"median_ms": 20.0}}, training=False)
    assert s["scaled"]["method"] == "operators" and s["scaled"]["factor"] == pytest.approx(1 / 3)
    assert s["categories"]["matmul"]["ms_per_step"] == pytest.approx(40.0)
    assert s["modules"]["total_ms_per_step"] == pytest.approx(20.0)
