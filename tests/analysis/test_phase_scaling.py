"""A CPU breakdown in the un-profiled step's time: each phase's rows scaled to that phase's un-profiled median, by
hand-computed examples."""

import pytest

from gpt2_lightning.analysis.phase_scaling import SCALED_NOTE, scale_cpu_analysis, scale_modules


def _modules():
    """Profiled host time per step: forward 40 (MLP 30, head 10), backward 100 (MLP 60, head 40), optimizer 200,
    outside 60: 400 ms, as a slow profiled optimizer loop makes it."""
    parts = [{"part": "MLP", "forward_ms": 30.0, "backward_ms": 60.0, "total_ms": 90.0, "pct": 22.5},
             {"part": "output head", "forward_ms": 10.0, "backward_ms": 40.0, "total_ms": 50.0, "pct": 12.5},
             {"part": "optimizer", "forward_ms": None, "backward_ms": None, "total_ms": 200.0, "pct": 50.0},
             {"part": "outside any module", "forward_ms": None, "backward_ms": None, "total_ms": 60.0, "pct": 15.0}]
    blocks = [{"block": 0, "forward_ms": 20.0, "backward_ms": 50.0, "total_ms": 70.0}]
    return {"grouping": "gpt2", "basis": "host time", "steps": 3, "total_ms_per_step": 400.0, "parts": parts,
            "blocks": blocks, "outlier_blocks": [], "backward_without_forward_ms": 10.0}


PHASES = {"data": {"median_ms": 2.0}, "forward": {"median_ms": 20.0}, "backward": {"median_ms": 50.0},
          "optimizer": {"median_ms": 25.0}, "step": {"median_ms": 100.0}}


def test_each_phase_scaled_to_its_unprofiled_median():
    m = scale_modules(_modules(), PHASES, training=True)
    rows = {r["part"]: r for r in m["parts"]}
    # forward x 20/40, backward x 50/100, optimizer to 25, outside = 100 - 20 - 50 - 25
    assert rows["MLP"]["forward_ms"] == pytest.approx(15.0) and rows["MLP"]["backward_ms"] == pytest.approx(30.0)
    assert rows["output head"]["total_ms"] == pytest.approx(5.0 + 20.0)
    assert rows["optimizer"]["total_ms"] == pytest.approx(25.0) and rows["optimizer"]["profiled_ms"] == 200.0
    assert rows["outside any module"]["total_ms"] == pytest.approx(5.0)
    assert rows["outside any module"]["data_ms"] == 2.0
    assert m["total_ms_per_step"] == pytest.approx(100.0) and m["profiled_ms_per_step"] == 400.0
    assert rows["optimizer"]["pct"] == pytest.approx(25.0)  # was 50% of the profiled step
    assert m["blocks"][0] == {"block": 0, "forward_ms": pytest.approx(10.0), "backward_ms": pytest.approx(25.0),
                              "total_ms": pytest.approx(35.0)}
    assert m["backward_without_forward_ms"] == pytest.approx(5.0)
    assert m["scaled"]["note"] == SCALED_NOTE and SCALED_NOTE in m["basis"]
    assert _modules()["parts"][0]["forward_ms"] == 30.0  # the input is left as it was


def test_inference_adds_up_to_the_forward_pass():
    parts = [{"part": "MLP", "forward_ms": 30.0, "backward_ms": None, "total_ms": 30.0, "pct": 60.0},
             {"part": "output head", "forward_ms": 10.0, "backward_ms": None, "total_ms": 10.0, "pct": 20.0},
             {"part": "optimizer", "forward_ms": None, "backward_ms": None, "total_ms": 0.0, "pct": 0.0},
             {"part": "outside any module", "forward_ms": None, "backward_ms": None, "total_ms": 10.0, "pct": 20.0}]
    m = scale_modules({"total_ms_per_step": 50.0, "parts": parts, "blocks": []}, {"forward": {"median_ms": 8.0}},
                      training=False)
    rows = {r["part"]: r for r in m["parts"]}
    assert rows["MLP"]["forward_ms"] == pytest.approx(6.0) and rows["MLP"]["backward_ms"] is None
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
    assert s["scaled"] == {"note": SCALED_NOTE, "step_ms": 100.0, "profiled_step_ms": 400.0, "factor": 0.25}


def test_phase_medians_that_exceed_the_steps_are_fitted_to_it():
    """Medians do not add up: forward 20 + backward 50 + optimizer 25 = 95 against a median step of 76."""
    m = scale_modules(_modules(), {**PHASES, "step": {"median_ms": 76.0}}, training=True)
    rows = {r["part"]: r for r in m["parts"]}
    assert m["total_ms_per_step"] == pytest.approx(76.0) and m["scaled"]["fitted"] == pytest.approx(0.8)
    assert rows["optimizer"]["total_ms"] == pytest.approx(20.0) and rows["outside any module"]["total_ms"] == 0.0
    assert rows["MLP"]["forward_ms"] == pytest.approx(12.0) and rows["MLP"]["backward_ms"] == pytest.approx(24.0)
